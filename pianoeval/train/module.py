"""The LightningModule every registered model trains in.

Loss (one implementation for every track; each batch item's tier decides which terms
see it, see ``pianoeval.data.batch``):

    L = MSE(sigmoid(logits), labels)                      labelled items (T1)
      + lambda_rank        * ranking loss                 same-piece pairs among them
      + lambda_contrastive * piece-based InfoNCE on z     items with a music group (T1, T3)
      + lambda_invariance  * MSE(z_clean, z_augmented)    items with an augmented view (T4)

The sigmoid is applied outside the model, as in the reference. Ranking uses the
model's ranking heads when it has them (``ModelOutput.rank_scores``), else logits.

Logged every epoch (so a sweep can read, select and prune on them):

* ``train/loss`` (and ``train/loss_<term>``),
* ``val/loss`` and every key of ``pianoeval.metrics.evaluate`` as ``val/<key>``
  (R2, pairwise accuracy, per-dimension values, prediction std ratio, collapsed
  dimensions, ...),
* ``val/robust_pairwise_drop`` and ``val/robust_pearson`` when validation batches carry
  an ``augmented`` view (audio robustness: clean vs augmented predictions),
* ``diag/<name>``: the model's own diagnostics averaged over the validation pass
  (attention entropy per level, each level's contribution share), ``diag/logits_std``,
* ``grad_norm/<module>`` and ``grad_norm/total``: mean gradient norm per top-level
  module over the epoch's optimiser steps.

A non-finite training loss raises ``TrialDiverged`` at once, naming epoch and step,
so a diverged trial ends with a clear status instead of burning its budget.
"""

from __future__ import annotations

import math
from collections import defaultdict

import lightning as L
import numpy as np
import torch

from pianoeval.data.labels import label_dimensions
from pianoeval.errors import TrialDiverged
from pianoeval.experiment import ExperimentConfig
from pianoeval.metrics import evaluate, pairwise_accuracy
from pianoeval.models.output import NamesDimensions
from pianoeval.models.registry import get_model
from pianoeval.models.losses import combine_losses, infonce_loss, invariance_loss, ranking_loss, regression_loss


class PerformanceModule(L.LightningModule):
    """Heads, loss and metrics size themselves from the run's label set (``data.labels``):
    ``label_names`` are its N dimensions, in label order."""

    def __init__(self, config: ExperimentConfig, input_dim: int, steps_per_epoch: int | None = None):
        super().__init__()
        self.config = config
        self.label_names = label_dimensions(config.data.labels)
        self.model = get_model(config.model_name).build(config.model_spec(), input_dim, len(self.label_names))
        if isinstance(self.model, NamesDimensions):
            self.model.label_names = list(self.label_names)
        self.steps_per_epoch = steps_per_epoch
        self._collected: dict[str, list] = defaultdict(list)
        self._diagnostics: dict[str, list[tuple[float, int]]] = defaultdict(list)
        self._grad_norms: dict[str, list[float]] = defaultdict(list)

    def forward(self, batch):
        return self.model(batch)

    # --- training ------------------------------------------------------------------
    def _loss(self, out, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        train = self.config.train
        labelled = batch.labelled
        terms, weights = {}, {}
        if bool(labelled.any()):
            terms["regression"] = regression_loss(out.logits[labelled], batch.labels[labelled])
            weights["regression"] = 1.0
            if train.lambda_rank > 0:
                scores = out.rank_scores if out.rank_scores is not None else out.logits
                terms["ranking"] = ranking_loss(scores[labelled], batch.labels[labelled], batch.group[labelled],
                                                margin=train.rank_margin)
                weights["ranking"] = train.lambda_rank
        if train.lambda_contrastive > 0:
            if out.embedding is None:
                raise ValueError(f"{self.config.model_name} has no embedding: set train.lambda_contrastive to 0")
            grouped = batch.group >= 0
            terms["contrastive"] = infonce_loss(out.embedding[grouped], batch.group[grouped],
                                                train.contrastive_temperature)
            weights["contrastive"] = train.lambda_contrastive
        if train.lambda_invariance > 0 and batch.augmented is not None:
            augmented = self.model(batch.augmented)
            terms["invariance"] = invariance_loss(out.embedding, augmented.embedding)
            weights["invariance"] = train.lambda_invariance
        if not terms:
            return out.logits.sum() * 0.0, {"total": out.logits.new_zeros(())}
        return combine_losses(terms, weights)

    def training_step(self, batch, batch_idx):
        out = self(batch)
        total, logged = self._loss(out, batch)
        if not torch.isfinite(total):
            raise TrialDiverged(
                f"training loss became {total.item()} at epoch {self.current_epoch}, step {self.global_step} "
                f"(lr {self.config.train.lr:g}); the trial stops here"
            )
        size = len(batch)
        self.log("train/loss", total, on_step=False, on_epoch=True, batch_size=size)
        if len(logged) > 2:
            for name, value in logged.items():
                if name != "total":
                    self.log(f"train/loss_{name}", value, on_step=False, on_epoch=True, batch_size=size)
        return total

    def on_before_optimizer_step(self, optimizer) -> None:
        total = 0.0
        for name, child in self.model.named_children():
            grads = [p.grad.detach().pow(2).sum() for p in child.parameters() if p.grad is not None]
            if grads:
                squared = float(torch.stack(grads).sum())
                total += squared
                self._grad_norms[name].append(math.sqrt(squared))
        self._grad_norms["total"].append(math.sqrt(total))

    def _log_grad_norms(self) -> None:
        # Called at the end of the epoch's validation (after its last optimiser step and
        # before the epoch-end callbacks that record history and report to Tune).
        for name, values in self._grad_norms.items():
            self.log(f"grad_norm/{name}", float(np.mean(values)))
        self._grad_norms.clear()

    # --- evaluation ------------------------------------------------------------------
    def _collect(self, stage: str, batch) -> None:
        out = self(batch)
        ranked = out.rank_scores if (out.rank_scores is not None and self.config.train.lambda_rank > 0) else None
        # a batch that carries an augmented view is also predicted augmented (robustness metrics)
        augmented = None if batch.augmented is None else _numpy(torch.sigmoid(self(batch.augmented).logits))
        self._collected[stage].append((
            _numpy(torch.sigmoid(out.logits)), _numpy(out.logits), _numpy(batch.labels),
            batch.group.cpu().numpy(), _numpy(batch.label_std), list(batch.segment_ids),
            None if ranked is None else _numpy(ranked), augmented,
        ))
        for name, value in out.diagnostics.items():
            if torch.isfinite(value):
                self._diagnostics[stage].append((name, float(value), len(batch)))

    def validation_step(self, batch, batch_idx):
        self._collect("val", batch)

    def test_step(self, batch, batch_idx):
        self._collect("test", batch)

    def stage_results(self, stage: str) -> tuple[dict[str, float], dict]:
        """Metrics and raw predictions of everything collected for ``stage``; clears it."""
        parts = self._collected.pop(stage, [])
        pred, logits, labels, groups, label_std, ids, ranked, augmented = (
            [p[i] for p in parts] for i in range(8))
        pred, logits, labels = np.concatenate(pred), np.concatenate(logits), np.concatenate(labels)
        groups, label_std = np.concatenate(groups), np.concatenate(label_std)
        metrics = stage_metrics(labels, pred, groups, label_std, self.label_names)
        if ranked[0] is not None:
            # trained ranking heads order the performances; their pairwise accuracy is the one that counts
            ranking = evaluate(labels, np.concatenate(ranked), groups, dimension_names=self.label_names)
            metrics.update({k: v for k, v in ranking.items() if k.startswith("pairwise_acc")})
        if all(a is not None for a in augmented):
            metrics.update(robustness_metrics(labels, pred, np.concatenate(augmented), groups))
        diag = defaultdict(lambda: [0.0, 0])
        for name, value, weight in self._diagnostics.pop(stage, []):
            diag[name][0] += value * weight
            diag[name][1] += weight
        diagnostics = {f"diag/{k}": s / w for k, (s, w) in diag.items()}
        diagnostics["diag/logits_std"] = float(logits.std(axis=0).mean())
        raw = {"segment_id": sum(ids, []), "prediction": pred, "label": labels, "group": groups}
        return {**metrics, **diagnostics}, raw

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._collected.pop("val", None)
            self._diagnostics.pop("val", None)
            return
        self._log_grad_norms()
        metrics, _ = self.stage_results("val")
        for key, value in metrics.items():
            name = key if key.startswith("diag/") else f"val/{key}"
            self.log(name, float(value) if np.isfinite(value) else float("nan"))

    def configure_callbacks(self):
        # a model with a training schedule of its own (e.g. gradual unfreezing) brings its callbacks
        hook = getattr(self.model, "training_callbacks", None)
        return hook() if callable(hook) else []

    # --- optimisation ----------------------------------------------------------------
    def configure_optimizers(self):
        train = self.config.train
        opt_cls = torch.optim.Adam if train.optimizer == "adam" else torch.optim.AdamW
        # a model may ask for parameter groups (e.g. discriminative learning rates per layer)
        groups = getattr(self.model, "parameter_groups", None)
        params = (groups(train.lr) if callable(groups) else None) or self.parameters()
        optimizer = opt_cls(params, lr=train.lr, weight_decay=train.weight_decay)
        if train.scheduler == "constant":
            return optimizer
        if train.scheduler == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=train.step_size, gamma=train.gamma)
        else:
            total = max(1, (self.steps_per_epoch or 1) * train.max_epochs)
            warmup = int(train.warmup_fraction * total)

            def factor(step: int) -> float:
                if step < warmup:
                    return (step + 1) / warmup
                return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _numpy(values: torch.Tensor) -> np.ndarray:
    """Float32 numpy values; under bf16/16-mixed autocast outputs are half types numpy lacks."""
    return values.detach().float().cpu().numpy()


def stage_metrics(labels: np.ndarray, pred: np.ndarray, groups: np.ndarray, label_std: np.ndarray,
                  dimension_names) -> dict[str, float]:
    """The metrics of one evaluated stage: every key of ``pianoeval.metrics.evaluate`` (its
    ``count/`` bookkeeping left out) and ``loss``, the MSE on the label scale. A label set
    without rater std (a labels file, a taxonomy) has no ``std_score_*`` metrics."""
    has_std = label_std is not None and not np.isnan(label_std).all()
    metrics = evaluate(labels, pred, groups, label_std=label_std if has_std else None,
                       dimension_names=list(dimension_names))
    metrics["loss"] = float(np.mean((pred - labels) ** 2))
    return {k: v for k, v in metrics.items() if not k.startswith("count/")}


def robustness_metrics(labels: np.ndarray, clean: np.ndarray, augmented: np.ndarray, groups: np.ndarray) -> dict:
    """Clean vs augmented predictions of the same items (the design's robustness metrics).

    ``robust_pairwise_drop``: pairwise accuracy on clean minus on augmented inputs
    (fraction points; the design's veto is a drop above 0.15). ``robust_pearson``: mean
    over dimensions of Pearson r between clean and augmented predictions (target > 0.9)."""
    drop = pairwise_accuracy(labels, clean, groups).mean - pairwise_accuracy(labels, augmented, groups).mean
    with np.errstate(invalid="ignore", divide="ignore"):
        r = [np.corrcoef(clean[:, d], augmented[:, d])[0, 1] for d in range(clean.shape[1])]
    r = [v for v in r if np.isfinite(v)]
    return {"robust_pairwise_drop": float(drop), "robust_pearson": float(np.mean(r)) if r else float("nan")}
