"""Audio pipeline benchmark (not a test): rendering speed, cache build time, and A1
training-epoch time with the hidden-state cache vs without it, on real PercePiano data.

    python benchmarks/audio_pipeline.py                     # default backbone, 48 segments, 3 repeats
    python benchmarks/audio_pipeline.py --segments 96 --repeats 5

Needs the pre-trained default backbone (``python runners/pretrain_audio.py``). Renders and
caches go to a fresh temporary folder, so every figure is measured from scratch.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def epoch_seconds(config) -> float:
    """One training epoch (forward, loss, backward, optimiser step over every batch)."""
    import torch

    from pianoeval.train.data import build_datamodule
    from pianoeval.train.module import PerformanceModule

    datamodule = build_datamodule(config)
    datamodule.setup()
    module = PerformanceModule(config, datamodule.input_dim, steps_per_epoch=datamodule.steps_per_epoch())
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    module.train()
    started = time.perf_counter()
    for batch in datamodule.train_dataloader():
        loss, _ = module._loss(module(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def main(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    os.environ["PIANOEVAL_CACHE"] = tempfile.mkdtemp(prefix="pianoeval-audio-bench-")
    from pianoeval.audio.features import AudioItem, Frontend, build_mels
    from pianoeval.audio.hidden_cache import build_hidden
    from pianoeval.audio.render import RenderJob, render_many
    from pianoeval.audio.source import source_of
    from pianoeval.data import load_percepiano
    from pianoeval.experiment import ExperimentConfig

    config = ExperimentConfig.resolve({
        "model": {"name": "a1_lora", "audio": {"max_eval_segments": 8, "robustness_eval": False, "workers": 1}},
        "data": {"max_train_segments": args.segments}, "train": {"max_epochs": 1}})
    spec_model = config.model_spec()
    source = source_of(spec_model)
    data = load_percepiano(warn=lambda m: None)
    segments = [data.by_id[s] for s in data.fold("performer", 0).train[: args.segments]]
    print(f"[bench] machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{args.threads}, load average {os.getloadavg()[0]:.1f}; backbone {source.folder}")
    from pianoeval.audio import render

    for soundfont in ("timgm6mb", "musescore"):
        started = time.perf_counter()
        render._WORKER[soundfont] = render.Renderer(soundfont)  # the in-process renderer render_many reuses
        load = time.perf_counter() - started
        jobs = [RenderJob(s.performance_midi(data.root), soundfont) for s in segments[: args.render_segments]]
        _, report = render_many(jobs, workers=1, progress=False, warn=lambda m: None)
        print(f"[bench] render {soundfont:9s}: {report.audio_seconds:6.0f} s of audio in {report.wall_seconds:5.1f} s "
              f"= {report.audio_seconds / report.wall_seconds:5.1f} audio seconds per wall second (1 process; "
              f"loading the soundfont once: {load:.1f} s)")
    items = [AudioItem(s.segment_id, s.performance_midi(data.root)) for s in segments]
    audio = spec_model.audio
    started = time.perf_counter()
    store = build_mels(items, list(audio.soundfonts), 0, Frontend.of(source.spec()), audio.augment,
                       audio.max_seconds, workers=1, progress=False, warn=lambda m: None)
    features = time.perf_counter() - started
    started = time.perf_counter()
    layer = spec_model.cache_layer(source.spec())
    build_hidden(source, layer, store, sorted(store.paths), progress=False, warn=lambda m: None)
    hidden = time.perf_counter() - started
    print(f"[bench] cache build for {len(items)} segments x {len(audio.soundfonts)} soundfonts "
          f"({audio.max_seconds:g} s each): renders not yet made + log-mel {features:.1f} s, hidden states "
          f"L{layer} {hidden:.1f} s")
    times = {"cached": [], "uncached": []}
    for _ in range(args.repeats):
        for name, cached in (("cached", True), ("uncached", False)):
            times[name].append(epoch_seconds(config.with_overrides({"model.hidden_cache": cached})))
    cached, uncached = statistics.median(times["cached"]), statistics.median(times["uncached"])
    print(f"[bench] A1 epoch ({args.segments} segments, batch {config.data.batch_size}): with hidden-state cache "
          f"{cached:.1f} s | without {uncached:.1f} s (median of {args.repeats}; {uncached / cached:.1f}x)")
    print(f"[bench] raw epoch seconds: {times}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--segments", type=int, default=48, help="training segments of performer fold 0")
    p.add_argument("--render-segments", type=int, default=12, help="segments rendered per soundfont for speed")
    p.add_argument("--repeats", type=int, default=3, help="epochs timed per setting (median reported)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    from pianoeval.cli import run_cli

    sys.exit(run_cli(lambda: main(p.parse_args())))
