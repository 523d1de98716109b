"""Frames inputs at MuQ's size: warm load of 1,202 segments and a frames_probe epoch (CPU).

    python benchmarks/frames_pipeline.py                       # export, scale, then time
    python benchmarks/frames_pipeline.py --repeats 3 --probe-widths none 128

What is timed (MuQ's frames are [T ~ 650, 1024] float16, 26 s at 25 frames/s; no MuQ
frames are available here, so the benchmark builds frames of that size from real ones):

1. real frames: ``note_sa`` (hidden size 64, random init, seed 0) readout frames of every
   PercePiano segment, one per note, 128 wide (``runners/export_frames.py``);
2. MuQ-sized: each segment's frames projected to ``--width`` by one fixed random matrix
   (seeded, scaled 1 / sqrt(128)) and resampled in time (nearest frame) so that the mean
   length is ``--mean-frames`` and relative lengths are the real ones; float16, written as
   one ``.pt`` dict with ``write_frames``;
3. cold load (fresh cache folder: read, check, build the contiguous cache), warm load
   (``load_frames``: the cached table, memory-mapped) and warm load + every segment's
   frames read and cast to float32 once (median of ``--repeats``);
4. one ``frames_probe`` epoch on performer fold 0 (834 training segments + validation on
   175) through ``train_run``, at each ``--probe-widths`` (none = pooling at 1024), batch 8,
   ``--threads`` torch threads: the wall time of the first epoch from ``history.csv``.

Writes results/benchmarks/frames_pipeline.json.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def _median_seconds(fn, repeats: int) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), runs


def muq_sized(real: dict, width: int, mean_frames: int, seed: int = 0) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    first = next(iter(real.values()))
    projection = (rng.standard_normal((first.shape[1], width)) / np.sqrt(first.shape[1])).astype(np.float32)
    scale = mean_frames / np.mean([v.shape[0] for v in real.values()])
    out = {}
    for key, frames in real.items():
        length = max(1, round(frames.shape[0] * scale))
        rows = np.linspace(0, frames.shape[0] - 1, length).round().astype(int)
        out[key] = (frames[rows].astype(np.float32) @ projection).astype(np.float16)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--mean-frames", type=int, default=650)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--probe-widths", nargs="+", default=["none", "128"])
    parser.add_argument("--folder", default="results/benchmarks/frames", help="where the frames files are written")
    parser.add_argument("--skip-cold", action="store_true", help="reuse the frames cache of $PIANOEVAL_CACHE (its "
                                                                  "cold load, if any, is not timed)")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    import torch

    from pianoeval.data.frames import load_frames, write_frames
    from pianoeval.experiment import ExperimentConfig
    from pianoeval.fusion.export import export_frames
    from pianoeval.train import train_run

    folder = Path(args.folder)
    real_path, big_path = folder / "note_sa_h64.pt", folder / f"muq_sized_{args.width}.pt"
    figures: dict = {"width": args.width, "mean_frames": args.mean_frames, "threads": args.threads}
    if not real_path.is_file():
        summary = export_frames("note_sa", real_path, overrides={"model.hidden_size": 64, "seed": 0}, progress=False)
        print(summary.line())
        figures["export_seconds"] = summary.seconds
    if not big_path.is_file():
        real = {k: v.numpy() for k, v in torch.load(real_path, weights_only=True).items()}
        started = time.perf_counter()
        write_frames(big_path, muq_sized(real, args.width, args.mean_frames))
        print(f"MuQ-sized frames written in {time.perf_counter() - started:.1f} s: {big_path}")

    with tempfile.TemporaryDirectory() as cache:
        if not args.skip_cold:
            os.environ["PIANOEVAL_CACHE"] = cache  # a fresh frames cache (the note features are not needed below)
        started = time.perf_counter()
        loaded = load_frames(big_path, warn=lambda *_: None)
        figures["cold_load_seconds"] = None if args.skip_cold else time.perf_counter() - started
        table = loaded.table
        figures.update(segments=len(table), frames=int(len(table.frames)), gigabytes=table.frames.nbytes / 1e9,
                       mean_frames_per_segment=len(table.frames) / len(table))
        cold = "" if args.skip_cold else f"; cold load (read, check, cache) {figures['cold_load_seconds']:.1f} s"
        print(f"{len(table)} segments, {len(table.frames):,} frames x {table.width} {table.frames.dtype} "
              f"({table.frames.nbytes / 1e9:.2f} GB){cold}")
        seconds, runs = _median_seconds(lambda: load_frames(big_path, warn=lambda *_: None), args.repeats)
        figures["warm_load_seconds"] = seconds
        print(f"warm load (cached table, memory-mapped):     {seconds:6.3f} s   runs {[round(r, 3) for r in runs]}")

        def load_and_read():  # the data side of an epoch over every segment: read, cast to float32
            again = load_frames(big_path, warn=lambda *_: None).table
            return [float(np.asarray(again.get(k), dtype=np.float32).sum()) for k in again.keys]

        seconds, runs = _median_seconds(load_and_read, args.repeats)
        figures["warm_load_and_read_seconds"] = seconds
        print(f"warm load + every frame read once (float32): {seconds:6.2f} s   runs {[round(r, 2) for r in runs]}")

        for width in args.probe_widths:
            probe_width = None if width == "none" else int(width)
            config = ExperimentConfig.resolve({
                "model": {"name": "frames_probe", "probe_width": probe_width},
                "data": {"frames": str(big_path), "split": "performer", "fold": 0},
                "train": {"max_epochs": 1, "optimizer": "adamw", "lr": 1e-3}, "seed": 0}, "<bench>")
            with tempfile.TemporaryDirectory() as run:
                result = train_run(config, Path(run), threads=args.threads, verbose=False)
                epoch = float(json.loads((Path(run) / "metrics.json").read_text())["wall_seconds"])
                history = pd.read_csv(Path(run) / "history.csv")
            figures[f"probe_{width}_epoch_seconds"] = float(history["seconds"].iloc[0])
            figures[f"probe_{width}_run_seconds"] = epoch
            print(f"frames_probe (probe_width {width}) epoch, performer fold 0: {history['seconds'].iloc[0]:6.1f} s "
                  f"(whole run with set-up and best-checkpoint evaluation {epoch:.1f} s; status {result.status})")
        if not args.skip_cold:
            os.environ.pop("PIANOEVAL_CACHE")

    out = Path("results/benchmarks/frames_pipeline.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"repeats": args.repeats, **figures}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
