"""The degradation probe runs end to end on real ASAP windows and PercePiano segments."""

import pytest
import numpy as np

from pianoeval.symbolic.degradation import TIERS
from pianoeval.symbolic.degradation_probe import run_probe


@pytest.mark.asap
def test_probe_trains_on_tiers_and_reports_rankings_and_label_correlations():
    result = run_probe("s2_gnn", {"hidden_size": 16, "num_heads": 4, "num_layers": 1}, train_windows=12,
                       test_windows=6, epochs=1, batch_size=8, log=lambda m: None)
    assert set(result.tier_means) == {t.name for t in TIERS}
    assert all(0 < v < 1 for v in result.tier_means.values())
    assert set(result.pristine_above) == {"good", "moderate", "poor"}
    assert 0 <= result.pristine_above_poor <= 1 and result.test_windows == 6
    assert len(result.label_correlation) == 19
    assert all(-1 <= r <= 1 for pair in result.label_correlation.values() for r in pair)
    assert np.isfinite(result.score_renderings) and np.isfinite(result.human_performances)
