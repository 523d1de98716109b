"""The GPU check: what a first GPU sweep needs, checked in one command (under 8 minutes on one GPU).

    python benchmarks/gpu_check.py                 # on the machine's GPU
    python benchmarks/gpu_check.py --device cpu    # a dry check of this script: tiny sizes, on the CPU

1. Models: every registered model, at tiny and default sizes, trains ``--steps`` steps on
   one repeated real training batch (``pianoeval.train.check``) at ``precision`` 32 and
   bf16-mixed, with ``deterministic`` true and warn. A row passes when every loss is finite
   and the last is below the first; under ``true`` the steps run twice from the same seed
   and must give identical losses; under ``warn`` the ops torch warns about are listed.
   A row whose data is not on the machine (ASAP, a pre-trained backbone) says so and
   counts as not run, not as failed.
2. Throughput: ``han`` (default size) at batch 8 and 64, notes per second and peak GPU
   memory, at 32 and bf16-mixed.
3. Packing: a 4-trial sweep of the smoke space at ``resources.gpu: 0.25`` on one GPU. All
   four must run at once: Tune must have had four trials RUNNING together (Ray granted each
   its quarter GPU); also reported, the most trials training at the same moment by their own
   start and end in Tune's records (``result.json``: last timestamp minus total time), which
   also shows how long worker processes took to start. Every trial's ``resolved.yaml`` must
   say it trained on the GPU. Its wall time is set against the same trials one at a time. The packed sweep runs twice with the same seed at
   ``deterministic: true`` and the trials' metrics must be identical.

Writes ``results/benchmarks/gpu_check.md`` (Markdown tables) and ``gpu_check.json``;
exits 1 when a check failed. ``--device cpu``: tiny sizes, throughput at batch 2 and 4, and
the sweep packs its trials at ``resources.cpu: 0.5`` on two CPUs (1 epoch, 8 training
segments) instead of quarters of a GPU; ``--models``, ``--sizes`` and ``--skip`` narrow it
(the test suite runs ``--device cpu --models s2_gnn --trials 2``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
import yaml

from pianoeval.audio.backbones import BackboneSpec, ConformerBackbone
from pianoeval.audio.checkpoint import save_backbone
from pianoeval.errors import DataError
from pianoeval.experiment import ExperimentConfig
from pianoeval.models.registry import get_model, list_models
from pianoeval.paths import results_root
from pianoeval.train.check import first_train_batch, repeated_batch_steps

PRECISIONS = ("32", "bf16-mixed")
DETERMINISM = (True, "warn")
BATCH = 8  # training segments, and the batch, of every model check
AUDIO_DATA = {"soundfonts": ["timgm6mb"], "eval_soundfont": "timgm6mb", "max_seconds": 3.0, "max_eval_segments": 6,
              "workers": 1, "augment": {"rir_bank_size": 2}}
ASAP_DATA = {"asap_max_pieces": 2, "asap_windows_per_performance": 1, "asap_window_seconds": 2.0}
HEADS_TINY = {"z_dim": 16, "head_hidden": 16, "pool_heads": 2}


SYMBOLIC_KINDS = ("midi_tokens", "note_graph", "hetero_graph", "midi_curves")


def model_overrides(name: str, size: str, backbone: str) -> dict:
    """``model:`` of one check: the tiny sizes of the model's input kind (a registry tag)
    or its registered defaults, with small audio data either way (rendering is not what is
    checked)."""
    entry = get_model(name)
    tiny = size == "tiny"
    if entry.input_kind == "notes":
        return {"hidden_size": 16, "num_heads": 4} if tiny else {}
    if entry.input_kind in SYMBOLIC_KINDS:
        return {**HEADS_TINY, "hidden_size": 16, "num_heads": 4, "num_layers": 1} if tiny else {}
    if entry.input_kind == "audio":
        staged = "stage1_steps" in entry.config_cls.model_fields
        model = {"audio": {**AUDIO_DATA, **(ASAP_DATA if staged else {})}}
        if staged:  # A2's stage 1 runs once before training; two steps show that it works
            model.update({"stage1_steps": 2, "stage1_passages_per_batch": 2})
        return {**model, **HEADS_TINY, "backbone_path": backbone} if tiny else model
    if entry.input_kind == "fusion":
        if not tiny:
            return {}
        return {**HEADS_TINY, "fusion_dim": 8, "fusion_heads": 2,
                "audio_encoder": {"name": "a1_lora", "backbone_path": backbone, "audio": AUDIO_DATA},
                "symbolic_encoder": {"name": "s2_gnn", **HEADS_TINY, "hidden_size": 16, "num_heads": 2,
                                     "num_layers": 1}}
    if entry.input_kind == "frames":
        tiny_fields = {"width": 16, "heads": 2, "layers": 1} if "layers" in entry.config_cls.model_fields else {}
        return {**HEADS_TINY, **tiny_fields} if tiny else {}
    raise ValueError(f"{name}: no check sizes for input kind {entry.input_kind!r}; add it to model_overrides")


def trainable_models() -> list[str]:
    """Registered models that train by gradient steps (closed-form references have no step)."""
    return [name for name in list_models() if get_model(name).fit != "closed_form"]


def tiny_frames(path: Path) -> str:
    """A frames file for the models on frames: a tiny random-init ``note_sa``'s readout frames
    of about 150 real segments (whole music groups)."""
    from pianoeval.fusion.export import export_frames

    export_frames("note_sa", path, overrides={"model.hidden_size": 8, "model.num_heads": 2}, limit=150,
                  progress=False, warn=lambda msg: None)
    return str(path)


def check_config(name: str, size: str, backbone: str, device: str, frames: str = "", **train) -> ExperimentConfig:
    data = {"max_train_segments": BATCH, "batch_size": BATCH, "eval_batch_size": 16}
    if "frames" in get_model(name).required_data:
        data["frames"] = frames
    return ExperimentConfig.resolve({
        "model": {"name": name, **model_overrides(name, size, backbone)}, "data": data,
        "train": {"lr": 1e-3, "accelerator": device, **train}}, f"<gpu check {name} {size}>")


def tiny_backbone(folder: Path) -> str:
    """A small random audio backbone in the checkpoint format (no pre-trained one needed)."""
    torch.manual_seed(0)
    spec = BackboneSpec(hidden_size=32, num_heads=2, intermediate_size=64, conv_channels=8, db_mean=-45, db_std=20)
    save_backbone(ConformerBackbone(spec), folder, {"note": "tiny random backbone for benchmarks/gpu_check.py"})
    return str(folder)


def _error(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}" if str(err).strip() else type(err).__name__


def model_rows(names: list[str], sizes: list[str], device: str, steps: int, backbone: str, say,
               frames: str = "") -> list[dict]:
    rows = []
    for name in names:
        for size in sizes:
            base = dict(model=name, size=size)
            try:
                prepared = first_train_batch(check_config(name, size, backbone, device, frames))
            except Exception as err:  # noqa: BLE001 -- every failure is a row of the table
                status = "not run (data)" if isinstance(err, DataError) else "FAILED"
                rows.append({**base, "precision": "-", "deterministic": "-", "status": status, "detail": _error(err)})
                say(f"[gpu-check] {name} {size}: {rows[-1]['status']}: {rows[-1]['detail']}")
                continue
            for precision in PRECISIONS:
                for mode in DETERMINISM:
                    config = check_config(name, size, backbone, device, frames, precision=precision,
                                          deterministic=mode)
                    rows.append({**base, "precision": precision, "deterministic": str(mode).lower(),
                                 **_one_check(config, steps, prepared, repeat=mode is True)})
                    say(f"[gpu-check] {name} {size} {precision} deterministic={str(mode).lower()}: "
                        f"{rows[-1]['status']} {rows[-1].get('detail', '')}")
    return rows


def _one_check(config: ExperimentConfig, steps: int, prepared, repeat: bool) -> dict:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = repeated_batch_steps(config, steps, prepared)
            again = repeated_batch_steps(config, steps, prepared) if repeat else None
    except Exception as err:  # noqa: BLE001
        return {"status": "FAILED", "detail": _error(err)}
    warned = sorted({str(w.message).split(" does not have a deterministic")[0] for w in caught
                     if "does not have a deterministic" in str(w.message)})
    row = {"first_loss": first.losses[0], "last_loss": first.losses[-1], "ms_per_step": 1000 * first.seconds_per_step,
           "peak_mib": first.peak_memory_mib, "identical_repeat": None if again is None else again.losses == first.losses,
           "nondeterministic_ops": ", ".join(warned)}
    problems = []
    if not first.finite:
        problems.append("non-finite loss")
    elif not first.losses[-1] < first.losses[0]:
        problems.append("loss did not go down")
    if row["identical_repeat"] is False:
        problems.append("a repeat from the same seed gave other losses")
    row["status"] = "ok" if not problems else "FAILED"
    row["detail"] = "; ".join(problems)
    return row


def throughput_rows(device: str, size: str, batches: list[int], steps: int, say) -> list[dict]:
    rows = []
    for batch_size in batches:
        for precision in PRECISIONS:
            raw = {"model": {"name": "han", **model_overrides("han", size, "")},
                   "data": {"max_train_segments": batch_size, "batch_size": batch_size},
                   "train": {"accelerator": device, "precision": precision}}
            config = ExperimentConfig.resolve(raw, "<gpu check throughput>")
            prepared = first_train_batch(config)
            notes = int(prepared[1].lengths.sum())
            check = repeated_batch_steps(config, steps, prepared)
            rows.append({"model": "han", "size": size, "batch": batch_size, "precision": precision,
                         "notes_per_batch": notes, "notes_per_s": notes / check.seconds_per_step,
                         "ms_per_step": 1000 * check.seconds_per_step, "peak_mib": check.peak_memory_mib})
            say(f"[gpu-check] han {size} batch {batch_size} {precision}: {rows[-1]['notes_per_s']:,.0f} notes/s")
    return rows


def _running_trials_callback():
    from ray import tune

    class MostRunning(tune.Callback):
        """The most trials Tune had RUNNING at once: Ray granted each its resources."""

        def __init__(self):
            self.most = 0

        def on_step_begin(self, iteration, trials, **info):
            self.most = max(self.most, sum(trial.status == "RUNNING" for trial in trials))

    return MostRunning()


def _most_overlapping(run_dir: Path, trials: pd.DataFrame) -> int:
    """The most trials training at the same moment, from Ray Tune's record of each trial
    (``result.json``: its last report's timestamp minus its total time is its start)."""
    events = []
    for trial_dir in trials["trial_dir"]:
        reports = [json.loads(line) for line in (run_dir / trial_dir / "result.json").read_text().splitlines() if line]
        end = float(reports[-1]["timestamp"])
        events += [(end - float(reports[-1]["time_total_s"]), 1), (end, -1)]
    most = running = 0
    for _, step in sorted(events):  # an end sorts before a start at the same second
        running += step
        most = max(most, running)
    return most


def _trial_devices(run_dir: Path, trials: pd.DataFrame) -> list[str]:
    """Where each trial trained, from the ``provenance.compute`` of its ``resolved.yaml``."""
    devices = []
    for trial_dir in trials["trial_dir"]:
        compute = yaml.safe_load((run_dir / trial_dir / "run" / "resolved.yaml").read_text())["provenance"]["compute"]
        visible = compute.get("cuda_visible_devices")
        devices.append(compute["accelerator"] + (f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""))
    return devices


def _trial_metrics(trials: pd.DataFrame) -> dict:
    """Each trial's metrics, keyed by its sampled config (trial ids differ between runs)."""
    config_cols = sorted(c for c in trials if c.startswith("config/"))
    metric_cols = sorted(c for c in trials if c.startswith(("best/", "final/val/")))
    return {tuple(row[c] for c in config_cols): tuple(row[c] for c in metric_cols) for _, row in trials.iterrows()}


def sweep_check(device: str, trials: int, storage: Path, say) -> dict:
    from pianoeval.sweep.engine import SweepOptions, run_sweep
    from pianoeval.sweep.ray_session import init_ray
    from pianoeval.sweep.space import load_space

    cuda = device == "cuda"
    share = {"gpu": 1 / trials, "cpu": 1} if cuda else {"gpu": 0, "cpu": 2 / trials}
    epochs, segments = (2, 32) if cuda else (1, 8)
    space = load_space("smoke", {"budget.num_samples": trials, "budget.max_epochs": epochs,
                                 "budget.grace_period": epochs, "resources.gpu": share["gpu"],
                                 "resources.cpu": share["cpu"], "data.max_train_segments": segments,
                                 "train.deterministic": True})
    quiet = lambda *a, **k: None  # noqa: E731
    init_ray(SweepOptions(num_cpus=None if device == "cuda" else 2))
    results, running = {}, {}
    # --max-concurrent as a user would set it: with a searcher, Tune otherwise keeps one trial
    # pending at a time, and the trials start one after another instead of together
    for run, concurrent in (("packed", trials), ("packed-again", trials), ("one-at-a-time", 1)):
        watch = _running_trials_callback()
        options = SweepOptions(max_concurrent=concurrent, storage=str(storage), run_id=f"gpu-check-{run}",
                               max_failures=0, print_fn=quiet, callbacks=[watch])
        results[run], running[run] = run_sweep(space, options), watch.most
        say(f"[gpu-check] sweep {run}: {len(results[run].trials)} trials in {results[run].wall_seconds:.1f} s, "
            f"at most {watch.most} running at once")
    packed = results["packed"]
    overlapping = _most_overlapping(packed.run_dir, packed.trials)
    all_at_once = running["packed"] == trials
    statuses = sorted(set(packed.trials["status"]) | set(results["packed-again"].trials["status"]))
    identical = _trial_metrics(packed.trials) == _trial_metrics(results["packed-again"].trials)
    devices = _trial_devices(packed.run_dir, packed.trials)
    on_device = all(d.split()[0] == device for d in devices)
    return {"trials": trials, "epochs": epochs, "segments": segments, "resources": share, "statuses": statuses,
            "all_at_once": all_at_once, "most_running": running["packed"], "most_training_at_once": overlapping,
            "packed_wall_s": packed.wall_seconds, "serial_wall_s": results["one-at-a-time"].wall_seconds,
            "identical_metrics": identical, "trial_devices": devices,
            "ok": all_at_once and identical and on_device and statuses == ["completed"]}


def markdown(meta: dict, rows: list[dict], speed: list[dict], sweep: dict | None) -> str:
    lines = [f"# GPU check ({meta['device_name']})", "",
             f"torch {meta['torch']} (CUDA {meta['cuda']}), {meta['threads']} CPU thread(s), {meta['when']}, "
             f"git {meta['git_commit']}, "
             f"{meta['seconds']:.0f} s in all.", "", "## Models", "",
             "| model | size | precision | deterministic | status | loss first -> last | repeat identical | ms/step "
             "| peak MiB | detail |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        loss = f"{r['first_loss']:.5g} -> {r['last_loss']:.5g}" if "first_loss" in r else ""
        repeat = {True: "yes", False: "NO", None: ""}[r.get("identical_repeat")]
        ms = f"{r['ms_per_step']:.1f}" if "ms_per_step" in r else ""
        peak = f"{r['peak_mib']:.0f}" if r.get("peak_mib") is not None else ""
        detail = "; ".join(x for x in (r.get("detail"), r.get("nondeterministic_ops") and
                                       f"warned: {r['nondeterministic_ops']}") if x)
        lines.append(f"| `{r['model']}` | {r['size']} | {r['precision']} | {r['deterministic']} | {r['status']} | "
                     f"{loss} | {repeat} | {ms} | {peak} | {detail} |")
    lines += ["", "## Throughput", "", "| model | size | batch | precision | notes/batch | notes/s | ms/step | peak MiB |",
              "|---|---|---|---|---|---|---|---|"]
    for r in speed:
        peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else ""
        lines.append(f"| `{r['model']}` | {r['size']} | {r['batch']} | {r['precision']} | {r['notes_per_batch']} | "
                     f"{r['notes_per_s']:,.0f} | {r['ms_per_step']:.1f} | {peak} |")
    if sweep is not None:
        share = sweep["resources"]
        lines += ["", "## Packed sweep", "",
                  f"{sweep['trials']} trials of the smoke space ({sweep['epochs']} epochs, {sweep['segments']} "
                  f"training segments), resources "
                  f"cpu {share['cpu']:g}, gpu {share['gpu']:g} per trial, deterministic true.", "",
                  "| check | result |", "|---|---|",
                  f"| all trials running at once (Tune's trial states: most RUNNING together) | "
                  f"{'yes' if sweep['all_at_once'] else 'NO'} ({sweep['most_running']}) |",
                  f"| most trials training at the same moment (the trials' own start and end in Tune's "
                  f"records) | {sweep['most_training_at_once']} |",
                  f"| wall time packed / one at a time | {sweep['packed_wall_s']:.1f} s / {sweep['serial_wall_s']:.1f} s |",
                  f"| same seed twice: identical metrics | {'yes' if sweep['identical_metrics'] else 'NO'} |",
                  f"| trial statuses | {', '.join(sweep['statuses'])} |",
                  f"| where the packed trials trained (their resolved.yaml) | {'; '.join(sweep['trial_devices'])} |"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--models", nargs="+", default=None, help="registered names (default: all)")
    parser.add_argument("--steps", type=int, default=None, help="steps per model check (default: 6 on CUDA, 3 on CPU)")
    parser.add_argument("--sizes", nargs="+", choices=["tiny", "default"], default=None,
                        help="model sizes to check (default: tiny and default on CUDA, tiny on CPU)")
    parser.add_argument("--trials", type=int, default=4, help="trials of the packed sweep")
    parser.add_argument("--skip", nargs="+", choices=["models", "throughput", "sweep"], default=[])
    parser.add_argument("--out", default=None, help="folder for gpu_check.md/.json (default: results/benchmarks)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads of this process (default 1: the CPU LSTM spins with more on busy cores)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("[gpu-check] error: torch sees no CUDA device; --device cpu runs the dry check", file=sys.stderr)
        return 2
    from pianoeval.provenance import git_commit

    torch.set_num_threads(args.threads)
    started = time.time()
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    cuda = args.device == "cuda"
    steps = args.steps or (6 if cuda else 3)
    names = args.models or trainable_models()
    out = Path(args.out) if args.out else results_root() / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    rows, speed, sweep = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        backbone = tiny_backbone(Path(tmp) / "backbone")
        if "models" not in args.skip:
            sizes = args.sizes or (["tiny", "default"] if cuda else ["tiny"])
            needs_frames = any("frames" in get_model(n).required_data for n in names)
            frames = tiny_frames(Path(tmp) / "frames.pt") if needs_frames else ""
            rows = model_rows(names, sizes, args.device, steps, backbone, say, frames)
        if "throughput" not in args.skip:  # the CPU dry check runs the same code on small batches
            speed = throughput_rows(args.device, "default" if cuda else "tiny", [8, 64] if cuda else [2, 4],
                                    12 if cuda else 2, say)
        if "sweep" not in args.skip:
            sweep = sweep_check(args.device, args.trials, Path(tmp) / "sweeps", say)
    meta = {"device": args.device, "threads": args.threads, "device_name": torch.cuda.get_device_name() if cuda else f"CPU, {platform.processor() or platform.machine()}",
            "torch": torch.__version__, "cuda": torch.version.cuda, "git_commit": git_commit(),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seconds": time.time() - started}
    (out / "gpu_check.md").write_text(markdown(meta, rows, speed, sweep))
    (out / "gpu_check.json").write_text(json.dumps({"meta": meta, "models": rows, "throughput": speed, "sweep": sweep},
                                                   indent=1, default=str))
    failed = sum(r["status"] == "FAILED" for r in rows)
    not_run = sum(r["status"].startswith("not run") for r in rows)
    sweep_failed = sweep is not None and not sweep["ok"]
    say(f"[gpu-check] {len(rows) - failed - not_run} model checks ok, {failed} failed, {not_run} not run "
        f"(data missing); sweep {'-' if sweep is None else ('FAILED' if sweep_failed else 'ok')}; "
        f"{time.time() - started:.0f} s; written {out / 'gpu_check.md'}")
    return 1 if failed or sweep_failed else 0


if __name__ == "__main__":
    sys.exit(main())
