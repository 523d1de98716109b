"""Input files in provenance: resolved.yaml records each one's path and content hash, and a
run that continues or repeats a recorded one says when a file changed in between (a
copied-and-edited labels file here), naming the file and both hashes, and goes on."""

import argparse
import json
import shutil

import pytest
import yaml

from pianoeval.experiment import ExperimentConfig
from pianoeval.provenance import changed_inputs, input_record
from pianoeval.train import train_run
from pianoeval.train.cli import main as train_main


def labels_file(percepiano, path):
    """A labels JSON of two dimensions for every PercePiano segment (values from the real labels)."""
    values = {s.segment_id: {"warmth": float(s.labels[0]), "drive": float(s.labels[1])} for s in percepiano.segments}
    path.write_text(json.dumps({"dimensions": ["warmth", "drive"], **values}))
    return path


def edit_one_label(path):
    content = json.loads(path.read_text())
    key = next(k for k in content if k != "dimensions")
    content[key]["warmth"] = round(1.0 - content[key]["warmth"], 6)
    path.write_text(json.dumps(content))


def config(labels, name="global_mean", **train) -> ExperimentConfig:
    model = {"name": name} if name == "global_mean" else {"name": name, "hidden_size": 16, "num_heads": 4}
    return ExperimentConfig.resolve({"model": model, "data": {"labels": str(labels), "max_train_segments": 16,
                                                              "eval_batch_size": 64},
                                     "train": {"max_epochs": 1, "lr": 1e-3, **train}})


def test_a_rerun_of_a_resolved_yaml_says_which_input_changed_and_goes_on(percepiano, tmp_path, monkeypatch, capsys):
    labels = labels_file(percepiano, tmp_path / "labels.json")
    run = tmp_path / "run"
    train_run(config(labels), out_dir=run, verbose=False)
    recorded = yaml.safe_load((run / "resolved.yaml").read_text())["provenance"]["inputs"]
    assert recorded == input_record(config(labels)) and recorded["data.labels"]["path"] == str(labels)
    assert changed_inputs(run / "resolved.yaml", [config(labels)]) == []  # nothing changed: nothing said

    edit_one_label(labels)
    [line] = changed_inputs(run / "resolved.yaml", [config(labels)])
    old, new = recorded["data.labels"]["sha256"][7:23], input_record(config(labels))["data.labels"]["sha256"][7:23]
    assert line.startswith(f"WARNING: data.labels {labels} changed since {run / 'resolved.yaml'} recorded it")
    assert f"sha256 {old} then, {new} now" in line and old != new

    # the same through the runner: python runners/train.py --config RUN/resolved.yaml reruns it
    monkeypatch.setenv("PIANOEVAL_RESULTS", str(tmp_path / "results"))
    args = argparse.Namespace(model=None, config=str(run / "resolved.yaml"), split=None, fold=None, seed=None,
                              set=None, out=None, resume=False, evaluate_stopped=False, threads=1, progress=False,
                              dry_run=False)
    capsys.readouterr()
    assert train_main(args) == 0  # warned, not refused
    out = capsys.readouterr().out.splitlines()
    assert [x for x in out if "WARNING: data.labels" in x] == [f"[train] {line}"]

    # a sweep's or an ablation's run folder: one line per changed file, however many trials read it
    for trial in ("trial_a", "trial_b"):
        (tmp_path / "sweep" / trial / "run").mkdir(parents=True)
        shutil.copy(run / "resolved.yaml", tmp_path / "sweep" / trial / "run" / "resolved.yaml")
    assert len(changed_inputs(tmp_path / "sweep", [config(labels)] * 3)) == 1
    # an input the rerun no longer reads (pointed elsewhere) is not reported
    other = labels_file(percepiano, tmp_path / "other.json")
    assert changed_inputs(run / "resolved.yaml", [config(other)]) == []


def test_a_resumed_run_whose_labels_changed_says_so_and_keeps_the_line_in_its_summary(percepiano, tmp_path, capsys):
    labels = labels_file(percepiano, tmp_path / "labels.json")
    train_run(config(labels, "note_sa"), out_dir=tmp_path / "run", verbose=False)
    edit_one_label(labels)
    capsys.readouterr()
    resumed = train_run(config(labels, "note_sa", max_epochs=2), out_dir=tmp_path / "run", verbose=True,
                        resume_from=tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert resumed.status == "completed" and resumed.epochs_run == 2
    [line] = [w for w in resumed.warnings if "changed since" in w]
    assert line.startswith(f"WARNING: data.labels {labels} changed since {tmp_path / 'run' / 'resolved.yaml'}")
    assert f"[train] {line}" in capsys.readouterr().out
    assert line in json.loads((tmp_path / "run" / "metrics.json").read_text())["warnings"]
    # resolved.yaml now records the file as the run read it last
    recorded = yaml.safe_load((tmp_path / "run" / "resolved.yaml").read_text())["provenance"]["inputs"]
    assert recorded["data.labels"] == input_record(config(labels))["data.labels"]


class _Started(Exception):
    """Raised in place of the run: the check under test happens before it."""


def _recorded_run(folder, labels):
    """A run folder of two trials that read ``labels`` in an earlier version (another hash)."""
    for trial in ("trial_a", "trial_b"):
        (folder / trial / "run").mkdir(parents=True)
        old = {"path": str(labels), "sha256": "sha256:" + "0" * 64}
        (folder / trial / "run" / "resolved.yaml").write_text(yaml.safe_dump({"provenance": {"inputs": {
            "data.labels": old}}}))


def test_sweep_and_ablate_resume_say_which_input_changed_before_the_run_goes_on(percepiano, tmp_path, monkeypatch,
                                                                                capsys):
    import pianoeval.ablation.runner
    import pianoeval.sweep.cli
    from pianoeval.ablation.cli import main as ablate_main
    from pianoeval.sweep.cli import main as sweep_main

    labels = labels_file(percepiano, tmp_path / "labels.json")
    now = input_record(config(labels))["data.labels"]["sha256"][7:23]
    common = dict(resume=True, run_id="earlier", storage=str(tmp_path), address=None, num_cpus=None,
                  max_concurrent=None, max_failures=0, connect_timeout=30.0, logger=None, dry_run=False)

    space = tmp_path / "labelled.yaml"
    space.write_text(f"model: {{name: note_voice, hidden_size: 16}}\ndata: {{labels: {labels}}}\n"
                     "parameters:\n  train.lr: {distribution: loguniform, low: 1.0e-4, high: 1.0e-2}\n"
                     "budget: {max_epochs: 1, num_samples: 1}\n")
    _recorded_run(tmp_path / "sweeps" / "labelled" / "earlier", labels)
    (tmp_path / "sweeps" / "labelled" / "earlier" / "sweep.yaml").write_text("space: labelled\n")
    monkeypatch.setattr(pianoeval.sweep.cli, "run_sweep", lambda *a, **k: (_ for _ in ()).throw(_Started()))
    with pytest.raises(_Started):
        sweep_main(argparse.Namespace(space=str(space), set=None, num_samples=None, dashboard=False,
                                      dashboard_host="127.0.0.1", **common))
    [line] = [x for x in capsys.readouterr().out.splitlines() if "WARNING" in x]  # one line for the two trials
    assert line.startswith(f"[sweep] WARNING: data.labels {labels} changed since ")
    assert f"sha256 {'0' * 16} then, {now} now" in line

    spec = tmp_path / "labelled_ablation.yaml"
    spec.write_text(f"base: {{model: {{name: han}}, data: {{labels: {labels}}}}}\nbaseline: han\n"
                    "variants: {han: {}, note_sa: {model: {name: note_sa}}}\nfolds: [0]\nreference_baselines: []\n")
    _recorded_run(tmp_path / "ablations" / "labelled_ablation" / "earlier", labels)
    (tmp_path / "ablations" / "labelled_ablation" / "earlier" / "ablation.yaml").write_text("ablation: x\n")
    monkeypatch.setattr(pianoeval.ablation.runner, "run_trial_set", lambda *a, **k: (_ for _ in ()).throw(_Started()))
    with pytest.raises(_Started):
        ablate_main(argparse.Namespace(name=str(spec), set=None, until=None, only=None, no_estimate=True, **common))
    [line] = [x for x in capsys.readouterr().out.splitlines() if "WARNING" in x]
    assert line.startswith(f"[ablate] WARNING: data.labels {labels} changed since ")
