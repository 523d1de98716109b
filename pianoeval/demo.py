"""``make demo``: one real, short sweep, and where to look next."""

from __future__ import annotations

import yaml


def main() -> int:
    # lazy: the sweep stack loads once the runner's flags parse (a bad flag is one line, at once)
    from pianoeval.sweep import SweepOptions, load_space, run_sweep

    space = load_space("smoke")
    print(f"[demo] sweeping `{space.name}` on the bundled PercePiano data: {space.budget.num_samples} trials of "
          f"{space.base.model_name}, ASHA over {space.budget.max_epochs} epochs (a few minutes on two cores)")
    result = run_sweep(space, SweepOptions())
    counts = result.trials["status"].value_counts().to_dict()
    print(f"\n[demo] {len(result.trials)} trials in {result.wall_seconds / 60:.1f} min: "
          + ", ".join(f"{n} {status}" for status, n in counts.items()))
    if result.best_config:
        best = dict(result.best_config)
        provenance = best.pop("provenance", {})
        print(f"[demo] best trial {provenance.get('trial_id')}: {space.metric} = {provenance.get('value'):.4f} "
              f"(epoch {provenance.get('best_epoch')}); its config:\n")
        print(yaml.safe_dump({k: best[k] for k in ("model", "train")}, sort_keys=False))
    print(f"[demo] results:   {result.run_dir}  (trials.parquet, best.yaml, summary.md)")
    print(f"[demo] report:    python runners/report.py {result.run_dir}   (Markdown + PNG plots)")
    print(f"[demo] notebook:  results/notebooks/sweep_report.ipynb with run_dir = \"{result.run_dir}\"")
    print(f"[demo] rerun best: python runners/train.py --config {result.run_dir / 'best.yaml'}")
    return 0
