"""benchmarks/gpu_check.py runs its own code on the CPU (``--device cpu``): the model checks
of one model (every family's are in tests/train/test_precision.py), han's throughput, and the packed sweep (two trials here, on the two CPUs of
the test session's Ray) run twice and once one at a time."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_dry_check_runs_every_part_and_its_packed_sweep_repeats_exactly(ray_session, tmp_path, monkeypatch):
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "results"))
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)

    code = gpu_check.main(["--device", "cpu", "--models", "s2_gnn", "--trials", "2", "--out", str(tmp_path)])

    report = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = report["models"]
    assert {(r["model"], r["precision"], r["deterministic"]) for r in rows} == {
        ("s2_gnn", p, d) for p in ("32", "bf16-mixed") for d in ("true", "warn")}
    assert all(r["status"] == "ok" for r in rows), [(r["model"], r["detail"]) for r in rows if r["status"] != "ok"]
    assert all(r["identical_repeat"] for r in rows if r["deterministic"] == "true")
    assert [r["batch"] for r in report["throughput"]] == [2, 2, 4, 4]
    assert all(r["notes_per_s"] > 0 for r in report["throughput"])
    sweep = report["sweep"]
    assert sweep["identical_metrics"] and sweep["statuses"] == ["completed"], sweep
    assert sweep["trial_devices"] == ["cpu", "cpu"]
    # whether both trials ran together depends on how busy this machine's CPUs are (worker
    # start-up); the check must report it faithfully, and exit 1 when they did not
    assert sweep["all_at_once"] == (sweep["most_running"] == 2)
    assert sweep["most_running"] >= 1 and 1 <= sweep["most_training_at_once"] <= 2
    assert code == (0 if sweep["all_at_once"] else 1)
    table = (tmp_path / "gpu_check.md").read_text()
    assert "## Models" in table and "## Throughput" in table and "| all trials running at once" in table
