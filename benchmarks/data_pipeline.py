"""Data-pipeline timings on the bundled PercePiano data (CPU, this process).

    python benchmarks/data_pipeline.py                # 3 repeats of each figure
    python benchmarks/data_pipeline.py --repeats 5 --workers 2

1. Feature extraction from the stored alignments (no realignment): all 1,202 segments
   into a fresh cache directory, ``--workers`` processes. The cold path of a new checkout.
2. Warm load: the cached note-feature store read back (what every run pays).
3. Datasets for one fold: splitting, normalising and tensorising (``note_datasets``).
4. Batches: one epoch of training batches (batch 8, ``collate_notes``) for performer
   fold 0, as notes per second.

Every figure is the median of ``--repeats`` runs. Writes results/benchmarks/data_pipeline.json.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def _median_seconds(work, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="extraction processes")
    parser.add_argument("--skip-cold", action="store_true", help="skip the (slow) extraction figure")
    args = parser.parse_args()

    import torch
    from torch.utils.data import DataLoader

    from pianoeval.data import load_percepiano
    from pianoeval.data import collate_notes
    from pianoeval.data.cache import build_store

    torch.set_num_threads(1)
    figures: dict[str, float] = {}
    data = load_percepiano()
    n_segments = len(data.segments)

    if not args.skip_cold:
        def cold():
            with tempfile.TemporaryDirectory() as tmp:
                os.environ["PIANOEVAL_CACHE"] = tmp
                try:
                    build_store(data.root, data.segments, workers=args.workers, progress=False, warn=lambda *_: None)
                finally:
                    os.environ.pop("PIANOEVAL_CACHE")
        seconds, runs = _median_seconds(cold, args.repeats)
        figures["extract_seconds"] = seconds
        figures["extract_segments_per_s"] = n_segments / seconds
        print(f"extract features (stored alignments, {args.workers} workers): {seconds:6.1f} s "
              f"= {n_segments / seconds:5.1f} segments/s   runs {[round(r, 1) for r in runs]}")

    build_store(data.root, data.segments, progress=False, warn=lambda *_: None)  # make sure the warm cache exists
    seconds, runs = _median_seconds(lambda: build_store(data.root, data.segments, progress=False), args.repeats)
    figures["warm_load_seconds"] = seconds
    print(f"warm cache load:                              {seconds:6.2f} s   runs {[round(r, 2) for r in runs]}")

    seconds, runs = _median_seconds(lambda: data.note_datasets("performer", 0, "full"), args.repeats)
    figures["fold_datasets_seconds"] = seconds
    print(f"fold datasets (performer 0, full features):   {seconds:6.2f} s   runs {[round(r, 2) for r in runs]}")

    train, _, _, _ = data.note_datasets("performer", 0, "full")
    loader = DataLoader(train, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0),
                        collate_fn=collate_notes)
    notes = [0]

    def epoch():
        notes[0] = sum(int(batch.lengths.sum()) for batch in loader)
    seconds, runs = _median_seconds(epoch, args.repeats)
    figures["epoch_batches_seconds"] = seconds
    figures["notes_per_s"] = notes[0] / seconds
    print(f"one epoch of training batches ({len(loader)} x 8):   {seconds:6.2f} s "
          f"= {notes[0] / seconds / 1e3:6.0f} k notes/s   runs {[round(r, 2) for r in runs]}")

    out = Path("results/benchmarks/data_pipeline.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"repeats": args.repeats, "workers": args.workers, **figures}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
