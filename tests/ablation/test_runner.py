"""Ablations for real on the bundled data (tiny models, 1 epoch, fold 0)."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from pianoeval.ablation import load_ablation, load_run
from pianoeval.ablation.cli import main
from pianoeval.paths import REPO_ROOT
from pianoeval.report import ablation_report

TINY = ["budget.max_epochs=1", "folds=[0]", "seeds=[0]", "data.max_train_segments=40", "model.hidden_size=16",
        "data.eval_batch_size=64"]


def _args(name, storage, **extra):
    import argparse

    defaults = dict(name=name, dry_run=False, no_estimate=True, resume=False, run_id="test", address=None,
                    storage=str(storage), num_cpus=None, max_concurrent=None, only=None, set=list(TINY), until=None,
                    max_failures=2, connect_timeout=30.0, logger=None)
    return argparse.Namespace(**{**defaults, **extra})


def test_han_incremental_runs_every_variant_and_compares_them(ray_session, tmp_path):
    assert main(_args("han_incremental", tmp_path)) == 0
    run_dir = tmp_path / "ablations" / "han_incremental" / "test"
    trials = pd.read_parquet(run_dir / "trials.parquet")
    variants = ["bilstm_baseline", "note_sa", "note_voice", "note_beat", "note_voice_beat", "han", "flat_bilstm_7"]
    references = ["global_mean", "music_mean"]  # the spec's default reference baselines
    assert sorted(trials["variant"]) == sorted(variants + references) and (trials["status"] == "completed").all()
    assert trials["test/r2"].notna().all() and trials["test/r2/timbre_soft_to_loud"].notna().all()
    comparison = (run_dir / "comparison.md").read_text()
    for variant in variants:
        assert f"| {variant} |" in comparison or f"| **{variant}** |" in comparison, variant
    assert "Paired deltas vs `bilstm_baseline`" in comparison or "vs bilstm_baseline" in comparison
    run = load_run(run_dir)
    deltas = run.deltas("test/r2")
    assert set(deltas["variant"]) == set(variants) - {"bilstm_baseline"}  # references are not competitors
    assert list(run.per_dimension("test/r2").columns)[:2] == ["timing_stable_to_unstable", "articulation_short_to_long"]

    # reference rows, R2 and pairwise, in every metric's table; fitted on the same 40 training segments
    assert run.references == references
    rows = trials.set_index("variant")
    assert rows.loc["music_mean", "test/pairwise_acc"] == 0.5  # one value per excerpt: every pair a tie
    assert rows.loc["music_mean", "fit/train_items"] == 40 and rows.loc["global_mean", "epochs_run"] == 1
    for metric in ("test/r2", "test/pairwise_acc"):
        section = comparison.split(f"## `{metric}`")[1].split("\n## ")[0]
        assert "| *global_mean (reference)* |" in section and "| *music_mean (reference)* |" in section, metric
        assert "| music_mean |" not in section  # not in the paired deltas
    assert "## Reference baselines" in comparison and "fallback_items" in comparison
    assert (run_dir / "references" / "music_mean" / "fold0-seed0" / "predictions.parquet").is_file()
    report, notes = ablation_report(run_dir)
    text = report.read_text()
    assert "| *music_mean (reference)* |" in text and "### Reference baselines" in text and not notes


def test_han_zeroed_evaluates_trained_weights_with_levels_zeroed(ray_session, tmp_path, monkeypatch, capsys):
    from pianoeval.ablation import runner

    evaluate_one = runner.evaluate_one

    def measure_eval_fails(trial, weights):  # a deterministic failure of one eval-only trial
        if trial.variant == "zero_measure_eval":
            raise RuntimeError("injected: evaluation failed\non its last line")
        return evaluate_one(trial, weights)

    monkeypatch.setattr(runner, "evaluate_one", measure_eval_fails)
    only = ["zero_beat_eval", "zero_measure_eval", "zero_beat_train"]
    assert main(_args("han_zeroed", tmp_path, only=only)) == 0
    run_dir = tmp_path / "ablations" / "han_zeroed" / "test"
    run = load_run(run_dir)
    rows = run.trials.set_index("variant")
    assert set(rows.index) == {"han_total_cat", "zero_beat_train", "zero_beat_eval", "zero_measure_eval",
                               "global_mean", "music_mean"}
    # the failed eval-only trial is a row, counted in one line; the others went on and the results were written
    failed = rows.loc["zero_measure_eval"]
    assert failed["status"] == "error" and failed["error"] == "RuntimeError: on its last line"
    assert failed["eval_only"] and pd.isna(failed["test/r2"]) and failed["epochs_run"] == 0
    out = capsys.readouterr().out
    assert "[ablate] 1 of 2 eval-only trials failed (their rows say why): zero_measure_eval/fold0/seed0" in out
    line = "- `zero_measure_eval` fold 0 seed 0: error (RuntimeError: on its last line)"
    assert line in (run_dir / "comparison.md").read_text() and line in ablation_report(run_dir)[0].read_text()
    assert rows.loc["zero_beat_eval", "eval_only"] and rows.loc["zero_beat_eval", "source_variant"] == "han_total_cat"
    assert rows.loc["zero_beat_eval", "epochs_run"] == 0
    # same weights, beat block removed at evaluation: the predictions change
    assert rows.loc["zero_beat_eval", "test/r2"] != rows.loc["han_total_cat", "test/r2"]
    assert Path(rows.loc["zero_beat_eval", "trial_dir"]) == Path(rows.loc["han_total_cat", "trial_dir"]) / "run"


SYMBOLIC_SCREEN = ["bilstm_baseline", "note_sa", "han", "s2_gnn"]
STAGED = ["stages.round1.budget.max_epochs=1", "stages.round1.budget.asha_grace_period=1",
          "stages.round2.budget.max_epochs=1", "stages.round2.folds=[0,1]", "stages.round3.folds=[0,1]", "seeds=[0]",
          f"stages.round1.candidates=[{','.join(SYMBOLIC_SCREEN)}]", "data.max_train_segments=40",
          "data.eval_batch_size=64"] + [f"candidates.{name}.model.hidden_size=16" for name in SYMBOLIC_SCREEN]


def test_staged_elimination_resumes_at_the_right_stage_after_a_kill(ray_session, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(REPO_ROOT / "runners" / "ablate.py"), "staged_elimination", "--storage", str(tmp_path),
           "--run-id", "killed"] + [arg for item in STAGED for arg in ("--set", item)]
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            deadline = time.time() + 900
            while "[staged] round1 done" not in log.read_text():
                assert driver.poll() is None and time.time() < deadline, log.read_text()[-3000:]
                time.sleep(1)
        finally:
            os.killpg(driver.pid, signal.SIGKILL)  # killed as round 2 starts
            driver.wait()
    run_dir = tmp_path / "ablations" / "staged_elimination" / "killed"
    round1 = (run_dir / "round1" / "trials.parquet").read_bytes()
    round1_trials = sorted(p.name for p in (run_dir / "round1").glob("trial_*"))
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "[staged] round1: already done" in resumed.stdout
    assert (run_dir / "round1" / "trials.parquet").read_bytes() == round1  # round 1 not rerun
    assert sorted(p.name for p in (run_dir / "round1").glob("trial_*")) == round1_trials
    for trial in (run_dir / "round1").glob("trial_*"):  # named by candidate, with its TensorBoard curves
        assert trial.name.endswith("-fold0-seed0") and list(trial.glob("events.out.tfevents.*")), trial.name
    state = json.loads((run_dir / "stages.json").read_text())
    assert state["stages"]["round1"]["status"] == "done" and state["stages"]["round2"]["status"] == "done"
    assert set(state["stages"]["round2"]["candidates"]) == set(state["stages"]["round1"]["kept"])
    assert list(state["stages"]["round2"]["winners"]) == ["symbolic"]
    round2 = pd.read_parquet(run_dir / "round2" / "trials.parquet")
    assert set(round2["fold"]) == {0, 1}
    assert "winner of track symbolic" in (run_dir / "elimination.md").read_text()
    # round 3 fuses an audio and a symbolic winner: with no audio candidate screened it says so and stops
    assert "[staged] round3: fuses the audio and symbolic winners of round2, which has no audio winner" in resumed.stdout
    assert "round3" not in state["stages"]


def test_staged_elimination_runs_rounds_1_to_3_and_fuses_the_track_winners(ray_session, tiny_backbone, tmp_path):
    """The real staged_elimination.yaml, shrunk: an audio and two symbolic candidates are
    screened, round 2 picks one winner per track, round 3 freezes both (their round-2
    weights) and trains fusion candidates on their frames, and picks the fusion winner."""
    from pianoeval.ablation.staged import load_staged

    backbone = tiny_backbone
    audio = {"soundfonts": ["timgm6mb"], "eval_soundfont": "timgm6mb", "max_seconds": 3.0, "max_eval_segments": 12,
             "workers": 1, "augment": {"rir_bank_size": 2}, "robustness_eval": False}
    fusion = ["fusion_audio_only", "fusion_symbolic_only", "f3_gated"]
    sets = ["stages.round1.budget.max_epochs=1", "stages.round1.budget.asha_grace_period=null",
            "stages.round1.tiers=[T1]", "stages.round2.budget.max_epochs=1", "stages.round2.folds=[0]",
            "stages.round2.tiers=[T1]", "stages.round3.budget.max_epochs=1", "stages.round3.folds=[0]",
            f"stages.round3.candidates=[{','.join(fusion)}]", "stages.round1.candidates=[a1_lora,bilstm_baseline,s2_gnn]",
            "seeds=[0]", "data.max_train_segments=12", "data.eval_batch_size=64",
            f"candidates.a1_lora.model.backbone_path={backbone}", f"candidates.a1_lora.model.audio={json.dumps(audio)}",
            "candidates.a1_lora.model.z_dim=16", "candidates.s2_gnn.model.hidden_size=16",
            "candidates.bilstm_baseline.model.hidden_size=16"]
    sets += [f"stages.round3.overrides.model.{key}={value}" for key, value in
             {"z_dim": 16, "head_hidden": 16, "pool_heads": 2}.items()]
    assert main(_args("staged_elimination", tmp_path, set=sets, run_id="fused", until="round1")) == 0
    run_dir = tmp_path / "ablations" / "staged_elimination" / "fused"
    state = json.loads((run_dir / "stages.json").read_text())
    assert list(state["stages"]) == ["round1"] and state["stages"]["round1"]["status"] == "done"
    assert "## round2\n\nFolds [0], budget 1 epochs, early stopping 20, tiers T1; rule: track_winner on " \
           "val/pairwise_acc\n\nNot run yet." in (run_dir / "elimination.md").read_text()
    assert main(_args("staged_elimination", tmp_path, set=sets, run_id="fused", resume=True)) == 0  # goes on
    state = json.loads((run_dir / "stages.json").read_text())
    assert state["stages"]["round1"]["candidates"] == ["a1_lora", "bilstm_baseline", "s2_gnn"]
    winners = state["stages"]["round2"]["winners"]
    assert winners["audio"] == "a1_lora" and winners["symbolic"] in ("bilstm_baseline", "s2_gnn")
    round3 = state["stages"]["round3"]
    assert round3["status"] == "done" and round3["encoders"] == {"audio": "a1_lora", "symbolic": winners["symbolic"]}
    assert set(round3["winners"]) == {"fusion"} and round3["winners"]["fusion"] in fusion
    trials = pd.read_parquet(run_dir / "round3" / "trials.parquet")
    assert sorted(trials["variant"]) == sorted(fusion) and (trials["status"] == "completed").all()
    assert trials["val/diag/gate_mean/timing_stable_to_unstable"].notna().sum() == 1  # F3's gates, in the table
    # the fused encoders are the round-2 winners' own weights, copied per fold and seed
    copied = run_dir / "round3" / "encoders" / "symbolic" / "fold0-s0" / "model.pt"
    round2 = pd.read_parquet(run_dir / "round2" / "trials.parquet").set_index("variant")
    source = Path(round2.loc[winners["symbolic"], "trial_dir"])
    source = source if source.is_absolute() else run_dir / "round2" / source
    assert copied.read_bytes() == (source / "run" / "model.pt").read_bytes()
    config = load_staged(REPO_ROOT / "ablations" / "staged_elimination.yaml", None)
    assert "fused encoders" in (run_dir / "elimination.md").read_text() and config.stages["round3"].fuse == "round2"


def test_a_trial_set_killed_before_tune_saved_any_state_restores_its_whole_grid(ray_session, monkeypatch, tmp_path):
    """Killed between Tuner() writing tuner.pkl and the first experiment state: the
    restore must know the trial grid (tuner.pkl does not keep it), not run one trial
    with an empty config."""
    from ray import tune

    from pianoeval.ablation import runner

    spec = load_ablation("attention_temperature", {"folds": [0], "seeds": [7]})
    monkeypatch.setattr(runner, "init_ray", lambda options: None)
    monkeypatch.setattr(tune.Tuner, "fit", lambda self: self._local_tuner.param_space)  # "killed" here
    options = runner.AblationOptions(print_fn=lambda line: None)
    trained = [t for t in spec.trials if not t.reference]  # what run_trial_set gives Tune
    first, _ = runner.train_trials(spec, trained, tmp_path / "run", options)
    assert (tmp_path / "run" / "tuner.pkl").is_file()
    resumed, _ = runner.train_trials(spec, trained, tmp_path / "run", replace(options, resume=True))
    assert resumed == first and len(first["trial"]["grid_search"]) == 3


def test_gpu_trials_on_a_cluster_without_gpus_run_on_cpu_and_count_no_gpu_time(ray_session, monkeypatch, tmp_path):
    from ray import tune

    from pianoeval.ablation import runner

    spec = load_ablation("attention_temperature", {"folds": [0], "seeds": [7], "resources.gpu": 0.5})
    monkeypatch.setattr(runner, "init_ray", lambda options: None)
    monkeypatch.setattr(tune.Tuner, "fit", lambda self: [])
    lines = []
    _, resources = runner.train_trials(spec, list(spec.trials), tmp_path / "run", runner.AblationOptions(
        print_fn=lines.append))
    assert spec.resources.gpu == 0.5 and resources.gpu == 0 and resources.cpu == spec.resources.cpu
    assert any("no GPU" in line for line in lines)
    row = runner._row(spec.trials[0], {"status": "completed", "wall_seconds": 10.0},
                      runner.run_context(spec, resources, tmp_path / "run", "abc1234"))
    assert row["gpu_seconds"] == 0 and row["cpu_seconds"] == 10.0 * spec.resources.cpu


def test_fusion_variants_answers_whether_fusion_beats_the_best_single_modality(ray_session, tiny_backbone, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "results"))
    backbone = tiny_backbone
    audio = {"soundfonts": ["timgm6mb"], "eval_soundfont": "timgm6mb", "max_seconds": 3.0, "max_eval_segments": 16,
             "workers": 1, "augment": {"rir_bank_size": 2}}
    sets = ["budget.max_epochs=1", "folds=[0]", "seeds=[0,1]", "data.max_train_segments=16", "data.eval_batch_size=64",
            f"model.audio_encoder.backbone_path={backbone}", f"model.audio_encoder.audio={json.dumps(audio)}",
            "model.symbolic_encoder.pretrained=false", "model.symbolic_encoder.hidden_size=16",
            "model.z_dim=16", "model.head_hidden=16", "model.pool_heads=2", "model.fusion_dim=8", "model.fusion_heads=2"]
    assert main(_args("fusion_variants", tmp_path, set=sets)) == 0
    run_dir = tmp_path / "ablations" / "fusion_variants" / "test"
    trials = pd.read_parquet(run_dir / "trials.parquet")
    # 6 variants x 2 seeds, and the reference baselines global_mean and music_mean per seed
    assert len(trials) == 12 + 4 and (trials["status"] == "completed").all(), trials[["variant", "status", "error"]]
    comparison = (run_dir / "comparison.md").read_text()
    assert "## Does fusion beat the best single modality? (`test/pairwise_acc`)" in comparison
    for variant in ("f1_xattn", "f2_concat", "f3_gated", "score_conditioned"):
        assert f"`{variant}` beats it on" in comparison
    assert "### F3 gates of `f3_gated`" in comparison and "| timing_stable_to_unstable |" in comparison
    assert "xattn_entropy/audio_to_symbolic" in comparison
    from pianoeval.report.ablation import ablation_report

    report, _ = ablation_report(run_dir, tmp_path / "report")
    assert "Does fusion beat the best single modality?" in report.read_text()
    assert (tmp_path / "report" / "figures" / "fusion_answer.png").is_file()


def test_an_ablation_whose_every_run_failed_says_so_and_exits_1(tmp_path, monkeypatch, capsys):
    """No run produced the headline metric: one line with the first error (no deltas traceback), exit 1.
    Here no trial comes back from Tune, so each is recorded as an error by the runner itself."""
    from pianoeval.ablation import runner

    monkeypatch.setattr(runner, "init_ray", lambda options: None)
    monkeypatch.setattr(runner, "train_trials", lambda spec, trials, run_dir, options: ([], spec.resources))
    monkeypatch.setattr(runner, "unfinished_trials", lambda results, expected, finished=None: False)
    assert main(_args("han_incremental", tmp_path, run_id="failed", set=TINY + ["reference_baselines=[]"])) == 1
    out = capsys.readouterr().out
    assert "[ablate] no run produced test/" in out and "first error: missing from Ray Tune's results" in out
    assert (tmp_path / "ablations" / "han_incremental" / "failed" / "comparison.md").is_file()
