"""Real, tiny runs for the report tests, made once per session on the bundled data: a smoke
sweep (3 trials, 2 epochs, ASHA after epoch 1) and a one-stage staged elimination of
bilstm_baseline vs note_sa (fold 0, 1 epoch; tests/report/ablations/staged_tiny.yaml) whose
stage folder is also the ablation run under test."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

HERE = Path(__file__).parent
TINY = ["data.max_train_segments=40", "model.hidden_size=16", "data.eval_batch_size=64"]


def _ablate_args(name: str, storage: Path, **extra) -> argparse.Namespace:
    defaults = dict(name=name, dry_run=False, no_estimate=True, resume=False, run_id="report", address=None,
                    storage=str(storage), num_cpus=None, max_concurrent=None, only=None, set=list(TINY), until=None,
                    max_failures=2, connect_timeout=30.0, logger=None)
    return argparse.Namespace(**{**defaults, **extra})


@pytest.fixture(scope="session")
def report_storage(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("report_results")


@pytest.fixture(scope="session")
def sweep_run_dir(ray_session, report_storage) -> Path:
    from pianoeval.sweep import SweepOptions, load_space, run_sweep

    space = load_space("smoke", {"budget.num_samples": 3, "budget.max_epochs": 2, "data.max_train_segments": 40})
    # One trial at a time: ASHA then sees the (seeded, deterministic) trials in sampling order, so
    # the same trial is pruned at epoch 1 every time; two at once would race to the rung.
    options = SweepOptions(storage=str(report_storage), run_id="report", max_concurrent=1, print_fn=lambda line: None)
    result = run_sweep(space, options)
    return result.run_dir


@pytest.fixture(scope="session")
def staged_run_dir(ray_session, report_storage) -> Path:
    from pianoeval.ablation.cli import main

    assert main(_ablate_args(str(HERE / "ablations" / "staged_tiny.yaml"), report_storage)) == 0
    return report_storage / "ablations" / "staged_tiny" / "report"


@pytest.fixture(scope="session")
def ablation_run_dir(staged_run_dir) -> Path:
    """An ordinary ablation run: the staged run's stage folder, written by the same
    ``run_trial_set`` as ``runners/ablate.py han_incremental --only note_sa --set folds=[0]
    --set budget.max_epochs=1`` (same two variants, split, fold, budget and headline test/r2).
    Sharing it saves a second Ray trial set (~30 s) in the tests' time budget."""
    return staged_run_dir / "round1"


def _check_report(report: Path, min_bytes: int = 8_000) -> dict[str, tuple[int, int]]:
    """Every figure under figures/ is a valid, non-trivial PNG referenced by report.md (and
    vice versa); returns {figure name: (width, height)}."""
    import re

    from PIL import Image

    text = report.read_text()
    referenced = set(re.findall(r"\]\((figures/[^)]+\.png)\)", text))
    written = {str(p.relative_to(report.parent)) for p in (report.parent / "figures").glob("*.png")}
    assert referenced == written, (referenced, written)
    sizes = {}
    for name in written:
        path = report.parent / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert path.stat().st_size > min_bytes, (name, path.stat().st_size)
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.width >= 400 and image.height >= 200, (name, image.size)
            sizes[Path(name).stem] = image.size
    return sizes


@pytest.fixture
def check_report():
    return _check_report
