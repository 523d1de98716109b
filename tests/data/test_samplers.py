import numpy as np

from pianoeval.data.samplers import GroupedBatchSampler


def test_grouped_batches_pair_same_music_and_cover_every_item_once():
    groups = np.repeat(np.arange(30), [1, 2, 3, 5, 7, 13] * 5)
    sampler = GroupedBatchSampler(groups, batch_size=8, group_size=2, seed=0)
    batches = list(sampler)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(groups)))
    assert all(len(b) <= 8 for b in batches)
    pairs = sum(len(b) - len(set(groups[b].tolist())) for b in batches)
    assert pairs >= 0.4 * len(groups)  # most items come with a partner of the same music
    assert list(sampler) != batches  # a new shuffle each epoch
    again = GroupedBatchSampler(groups, batch_size=8, group_size=2, seed=0)
    assert [b for b in again] == batches  # deterministic for (seed, epoch)
