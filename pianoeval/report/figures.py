"""Shared pieces of every report: figures without pyplot, readable labels, and the Markdown document.

Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, never pyplot's global
state: a report can draw dozens without leaking memory or needing a display, and a
notebook shows the same object inline (``%matplotlib inline`` registers its PNG
formatter for every Figure).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pianoeval.io import atomic_write, atomic_write_text

DPI = 110
STATUS_COLOURS = {"completed": "#1f77b4", "pruned": "#ff7f0e", "diverged": "#d62728", "error": "#7f7f7f"}
BASELINE_COLOUR = "#222222"
# tab10 without the blue/orange/red/grey used for statuses, so a variant never looks like a status
VARIANT_COLOURS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#1f77b4", "#ff7f0e",
                   "#d62728", "#7f7f7f")


def new_figure(width: float, height: float, **subplot_kw) -> tuple[Figure, np.ndarray | object]:
    """A Figure with an Agg canvas and constrained layout; ``subplot_kw`` go to ``subplots``."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(**subplot_kw)


def message_figure(title: str, message: str) -> Figure:
    """A small figure that says why there is nothing to plot (instead of an empty axis)."""
    fig, ax = new_figure(6.0, 2.2)
    ax.set_axis_off()
    ax.set_title(title, fontsize=11)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10, transform=ax.transAxes)
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return path


def variant_colours(variants, baseline: str | None = None) -> dict[str, str]:
    """A stable colour per variant; the baseline is always near-black."""
    colours, i = {}, 0
    for variant in variants:
        if variant == baseline:
            colours[variant] = BASELINE_COLOUR
        else:
            colours[variant] = VARIANT_COLOURS[i % len(VARIANT_COLOURS)]
            i += 1
    return colours


def cost_scale(seconds_max: float, resource: str = "CPU") -> tuple[float, str]:
    """(divisor, axis label) so that small smoke runs and week-long sweeps both read well."""
    if not math.isfinite(seconds_max) or seconds_max < 300:
        return 1.0, f"{resource}-seconds"
    if seconds_max < 3 * 3600:
        return 60.0, f"{resource}-minutes"
    return 3600.0, f"{resource}-hours"


def dimension_label(name: str) -> str:
    """``music_making_fast_to_slow`` -> ``music making: fast → slow`` (PercePiano's 19 dimensions)."""
    low_side, sep, high = name.partition("_to_")
    if not sep:
        return name.replace("_", " ")
    category, _, low = low_side.rpartition("_")
    return f"{category.replace('_', ' ')}: {low} → {high.replace('_', ' ')}"


def metric_label(metric: str) -> str:
    """An axis label with the metric's unit or range, e.g. ``val/r2 (R², 1 = perfect)``."""
    name = metric.rsplit("/", 1)[-1]
    units = {"r2": "R², 1 = perfect", "pairwise_acc": "fraction of pairs ordered right",
             "loss": "training objective", "mse": "mean squared error", "pearson": "Pearson r",
             "spearman": "Spearman ρ", "pred_std_ratio": "prediction / label s.d."}
    return f"{metric} ({units[name]})" if name in units else metric


def fmt(value, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` significant digits, missing values as an en dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or value is pd.NA:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value)


def frame_markdown(frame: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as a Markdown table (index dropped): numbers right-aligned, text left-aligned."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |",
             "| " + " | ".join("--:" if n else ":--" for n in numeric) + " |"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v, digits).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


class Document:
    """A Markdown report being written: text, tables, and figures saved beside it.

    Figures go to ``<out_dir>/figures/<name>.png`` and are referenced relatively, so the
    folder can be moved or viewed on any Markdown renderer as it is."""

    def __init__(self, out_dir: Path, title: str):
        self.out_dir = Path(out_dir)
        self.lines: list[str] = [f"# {title}", ""]
        self.figures: list[Path] = []

    def text(self, *lines: str) -> None:
        self.lines += [*lines, ""]

    def table(self, frame: pd.DataFrame, digits: int = 4) -> None:
        self.text(frame_markdown(frame, digits) if len(frame) else "(no rows)")

    def figure(self, fig: Figure, name: str, caption: str) -> Path:
        path = save_figure(fig, self.out_dir / "figures" / f"{name}.png")
        self.figures.append(path)
        self.text(f"![{name.replace('_', ' ')}](figures/{name}.png)", "", f"*{caption}*")
        return path

    def write(self) -> Path:
        path = self.out_dir / "report.md"
        atomic_write_text(path, "\n".join(self.lines).rstrip() + "\n")
        return path
