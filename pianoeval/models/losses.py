"""The training objective, written once for every track (HAN, audio, symbolic, fusion), and the
terms the tracks' own pre-training reuses (a shared model part, below the tracks and ``train/``).

    L_total = L_regression
            + lambda_rank        * L_ranking       (same-segment pairs in the batch)
            + lambda_contrastive * L_contrastive   (piece-based InfoNCE, cross-performer)
            + lambda_invariance  * L_invariance    (clean vs augmented embedding)

Shapes: B items in a batch, L label dimensions, Z embedding width. ``groups``
is the batch's ``group`` field ([B] int64 score-segment ids): equal values mean
the same music by different performers. Every term is a scalar tensor; a term
with nothing to compare returns a zero that is still attached to the graph, so
``backward()`` works and no NaN appears when a batch happens to hold no pair.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F


def regression_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MSE between ``sigmoid(logits)`` and ``labels``, averaged over ``B × L``.

    logits: [B, L] raw model outputs (the sigmoid lives outside the model, as in
    the PercePiano reference). labels: [B, L] in [0, 1].
    """
    if logits.shape != labels.shape:
        raise ValueError(f"logits have shape {tuple(logits.shape)} but labels {tuple(labels.shape)}")
    return F.mse_loss(torch.sigmoid(logits), labels)


def _same_group_pairs(groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index tensors ``(first, second)`` of all pairs ``first < second`` with equal group."""
    same = groups.reshape(-1, 1) == groups.reshape(1, -1)
    upper = torch.ones_like(same).triu(diagonal=1)  # i < j: each pair once, no self-pairs
    first, second = torch.nonzero(same & upper, as_tuple=True)
    return first, second


def ranking_loss(
    scores: torch.Tensor,
    labels: torch.Tensor,
    groups: torch.Tensor,
    margin: float = 0.0,
    min_label_gap: float = 0.0,
) -> torch.Tensor:
    """Dimension-wise logistic ranking loss over same-group pairs of the batch.

    scores: [B, L] (logits or ranking-head outputs; only differences matter).
    labels: [B, L]. groups: [B]. For every pair ``i < j`` with equal group and
    every dimension d with ``|labels[i, d] - labels[j, d]| > min_label_gap``
    (label ties carry no order and are skipped), with ``t = sign(labels[i, d] -
    labels[j, d])``::

        loss = softplus(margin - t * (scores[i, d] - scores[j, d]))

    averaged over all usable (pair, dimension) entries. ``margin = 0`` is the
    RankNet loss; a positive margin keeps pushing until the correctly ordered
    score gap exceeds it. Returns a graph-attached 0 when nothing is usable.
    """
    if scores.shape != labels.shape or scores.dim() != 2:
        raise ValueError(f"scores {tuple(scores.shape)} and labels {tuple(labels.shape)} must both be [B, L]")
    if groups.shape != scores.shape[:1]:
        raise ValueError(f"groups has shape {tuple(groups.shape)}, expected [{scores.shape[0]}]")
    first, second = _same_group_pairs(groups)
    label_gap = labels[first] - labels[second]  # [P, L]
    usable = (label_gap.abs() > min_label_gap).to(scores.dtype)
    score_gap = scores[first] - scores[second]
    per_entry = F.softplus(margin - torch.sign(label_gap) * score_gap)
    # A masked mean instead of per_entry[usable].mean(): no host sync, and with
    # no usable entry it is 0 / 1 = 0, still attached to ``scores``.
    return (per_entry * usable).sum() / usable.sum().clamp(min=1.0)


def infonce_loss(embeddings: torch.Tensor, groups: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Piece-based multi-positive InfoNCE (supervised-contrastive form).

    embeddings: [B, Z], L2-normalised here, so similarities are cosines / ``temperature``.
    groups: [B]. For each anchor i, the positives P(i) are the other items of
    its group (the same piece by other performers) and the candidates are all
    items except i itself::

        loss_i = -mean_{p in P(i)} log( exp(s_ip) / sum_{a != i} exp(s_ia) )

    averaged over anchors with at least one positive; anchors without a
    positive (a piece seen once in the batch) are skipped. Returns a
    graph-attached 0 when no anchor has a positive.
    """
    if embeddings.dim() != 2 or groups.shape != embeddings.shape[:1]:
        raise ValueError(f"embeddings must be [B, Z] and groups [B]; got {tuple(embeddings.shape)} "
                         f"and {tuple(groups.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    self_mask = torch.eye(len(groups), dtype=torch.bool, device=groups.device)
    positives = (groups.reshape(-1, 1) == groups.reshape(1, -1)) & ~self_mask
    n_positives = positives.sum(dim=1)
    anchors = n_positives > 0
    if not bool(anchors.any()):
        return embeddings.sum() * 0.0
    z = F.normalize(embeddings, dim=1)
    similarity = (z @ z.T) / temperature
    # -inf on the diagonal drops each anchor from its own denominator.
    log_prob = similarity.masked_fill(self_mask, float("-inf")).log_softmax(dim=1)
    # where() instead of multiply: 0 * -inf on the diagonal would be NaN.
    positive_log_prob = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    return -(positive_log_prob[anchors] / n_positives[anchors]).mean()


def invariance_loss(z_clean: torch.Tensor, z_augmented: torch.Tensor) -> torch.Tensor:
    """MSE between embeddings of the clean and the augmented recording, both [B, Z].

    Gradients flow into both sides; detach ``z_clean`` at the call site for a
    stop-gradient (teacher) variant.
    """
    if z_clean.shape != z_augmented.shape:
        raise ValueError(f"z_clean {tuple(z_clean.shape)} and z_augmented {tuple(z_augmented.shape)} differ")
    return F.mse_loss(z_augmented, z_clean)


def combine_losses(
    terms: Mapping[str, torch.Tensor], weights: Mapping[str, float]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the loss terms, plus the detached *unweighted* terms for logging.

    terms: name -> scalar tensor (e.g. ``{"regression": ..., "ranking": ...}``).
    weights: name -> lambda. Every term needs a weight (``ValueError``
    otherwise); weights of terms absent from this batch are ignored, since a
    batch without cross-performer items has no contrastive term. Zero-weight
    terms are logged but left out of the total, so an ablated term cannot
    poison it with a NaN. The log dict holds ``<name>`` for each term and
    ``"total"``; values stay tensors so logging does not force a device sync.
    """
    missing = sorted(set(terms) - set(weights))
    if missing:
        raise ValueError(f"loss terms without a weight: {missing} (weights given for {sorted(weights)})")
    if not terms:
        raise ValueError("combine_losses needs at least one loss term")
    weighted = [weights[name] * value for name, value in terms.items() if weights[name] != 0]
    if weighted:
        total = torch.stack(weighted).sum()
    else:  # every term ablated: a zero that still backpropagates
        total = torch.stack([value for value in terms.values()]).sum() * 0.0
    logged = {name: value.detach() for name, value in terms.items()}
    logged["total"] = total.detach()
    return total, logged
