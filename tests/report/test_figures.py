"""Labels, units and Markdown tables shared by every report."""

import math

import pandas as pd
import pytest

from pianoeval.data.percepiano import LABEL_NAMES
from pianoeval.report.figures import cost_scale, dimension_label, frame_markdown, message_figure


def test_every_dimension_gets_a_distinct_readable_label():
    labels = [dimension_label(name) for name in LABEL_NAMES]
    assert len(set(labels)) == 19
    assert all("→" in label and "_" not in label and len(label) <= 45 for label in labels)
    assert dimension_label("music_making_disproportioned_to_balanced") == "music making: disproportioned → balanced"
    assert dimension_label("mood_low_to_high_energy") == "mood: low → high energy"


@pytest.mark.parametrize("seconds, divisor, label", [
    (12.0, 1.0, "CPU-seconds"), (299.0, 1.0, "CPU-seconds"), (300.0, 60.0, "CPU-minutes"),
    (3 * 3600.0, 3600.0, "CPU-hours"), (math.nan, 1.0, "CPU-seconds"),
])
def test_cost_axis_picks_a_unit_that_reads_well(seconds, divisor, label):
    assert cost_scale(seconds) == (divisor, label)


def test_markdown_tables_align_numbers_right_and_mark_missing_values():
    frame = pd.DataFrame({"trial": ["a|b", "c"], "val/r2": [0.123456, math.nan], "epochs": [3, 1]})
    lines = frame_markdown(frame).splitlines()
    assert lines[1] == "| :-- | --: | --: |"
    assert lines[2] == "| a\\|b | 0.1235 | 3 |" and lines[3] == "| c | – | 1 |"


def test_an_empty_plot_says_why():
    figure = message_figure("Learning curves", "No trial has a readable epoch history.")
    assert [t.get_text() for t in figure.axes[0].texts] == ["No trial has a readable epoch history."]
