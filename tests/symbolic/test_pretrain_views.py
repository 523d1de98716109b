"""The same-performance pre-training term: two disjoint views per window, and what the
InfoNCE over them rewards."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from pianoeval.symbolic.batches import ItemMeta
from pianoeval.symbolic.pretrain import PretrainConfig, Pretrainer, RandomCrop


def _items(lengths):
    return [{"meta": ItemMeta(f"w{k}", (), (), -1, False), "curves": np.arange(n)} for k, n in enumerate(lengths)]


@pytest.mark.parametrize("length", [None, 40])
def test_two_views_are_disjoint_parts_of_each_window_first_views_first(length):
    lengths = [60, 100, 9, 2, 300]
    crop = RandomCrop(lambda items: items, "curves", length, seed=3, views=2)
    for _ in range(20):
        views = crop(_items(lengths))
        assert len(views) == 2 * len(lengths)
        for k, n in enumerate(lengths):
            first, second = views[k]["curves"], views[len(lengths) + k]["curves"]
            assert views[k]["meta"].item_id == views[len(lengths) + k]["meta"].item_id == f"w{k}"
            for view in (first, second):  # contiguous, non-empty, at most half the crop
                assert len(view) >= 1 and np.array_equal(view, np.arange(view[0], view[0] + len(view)))
                assert length is None or len(view) <= length // 2
            assert first[-1] < second[0]  # disjoint, in playing order
            if length is None:  # whole parts, split in the middle third
                assert len(first) + len(second) == n and n // 3 <= len(first) <= n - n // 3


def test_a_window_too_short_for_two_views_is_named():
    with pytest.raises(ValueError, match="w0: 1 curves, too short for two views"):
        RandomCrop(lambda items: items, "curves", None, seed=0, views=2)(_items([1]))


class _Frames(nn.Module):
    """An 'objective' whose context frames are given (no loss of its own)."""

    def __init__(self, frames):
        super().__init__()
        self.frames = frames
        self.encoder = SimpleNamespace(output_dim=frames.shape[-1])

    def forward(self, batch, generator):
        mask = torch.ones(self.frames.shape[:2], dtype=torch.bool)
        return {}, {}, self.frames, mask


def _same_performance_loss(performer_feature: bool) -> float:
    """Two performers (A, B) of the same bars, two views each: [A1, B1, A2, B2]. Views
    carry what they play (first or second half of the bars: shared by A and B), and,
    if ``performer_feature``, who plays (A louder than B, say)."""
    content = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0]])
    performer = torch.tensor([[0, 0, 1.0], [0, 0, -1.0], [0, 0, 1.0], [0, 0, -1.0]])
    frames = (content + (performer if performer_feature else 0)).unsqueeze(1).repeat(1, 5, 1) * 4
    config = PretrainConfig(encoder="s3", lambda_performance=1.0, lambda_objective=0.0, contrastive_temperature=1.0)
    model = Pretrainer(_Frames(frames), config)
    model.project_performance = nn.Identity()
    batch = SimpleNamespace(group=torch.full((4,), -1))
    total, logged = model(batch, torch.Generator())
    return logged["same_performance"], logged["performance_acc"]


def test_only_what_sets_performers_apart_answers_the_same_performance_term():
    # the two views of a performance share nothing the other performer's views lack: chance
    loss, accuracy = _same_performance_loss(performer_feature=False)
    assert loss > _same_performance_loss(performer_feature=True)[0]
    # without a performer feature, A1's own second view A2 and B's second view B2 look the
    # same (both [0, 1, 0]); B1 is closer (same half): A2 cannot win
    assert accuracy == 0.0
    assert _same_performance_loss(performer_feature=True)[1] == 1.0


def test_the_same_performance_term_is_for_sequences_and_something_must_be_learned():
    with pytest.raises(ValueError, match="S1, S3"):
        PretrainConfig(encoder="s2", lambda_performance=1.0)
    with pytest.raises(ValueError, match="nothing to learn"):
        PretrainConfig(encoder="s3", lambda_objective=0.0)


class _Windows(torch.utils.data.Dataset):
    group = np.array([5, 5, 6, 6, -1, -1, -1, 7, 7, 8, 8])

    def __len__(self):
        return len(self.group)

    def __getitem__(self, i):
        return i


def test_validation_batches_are_cross_performer_pairs_and_the_same_every_time():
    from pianoeval.symbolic.pretrain import _loader

    config = PretrainConfig(encoder="s3", lambda_performance=1.0, batch_size=4)
    passes = [[list(b) for b in _loader(_Windows(), list, config, 0, seed=8, training=False)] for _ in range(2)]
    assert passes[0] == passes[1]
    assert sorted(i for batch in passes[0] for i in batch) == list(range(11))  # every window once
    for group in (5, 6, 7, 8):  # the two performances of the same bars share a batch
        members = set(np.nonzero(_Windows.group == group)[0])
        assert any(members <= set(batch) for batch in passes[0])
