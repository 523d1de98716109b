"""pianoeval.models.losses: hand-computed values, the no-pair cases and gradient safety."""

import math

import pytest
import torch

from pianoeval.models import losses


def test_regression_loss_is_mse_after_sigmoid():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    labels = torch.tensor([[0.5, 0.9], [0.2, 0.6]])
    expected = ((torch.sigmoid(logits) - labels) ** 2).mean()
    assert losses.regression_loss(logits, labels).item() == pytest.approx(expected.item())


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_ranking_loss_by_hand():
    # Items 0 and 1 share a segment, item 2 is alone: the only pair is (0, 1).
    scores = torch.tensor([[1.0, 0.0], [0.0, 0.5], [3.0, 3.0]])
    labels = torch.tensor([[0.8, 0.4], [0.2, 0.4], [0.1, 0.9]])
    groups = torch.tensor([5, 5, 6])
    # dim0: label order +1, score gap +1 -> softplus(-1); dim1: label tie, skipped.
    assert losses.ranking_loss(scores, labels, groups).item() == pytest.approx(_softplus(-1.0))
    # A margin of 0.5 shifts the argument: softplus(0.5 - 1).
    assert losses.ranking_loss(scores, labels, groups, margin=0.5).item() == pytest.approx(_softplus(-0.5))


def test_ranking_loss_prefers_the_label_order():
    labels = torch.tensor([[0.9], [0.5], [0.1]])
    groups = torch.zeros(3, dtype=torch.long)
    right = losses.ranking_loss(torch.tensor([[2.0], [1.0], [0.0]]), labels, groups)
    wrong = losses.ranking_loss(torch.tensor([[0.0], [1.0], [2.0]]), labels, groups)
    assert right < wrong


def test_ranking_loss_min_label_gap_skips_close_pairs():
    scores = torch.tensor([[0.0], [1.0], [5.0]])
    labels = torch.tensor([[0.50], [0.52], [0.90]])
    groups = torch.zeros(3, dtype=torch.long)
    # With gap 0.05 only (0,2) and (1,2) remain, both label order -1.
    expected = (_softplus(-5.0) + _softplus(-4.0)) / 2
    assert losses.ranking_loss(scores, labels, groups, min_label_gap=0.05).item() == pytest.approx(expected)


@pytest.mark.parametrize("groups, labels", [
    (torch.tensor([0, 1, 2]), torch.rand(3, 4)),  # every item alone: no pair
    (torch.tensor([0, 0, 0]), torch.full((3, 4), 0.5)),  # pairs, but every label ties
])
def test_ranking_loss_without_usable_pairs_is_a_gradient_safe_zero(groups, labels):
    scores = torch.randn(3, 4, requires_grad=True)
    loss = losses.ranking_loss(scores, labels, groups)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(scores.grad, torch.zeros_like(scores))


def _naive_infonce(embeddings, groups, temperature):
    z = torch.nn.functional.normalize(embeddings, dim=1)
    terms = []
    for i in range(len(groups)):
        others = [a for a in range(len(groups)) if a != i]
        positives = [p for p in others if groups[p] == groups[i]]
        if not positives:
            continue
        denominator = torch.logsumexp(torch.stack([z[i] @ z[a] / temperature for a in others]), dim=0)
        terms.append(-torch.stack([z[i] @ z[p] / temperature - denominator for p in positives]).mean())
    return torch.stack(terms).mean()


def test_infonce_matches_a_naive_loop():
    torch.manual_seed(0)
    embeddings, groups = torch.randn(6, 8), torch.tensor([0, 0, 0, 1, 1, 2])  # item 5 has no positive
    expected = _naive_infonce(embeddings, groups, 0.2)
    assert losses.infonce_loss(embeddings, groups, temperature=0.2).item() == pytest.approx(expected.item(), rel=1e-5)


def test_infonce_decreases_when_positives_move_together():
    torch.manual_seed(1)
    embeddings, groups = torch.randn(8, 16), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    centroids = torch.stack([embeddings[groups == g].mean(0) for g in groups.tolist()])
    values = [losses.infonce_loss(embeddings + pull * (centroids - embeddings), groups, 0.1).item()
              for pull in (0.0, 0.5, 0.9)]
    assert values[0] > values[1] > values[2]


def test_infonce_without_positives_is_a_gradient_safe_zero():
    for batch in (1, 4):
        embeddings = torch.randn(batch, 8, requires_grad=True)
        loss = losses.infonce_loss(embeddings, torch.arange(batch), temperature=0.1)
        assert loss.item() == 0.0
        loss.backward()
        assert torch.isfinite(embeddings.grad).all()


def test_infonce_gradients_are_finite():
    embeddings = torch.randn(5, 8, requires_grad=True)
    losses.infonce_loss(embeddings, torch.tensor([0, 0, 1, 1, 2]), temperature=0.05).backward()
    assert torch.isfinite(embeddings.grad).all()


def test_invariance_loss_is_mse():
    z_clean, z_augmented = torch.zeros(2, 3), torch.ones(2, 3) * 2
    assert losses.invariance_loss(z_clean, z_augmented).item() == 4.0
    assert losses.invariance_loss(z_clean, z_clean).item() == 0.0


def test_combine_losses_weights_terms_and_logs_them_unweighted():
    terms = {"regression": torch.tensor(0.5, requires_grad=True), "ranking": torch.tensor(2.0),
             "contrastive": torch.tensor(float("nan"))}
    total, logged = losses.combine_losses(terms, {"regression": 1.0, "ranking": 0.25, "contrastive": 0.0,
                                                  "invariance": 3.0})
    # The zero-weight (ablated) NaN term stays out of the total; "invariance" is not in this batch.
    assert total.item() == pytest.approx(1.0)
    assert logged["ranking"].item() == 2.0 and logged["total"].item() == pytest.approx(1.0)
    assert not logged["regression"].requires_grad
    total.backward()
    assert terms["regression"].grad.item() == 1.0


def test_combine_losses_rejects_a_term_without_weight():
    with pytest.raises(ValueError, match="without a weight"):
        losses.combine_losses({"regression": torch.tensor(1.0), "ranking": torch.tensor(1.0)}, {"regression": 1.0})
