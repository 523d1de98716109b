"""S3's masked-frame contrastive objective: what its distractors let it learn."""

import math
from types import SimpleNamespace

import torch

from pianoeval.models.symbolic_curves import DISTRACTORS, ContrastiveFrames, CurveConfig, CurveEncoder


def _objective(cross: int, width: int = 4) -> ContrastiveFrames:
    objective = ContrastiveFrames(CurveEncoder(CurveConfig(hidden_size=width, num_heads=1, num_layers=1), 2),
                                  mask_prob=0.9, cross_distractors=cross)
    for layer in (objective.predict, objective.target):
        torch.nn.init.eye_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    return objective


def _window_constant_latents(objective: ContrastiveFrames, monkeypatch, distinct: bool = True):
    """Each item's latents are one vector for all its frames (a different one per item if
    ``distinct``): a window-level feature only, nothing that varies within a window."""
    z = (torch.eye(4) if distinct else torch.ones(4, 4))[:, None, :].repeat(1, 40, 1) * 3.0  # 4 items x 40 frames
    mask = torch.ones(4, 40, dtype=torch.bool)
    monkeypatch.setattr(objective.encoder, "latents", lambda curves, lengths: (z, mask))
    monkeypatch.setattr(objective.encoder, "context", lambda z, mask, masked=None: z)  # a perfect predictor
    return SimpleNamespace(curves=None, lengths=None)


def _loss(cross: int, monkeypatch, distinct: bool = True) -> float:
    objective = _objective(cross)
    batch = _window_constant_latents(objective, monkeypatch, distinct)
    terms, _, _, _ = objective(batch, torch.Generator().manual_seed(0))
    return terms["contrastive_frames"].item()


def test_only_distractors_from_other_windows_reward_window_level_features(monkeypatch):
    # the window's own distractors share its window-level feature: chance, with it or without it
    assert math.isclose(_loss(0, monkeypatch), math.log(1 + DISTRACTORS), rel_tol=1e-5)
    # with 6 distractors from other windows, chance is log 17; the window-level feature tells
    # those 6 apart, leaving the 10 of the window's own: log 11
    assert math.isclose(_loss(6, monkeypatch, distinct=False), math.log(1 + DISTRACTORS + 6), rel_tol=1e-5)
    assert math.isclose(_loss(6, monkeypatch), math.log(1 + DISTRACTORS), rel_tol=1e-3)
