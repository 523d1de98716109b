"""Forward + backward throughput of the HAN family on real PercePiano batches (CPU).

    python benchmarks/train_step.py                         # han, batch 8, 1 and 2 threads
    python benchmarks/train_step.py --models han bilstm_baseline --threads 1 --steps 20

For each model: ``--steps`` optimiser steps (forward, MSE loss, backward, Adam) on real
training batches of performer fold 0 at batch 8, after two warm-up steps; the figure is
the median over ``--repeats`` runs of notes per second, with the model's parameter count
and the process's peak resident memory (``ru_maxrss``; it only grows, so models are
measured in the order given). Writes results/benchmarks/train_step.json.
"""

import argparse
import json
import resource
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["han"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from torch.utils.data import DataLoader

    from pianoeval.data import collate_notes
    from pianoeval.experiment import ExperimentConfig
    from pianoeval.data import LABEL_NAMES
    from pianoeval.models.registry import get_model
    from pianoeval.data.dataset import percepiano

    rows = []
    for name in args.models:
        config = ExperimentConfig.resolve({"model": {"name": name}}, "<bench>")
        train, _, _, _ = percepiano().note_datasets("performer", 0, config.data.feature_set)
        loader = DataLoader(train, batch_size=args.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(0), collate_fn=collate_notes)
        batches = []
        for batch in loader:
            batches.append(batch)
            if len(batches) == args.steps + 2:
                break
        notes = sum(int(b.lengths.sum()) for b in batches[2:])
        for threads in args.threads:
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            model = get_model(name).build(config.model_spec(), train.input_dim, len(LABEL_NAMES))
            params = sum(p.numel() for p in model.parameters())
            optimiser = torch.optim.Adam(model.parameters(), lr=config.train.lr)
            model.train()

            def step(batch):
                optimiser.zero_grad()
                loss = torch.nn.functional.mse_loss(torch.sigmoid(model(batch).logits), batch.labels)
                loss.backward()
                optimiser.step()

            for batch in batches[:2]:
                step(batch)
            rates = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                for batch in batches[2:]:
                    step(batch)
                rates.append(notes / (time.perf_counter() - started))
            peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rate = statistics.median(rates)
            rows.append({"model": name, "threads": threads, "batch_size": args.batch_size, "params": params,
                         "notes_per_s": rate, "steps_per_s": rate / (notes / args.steps),
                         "mean_notes_per_batch": notes / args.steps, "peak_rss_mib": peak_mib})
            print(f"{name:16s} {params / 1e6:6.2f} M params  {threads} thread(s)  batch {args.batch_size}: "
                  f"{rate:8.0f} notes/s  {rows[-1]['steps_per_s']:5.2f} steps/s  peak RSS {peak_mib:6.0f} MiB  "
                  f"runs {[round(r) for r in rates]}")
    out = Path("results/benchmarks/train_step.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
