"""Tier-aware audio batches: sampler, collation, T3 groups."""

import numpy as np
import torch

from pianoeval.audio.data import AudioBatch, AudioDataset, AudioTrainSampler, Entry, make_collate
from pianoeval.data.batch import TIER_CROSS_PERFORMER, TIER_LABELLED


def test_sampler_has_a_fixed_number_of_batches_pairs_music_and_appends_t3_passages():
    groups = np.repeat(np.arange(12), [1, 2, 3, 4] * 3)  # 30 T1 items
    passages = [[30, 31, 32], [33, 34]]
    sampler = AudioTrainSampler(groups, passages, batch_size=8, grouped=True, group_size=2, seed=0,
                                soundfonts=("musescore", "timgm6mb"), variants=2, t3_per_batch=1)
    epochs = [list(sampler) for _ in range(3)]
    assert all(len(batches) == len(sampler) == 4 for batches in epochs)  # Lightning fixes this per run
    first = epochs[0]
    t1 = [i for batch in first for i, _, _ in batch if i < 30]
    assert sorted(t1) == list(range(30))  # every T1 item once per epoch
    for batch in first:
        t3 = [i for i, _, _ in batch if i >= 30]
        assert len(t3) == 2 and (set(t3) <= {30, 31, 32} or set(t3) <= {33, 34})  # two performers, one passage
        assert all(sf in ("musescore", "timgm6mb") and 1 <= v <= 2 for _, sf, v in batch)
    paired = sum(len(b) - len({groups[i] for i, _, _ in b if i < 30}) for b in first)
    assert paired >= 8  # same-music pairs share batches
    assert epochs[1] != epochs[0]
    again = AudioTrainSampler(groups, passages, 8, True, 2, 0, ("musescore", "timgm6mb"), 2, 1)
    assert list(again) == first  # deterministic for (seed, epoch)


def test_collate_builds_tiers_masks_and_the_augmented_view():
    labels = np.full(19, 0.5, np.float32)
    entries = [Entry("a", labels, labels, 3, TIER_LABELLED, True),
               Entry("asap:x", np.zeros(19, np.float32), np.zeros(19, np.float32), 1_000_007, TIER_CROSS_PERFORMER, False)]
    frames = {("a", "sf", 0): np.ones((5, 4), np.float16), ("a", "sf", 1): np.full((5, 4), 2, np.float16),
              ("asap:x", "sf", 0): np.ones((3, 4), np.float16), ("asap:x", "sf", 1): np.zeros((3, 4), np.float16)}
    dataset = AudioDataset(entries, frames, level=2)
    batch = make_collate(2)([dataset[(0, "sf", 1)], dataset[(1, "sf", 1)]])
    assert isinstance(batch, AudioBatch) and batch.level == 2
    assert batch.frames.shape == (2, 5, 4) and batch.lengths.tolist() == [5, 3]
    assert batch.mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    assert batch.label_mask.tolist() == [True, False] and batch.tier.tolist() == [1, 3]
    assert batch.group.tolist() == [3, 1_000_007]
    assert torch.equal(batch.augmented.frames[0], torch.full((5, 4), 2.0)) and batch.augmented.segment_ids == ["a", "asap:x"]
    clean_only = make_collate(2)([dataset[(0, "sf", 0)]])
    assert clean_only.augmented is None
