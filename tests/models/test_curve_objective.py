"""S3's masked-frame contrastive objective: what its distractors let it learn; its
masked-curve reconstruction term."""

import math
from types import SimpleNamespace

import pytest
import torch

from pianoeval.models.symbolic_curves import (DISTRACTORS, ContrastiveFrames, CurveConfig, CurveEncoder,
                                              masked_reconstruction)
from pianoeval.symbolic.pretrain import PretrainConfig


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


def _curves():
    """2 items x 8 input frames x 3 channels (channels on different scales); item 1 is 6
    frames long (its last two frames are padding, filled with values that must not count)."""
    curves = torch.randn(2, 8, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 10.0, 0.1])
    curves[1, 6:] = 1e3
    return curves, torch.tensor([8, 6])


def test_reconstruction_is_zero_when_exact_and_counts_only_masked_real_frames():
    curves, lengths = _curves()
    masked = torch.tensor([[True, False, True, False], [False, True, True, True]])  # latent frames, downsample 2
    exact = curves.reshape(2, 4, 6)
    assert masked_reconstruction(exact, curves, lengths, masked).item() == pytest.approx(0.0)
    wrong = exact.clone()
    wrong[0, 1] += 5.0  # an unmasked frame
    wrong[1, 3] += 5.0  # a masked frame that holds only padding
    assert masked_reconstruction(wrong, curves, lengths, masked).item() == pytest.approx(0.0)
    wrong[0, 0, :3] += 1.0  # one real masked input frame, every channel
    assert masked_reconstruction(wrong, curves, lengths, masked).item() > 0.0


def test_reconstruction_error_is_in_units_of_each_channels_variance():
    curves, lengths = _curves()
    masked = torch.ones(2, 4, dtype=torch.bool)
    real = torch.arange(8)[None, :] < lengths[:, None]
    values = curves[real]  # [14, 3]
    # predicting every channel's mean over the real frames scores exactly 1 (R2 = 0), whatever
    # the channel's scale (x1, x10, x0.1 here)
    mean = values.mean(0).repeat(2, 4, 2)
    assert masked_reconstruction(mean, curves, lengths, masked).item() == pytest.approx(1.0, rel=1e-5)
    # one channel off by one standard deviation everywhere adds 1 / 3 (one of three channels)
    shifted = mean.clone()
    shifted[..., 1::3] += values[:, 1].std(unbiased=False)
    assert masked_reconstruction(shifted, curves, lengths, masked).item() == pytest.approx(1 + 1 / 3, rel=1e-4)


def test_the_reconstruction_term_is_s3s_and_is_something_to_learn():
    with pytest.raises(ValueError, match="S3's input curves"):
        PretrainConfig(encoder="s1", lambda_reconstruct=1.0)
    config = PretrainConfig(encoder="s3", lambda_reconstruct=1.0, lambda_objective=0.0)
    assert config.lambda_reconstruct == 1.0
