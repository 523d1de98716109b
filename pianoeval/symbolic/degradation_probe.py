"""Degradation sanity probe (seeds 003 / 004): train a symbolic model on quality tiers,
check that it ranks pristine above poor, then check whether it judges quality or only
detects the artefacts.

1. Windows of ASAP (whole pieces held out for testing) are rendered at the four tiers
   of ``pianoeval.symbolic.degradation`` (pristine, good, moderate, poor); each version's
   label is its tier score (0.975 ... 0.575) and the four versions of one window form a
   music group, so the shared ranking loss orders them (the "ranking tier").
2. A registered symbolic model (encoder + shared heads, one output) is trained with the
   shared losses: MSE on the tier score + ``lambda_rank`` x ranking loss.
3. Test windows (unseen pieces): mean predicted score per tier; the share of windows
   whose pristine version scores above its poor version (and above each other tier).
4. The seeds' warning -- "learns to detect degradation, not quality": the model scores
   every clean PercePiano segment; we report its Pearson / Spearman correlation with each
   of the 19 listener ratings, and the mean score of the deadpan ``Score`` renderings
   (mechanical, artefact-free) against human performances.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats

from pianoeval.data.batch import TIER_AUGMENTATION
from pianoeval.data.samplers import GroupedBatchSampler
from pianoeval.models.losses import ranking_loss, regression_loss
from pianoeval.models.registry import get_model
from pianoeval.symbolic.batches import ItemMeta, SymbolicDataset, collate_for
from pianoeval.symbolic.cache import build_store
from pianoeval.symbolic.corpus import ASAP, PERCEPIANO
from pianoeval.symbolic.datamodule import DATA_MODULES
from pianoeval.symbolic.degradation import TIERS
from pianoeval.symbolic.sources import corpus_items, corpus_store, input_dim_of, percepiano_data, source_roots


@dataclass
class ProbeResult:
    tier_means: dict[str, float]  # tier -> mean predicted score on test windows
    pristine_above_poor: float  # share of test windows
    pristine_above: dict[str, float]  # tier -> share of windows with pristine > tier
    label_correlation: dict[str, tuple[float, float]]  # PercePiano dimension -> (pearson, spearman)
    score_renderings: float  # mean predicted score of Score/Score2 renderings
    human_performances: float  # mean predicted score of human performances
    train_windows: int
    test_windows: int
    wall_seconds: float
    history: list[dict] = field(default_factory=list)


def _pick_windows(count: int, test_count: int, seed: int):
    """(train, test) ASAP windows with notes; test windows come from other pieces."""
    items = list(corpus_items(ASAP))
    pieces = sorted({i.piece for i in items})
    rng = np.random.default_rng(seed)
    order = [pieces[k] for k in rng.permutation(len(pieces))]
    test_pieces = set(order[: max(1, len(order) // 5)])
    test = [i for i in items if i.piece in test_pieces]
    train = [i for i in items if i.piece not in test_pieces]
    train = [train[k] for k in sorted(rng.permutation(len(train))[:count])]
    test = [test[k] for k in sorted(rng.permutation(len(test))[:test_count])]
    return train, test


def tier_dataset(kind: str, items, label: str, seed: int = 0) -> SymbolicDataset:
    """Every item at every tier: label = tier score, group = the item (its four versions)."""
    roots = source_roots((ASAP,))
    parts = []
    for tier in TIERS:
        store = build_store(kind, items, roots, label, tier=None if tier.name == "pristine" else tier.name, seed=seed)
        metas = [ItemMeta(i.item_id, (tier.label,), (0.0,), k, labelled=True, tier=TIER_AUGMENTATION)
                 for k, i in enumerate(items) if i.item_id in store]
        parts.append((store, metas, tier.name))
    return _TierDataset(parts)


class _TierDataset(torch.utils.data.Dataset):
    """The four tier versions, each from its own store; ``tier_of[i]`` names item i's tier."""

    def __init__(self, parts):
        self.sets = [SymbolicDataset(store, metas) for store, metas, _ in parts]
        self.tier_of = sum(([name] * len(metas) for _, metas, name in parts), [])
        self.index = [(s, k) for s, dataset in enumerate(self.sets) for k in range(len(dataset))]
        self.group = np.array([self.sets[s].metas[k].group for s, k in self.index])
        self.item_ids = [self.sets[s].metas[k].item_id for s, k in self.index]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        s, k = self.index[i]
        return self.sets[s][k]


def _predict(model, dataset, collate, batch_size: int) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate):
            out.append(torch.sigmoid(model(batch).logits[:, 0]).numpy())
    model.train()
    return np.concatenate(out)


def run_probe(model_name: str, model_overrides: dict | None = None, train_windows: int = 400, test_windows: int = 200,
              epochs: int = 3, batch_size: int = 16, lr: float = 1e-3, lambda_rank: float = 1.0, seed: int = 7,
              log=print) -> ProbeResult:
    """Train ``model_name`` on tier labels and probe it; see the module docstring."""
    started = time.time()
    torch.manual_seed(seed)
    entry = get_model(model_name)
    module = DATA_MODULES[entry.input_kind]  # the representation and edge sets the model reads
    kind = module.kind
    collate = collate_for(kind, module.edge_names)
    model = entry.build(entry.make_config(model_overrides or {}, "probe.model"), input_dim_of(kind), 1)
    train_items, test_items = _pick_windows(train_windows, test_windows, seed)
    train = tier_dataset(kind, train_items, f"probe-train-{seed}", seed)
    test = tier_dataset(kind, test_items, f"probe-test-{seed}", seed)
    log(f"[probe] {model_name}: {len(train_items)} training windows x 4 tiers, {len(test_items)} test windows "
        f"(unseen pieces); {epochs} epochs")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        sampler = GroupedBatchSampler(train.group, batch_size, 4, seed)
        sampler.set_epoch(epoch)
        losses = []
        for batch in torch.utils.data.DataLoader(train, batch_sampler=sampler, collate_fn=collate):
            out = model(batch)
            loss = regression_loss(out.logits, batch.labels) + lambda_rank * ranking_loss(
                out.rank_scores, batch.labels, batch.group)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": time.time() - started})
        log(f"[probe] epoch {epoch + 1}: loss {history[-1]['loss']:.4f}")

    scores = _predict(model, test, collate, 32)
    tiers = np.array(test.tier_of)
    windows = np.array(test.item_ids)
    tier_means = {t.name: float(scores[tiers == t.name].mean()) for t in TIERS}
    by_window = {t.name: dict(zip(windows[tiers == t.name], scores[tiers == t.name])) for t in TIERS}
    pristine = by_window["pristine"]
    above = {}
    for t in TIERS[1:]:
        shared = [w for w in pristine if w in by_window[t.name]]
        above[t.name] = float(np.mean([pristine[w] > by_window[t.name][w] for w in shared]))

    data = percepiano_data()
    store = corpus_store(kind, PERCEPIANO)
    ids = [s.segment_id for s in data.segments if s.segment_id in store]
    metas = [ItemMeta(sid, data.by_id[sid].labels, data.by_id[sid].label_std, -1, labelled=True) for sid in ids]
    percepiano_scores = _predict(model, SymbolicDataset(store, metas), collate, 32)
    labels = np.array([data.by_id[sid].labels for sid in ids])
    correlation = {}
    for j, name in enumerate(data.label_names):
        correlation[name] = (float(stats.pearsonr(percepiano_scores, labels[:, j])[0]),
                             float(stats.spearmanr(percepiano_scores, labels[:, j])[0]))
    rendering = np.array([data.by_id[sid].is_score_rendering for sid in ids])
    return ProbeResult(tier_means, above["poor"], above, correlation, float(percepiano_scores[rendering].mean()),
                       float(percepiano_scores[~rendering].mean()), len(train_items), len(test_items),
                       time.time() - started, history)
