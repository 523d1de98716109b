"""Symbolic pipeline throughput on CPU (one process, one torch thread), on real data.

    python benchmarks/symbolic_pipeline.py                 # default sizes, 3 repeats
    python benchmarks/symbolic_pipeline.py --repeats 5 --steps 8

1. Pre-processing: REMI tokens, note graphs and MIDI curves built per second from 100
   real PercePiano segments and 100 real ASAP windows (MIDI already parsed; parsing is
   timed on its own line).
2. Pre-training: optimiser steps per second of each encoder's objective at its CPU-default
   size (s1_remi, s2_gnn, s2h_hetero, s3_continuous), batch 16 ASAP windows.

Every figure is the median of ``--repeats`` runs. Writes results/benchmarks/symbolic_pipeline.json.
"""

import argparse
import json
import os
import statistics
import time

import torch


def _median_rate(work, count: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def preprocessing(repeats: int) -> dict:
    from pianoeval.paths import asap_root, percepiano_root
    from pianoeval.symbolic import curves, graphs, tokens
    from pianoeval.data.midi import read_midi
    from pianoeval.symbolic.sources import corpus_items

    percepiano = list(corpus_items("percepiano"))[::12][:100]
    asap = list(corpus_items("asap", ("Bach/Fugue/bwv_848", "Chopin/Ballades/1", "Beethoven/Piano_Sonatas/21-1")))[:100]
    paths = [percepiano_root() / i.path for i in percepiano] + [asap_root() / i.path for i in asap]
    parse_rate = _median_rate(lambda: [read_midi(p) for p in paths[:100]], 100, repeats)
    files = {}
    for item, path in zip(percepiano + asap, paths):
        if path not in files:
            files[path] = read_midi(path)
    sequences = [files[p].window(i.start, i.end) if i.end else files[p] for i, p in zip(percepiano + asap, paths)]
    tokens.tokenizer()  # built once per process, not per item
    notes = sum(len(s) for s in sequences)
    out = {"midi_files_parsed_per_s": parse_rate, "items": len(sequences), "mean_notes_per_item": notes / len(sequences)}
    for name, module in (("tokens", tokens), ("graphs", graphs), ("curves", curves)):
        out[f"{name}_per_s"] = _median_rate(lambda: [module.represent(s) for s in sequences], len(sequences), repeats)
    return out


def pretraining(repeats: int, steps: int) -> dict:
    from pianoeval.models.symbolic import ENCODERS
    from pianoeval.symbolic.pretrain import PretrainConfig, setup_pretraining

    pieces = ("Bach/Fugue/bwv_848", "Chopin/Ballades/1", "Beethoven/Piano_Sonatas/21-1", "Schubert/Impromptu_op.90_D.899/3")
    out = {}
    for encoder, (_, _, variant) in ENCODERS.items():
        # the defaults of runners/pretrain_symbolic.py: batch 16, S1 / S3 crops of 256 tokens / frames
        setup = setup_pretraining(PretrainConfig(encoder=encoder, pieces=pieces, validation_items=0), log=lambda m: None)
        batches = [setup.collate([setup.train_set[k] for k in range(i * 16, i * 16 + 16)]) for i in range(steps + 1)]
        optimizer = torch.optim.AdamW(setup.model.parameters(), lr=1e-4)
        generator = torch.Generator().manual_seed(0)

        def step(batch):
            total, _ = setup.model(batch, generator)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()

        step(batches[-1])  # warm-up
        out[f"{variant}_pretrain_steps_per_s"] = _median_rate(lambda: [step(b) for b in batches[:steps]], steps, repeats)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="pre-training steps per timed run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from pianoeval.paths import results_root

    results = {"threads": 1, "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0],
               **preprocessing(args.repeats), **pretraining(args.repeats, args.steps)}
    for key, value in results.items():
        print(f"{key:40s} {value:10.2f}" if isinstance(value, float) else f"{key:40s} {value}")
    path = results_root() / "benchmarks" / "symbolic_pipeline.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
