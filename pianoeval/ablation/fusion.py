"""The fusion question, answered from an ablation's trials: does fusion beat the best
single modality, overall and per dimension, with confidence intervals -- and what did F3's
gates learn?

Used by ``comparison.md`` whenever a trial set holds both single-modality controls
(``fusion_audio_only``, ``fusion_symbolic_only``) and at least one fusion model. Against
each dimension's *better* control (the higher mean over the runs), every fusion variant's
paired delta (same fold and seed) gets a 95% bootstrap CI; "beats" means the whole CI is
above 0, "worse" below 0, otherwise the runs cannot tell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pianoeval.analysis import stats
from pianoeval.metrics import metric_mode

CONTROLS = {"fusion_audio_only": "audio", "fusion_symbolic_only": "symbolic"}
N_BOOT = 10_000


def _roles(trials: pd.DataFrame) -> tuple[dict[str, str], list[str]]:
    models = trials.groupby("variant", sort=False)["model"].first()
    controls = {v: CONTROLS[m] for v, m in models.items() if m in CONTROLS}
    fused = [v for v, m in models.items() if str(m).startswith("fusion_") and m not in CONTROLS]
    return controls, fused


def _deltas(trials: pd.DataFrame, column: str, variants: list[str], control: str, sign: float) -> dict:
    """variant -> (mean paired delta vs ``control``, 95% CI), oriented so that > 0 is better
    (``stats.paired_deltas``: pairs by fold and seed, bootstrap CI of the mean)."""
    table = stats.paired_deltas(trials[trials["variant"].isin([*variants, control])], column, control, n_boot=N_BOOT)
    out = {}
    for row in table.itertuples(index=False):
        low, high = (row.ci_low, row.ci_high) if sign > 0 else (-row.ci_high, -row.ci_low)
        out[row.variant] = (float(sign * row.mean_delta), float(low), float(high))
    return out


def _verdict(low: float, high: float) -> str:
    if not np.isfinite(low):
        return "n/a"
    return "beats" if low > 0 else "worse" if high < 0 else "cannot tell"


def _cell(mean: float, low: float, high: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    mark = " ✓" if low > 0 else " ✗" if high < 0 else ""
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]{mark}"


def fusion_answer(trials: pd.DataFrame, metric: str) -> dict | None:
    """The numbers behind ``fusion_markdown`` (None when the trial set is not a fusion one)."""
    usable = trials[trials["status"] == "completed"]
    controls, fused = _roles(usable)
    if len(controls) < 2 or not fused or metric not in usable:
        return None
    sign = 1.0 if metric_mode(metric.split("/", 1)[1]) == "max" else -1.0

    def better(column: str) -> str:
        means = {v: sign * usable.loc[usable["variant"] == v, column].mean() for v in controls}
        return max(means, key=lambda v: -np.inf if np.isnan(means[v]) else means[v])

    best = better(metric)
    overall = _deltas(usable, metric, fused, best, sign)
    dims = stats.dimension_columns(usable.columns, metric)
    per_dim = {}
    for dim in dims:
        column = f"{metric}/{dim}"
        control = better(column)
        per_dim[dim] = (controls[control], _deltas(usable, column, fused, control, sign))
    gates = {}
    for variant in usable.loc[usable["model"] == "fusion_f3_gated", "variant"].unique():
        rows = usable[usable["variant"] == variant]
        gates[variant] = {d: (rows[f"val/diag/gate_mean/{d}"].mean(), rows[f"val/diag/gate_mean/{d}"].std())
                          for d in stats.dimension_columns(rows.columns, "val/diag/gate_mean")}
    diagnostics = {}
    for column in ("val/diag/alignment_cos", "val/diag/contribution/audio", "val/diag/xattn_entropy/audio_to_symbolic",
                   "val/diag/xattn_entropy/symbolic_to_audio"):
        if column in usable:
            means = usable.groupby("variant", sort=False)[column].mean().dropna()
            diagnostics[column.removeprefix("val/diag/")] = means.to_dict()
    return {"metric": metric, "controls": controls, "best": best, "fused": fused, "overall": overall,
            "per_dim": per_dim, "gates": gates, "diagnostics": diagnostics}


def fusion_markdown(answer: dict) -> str:
    """The section of comparison.md and the report, from ``fusion_answer``."""
    metric = answer["metric"]
    fused, best, controls = answer["fused"], answer["best"], answer["controls"]
    lines = [f"## Does fusion beat the best single modality? (`{metric}`)", "",
             f"Overall the better control is `{best}` ({controls[best]} only). Deltas are paired by fold and seed "
             f"and oriented so that > 0 means fusion is better; 95% bootstrap CI; ✓ / ✗ = the whole CI above / "
             f"below 0.", "",
             stats.markdown_table(["variant", f"Δ {metric} vs {best}", "95% CI", "verdict"],
                                  [[v, f"{m:+.3f}" if np.isfinite(m) else "n/a",
                                    f"[{lo:+.3f}, {hi:+.3f}]" if np.isfinite(lo) else "n/a", _verdict(lo, hi)]
                                   for v, (m, lo, hi) in answer["overall"].items()]), ""]
    if answer["per_dim"]:
        rows = [[dim, modality, *[_cell(*deltas[v]) for v in fused]]
                for dim, (modality, deltas) in answer["per_dim"].items()]
        counts = []
        for v in fused:
            wins = sum(1 for _, deltas in answer["per_dim"].values() if deltas[v][1] > 0)
            losses = sum(1 for _, deltas in answer["per_dim"].values() if deltas[v][2] < 0)
            counts.append(f"`{v}` beats it on {wins} and is worse on {losses} of {len(answer['per_dim'])}")
        lines += [f"### Per dimension, against that dimension's better control", "",
                  "; ".join(counts) + ".", "",
                  stats.markdown_table(["dimension", "better control", *fused], rows), ""]
    for variant, gates in answer["gates"].items():
        if not gates:
            continue
        rows = [[d, f"{m:.3f}", "n/a" if not np.isfinite(s) else f"{s:.3f}",
                 "audio" if m > 0.55 else "symbolic" if m < 0.45 else "both"] for d, (m, s) in gates.items()]
        lines += [f"### F3 gates of `{variant}` (validation mean; 1 = audio only, 0 = symbolic only)", "",
                  stats.markdown_table(["dimension", "mean gate", "std over runs", "leans on"], rows), ""]
    if answer["diagnostics"]:
        variants = list(dict.fromkeys(v for values in answer["diagnostics"].values() for v in values))
        rows = [[v, *[f"{answer['diagnostics'][k][v]:.3f}" if v in answer["diagnostics"][k] else "" for k in
                      answer["diagnostics"]]] for v in variants]
        lines += ["### Fusion diagnostics (validation, mean over runs)", "",
                  "alignment_cos: cosine of paired z_audio and z_symbolic; contribution/audio: the audio share of "
                  "the fusion's input (F3: the mean gate); xattn_entropy: cross-attention entropy per direction "
                  "(1 = uniform).", "",
                  stats.markdown_table(["variant", *answer["diagnostics"]], rows), ""]
    return "\n".join(lines)
