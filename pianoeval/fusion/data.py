"""Fusion batches: the frozen encoders' cached frames of each PercePiano segment, paired.

``FusionDataModule`` (the fusion models' data module) pairs, per segment of the fold, the
audio frames (one soundfont drawn per item per epoch, as the audio track does; the
evaluation soundfont for validation and test), the performance-MIDI frames and, for
score-conditioned fusion, the score-MIDI frames. Tiers, as in the audio track's
batches and with its sampler: T1 labelled segments; T4 (``"T4" in data.tiers``) adds an
augmented audio view of every training item in ``batch.augmented`` (same MIDI), for
the invariance term; validation and test carry a fixed augmented view when the audio
encoder's ``audio.robustness_eval`` is on, so fusion reports the same robustness
metrics as audio. T3 (ASAP cross-performer windows) has no paired audio + MIDI frames
in this pipeline and is refused with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pianoeval.audio.data import AudioTrainSampler, Entry, stack_frames
from pianoeval.data.batch import TIER_LABELLED, BatchBase
from pianoeval.errors import ConfigError
from pianoeval.fusion.frames import audio_frames, score_items, symbolic_frames
from pianoeval.symbolic.sources import percepiano_data


@dataclass
class FusionBatch(BatchBase):
    """Frame sequences of each modality, zero-padded, with their lengths."""

    audio: torch.Tensor = field(kw_only=True)  # [B, Ta, Ca]
    audio_lengths: torch.Tensor = field(kw_only=True)  # [B]
    symbolic: torch.Tensor = field(kw_only=True)  # [B, Ts, Cs]
    symbolic_lengths: torch.Tensor = field(kw_only=True)  # [B]
    score: torch.Tensor | None = field(default=None, kw_only=True)  # [B, Tc, Cs]
    score_lengths: torch.Tensor | None = field(default=None, kw_only=True)

    @staticmethod
    def _mask(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.arange(x.shape[1], device=lengths.device)[None, :] < lengths[:, None]

    @property
    def audio_mask(self) -> torch.Tensor:
        return self._mask(self.audio, self.audio_lengths)

    @property
    def symbolic_mask(self) -> torch.Tensor:
        return self._mask(self.symbolic, self.symbolic_lengths)

    @property
    def score_mask(self) -> torch.Tensor:
        return self._mask(self.score, self.score_lengths)


class FusionDataset(Dataset):
    """Index ``(entry, soundfont, view)`` -> (entry, clean audio, augmented audio or None,
    symbolic frames, score frames or None)."""

    def __init__(self, entries: list[Entry], audio, symbolic, score_of: dict[str, str] | None):
        self.entries, self.audio, self.symbolic, self.score_of = entries, audio, symbolic, score_of

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key):
        index, soundfont, view = key
        entry = self.entries[index]
        sid = entry.item_id
        augmented = self.audio.get((sid, soundfont, view)) if view else None
        score = self.symbolic.get(self.score_of[sid]) if self.score_of is not None else None
        return entry, self.audio.get((sid, soundfont, 0)), augmented, self.symbolic.get(sid), score


def collate_fusion(samples) -> FusionBatch:
    entries = [s[0] for s in samples]
    common = dict(labels=torch.from_numpy(np.stack([e.labels for e in entries])).float(),
                  label_std=torch.from_numpy(np.stack([e.label_std for e in entries])).float(),
                  group=torch.tensor([e.group for e in entries], dtype=torch.int64),
                  segment_ids=[e.item_id for e in entries],
                  label_mask=torch.tensor([e.labelled for e in entries]),
                  tier=torch.tensor([e.tier for e in entries], dtype=torch.int64))
    symbolic, symbolic_lengths = stack_frames([s[3] for s in samples])
    score = score_lengths = None
    if samples[0][4] is not None:
        score, score_lengths = stack_frames([s[4] for s in samples])
    midi = dict(symbolic=symbolic, symbolic_lengths=symbolic_lengths, score=score, score_lengths=score_lengths)
    audio, audio_lengths = stack_frames([s[1] for s in samples])
    augmented = None
    if all(s[2] is not None for s in samples):
        aug, aug_lengths = stack_frames([s[2] for s in samples])
        augmented = FusionBatch(**common, **midi, audio=aug, audio_lengths=aug_lengths)
    return FusionBatch(**common, **midi, audio=audio, audio_lengths=audio_lengths, augmented=augmented)


class FusionDataModule(L.LightningDataModule):
    """One fold of paired frozen-encoder frames; see the module docstring."""

    SUPPORTED_TIERS = ("T1", "T4")

    def __init__(self, config, progress: bool | None = None, warn=print):
        super().__init__()
        tiers = set(config.data.tiers)
        if "T1" not in tiers:
            raise ConfigError("data.tiers: fusion trains on labelled PercePiano segments: include T1")
        if "T3" in tiers or "T2" in tiers:
            raise ConfigError(f"data.tiers: {sorted(tiers - set(self.SUPPORTED_TIERS))} not available for fusion "
                              f"(model {config.model_name}): ASAP windows have no paired audio + MIDI frames; "
                              f"use some of {list(self.SUPPORTED_TIERS)}")
        if config.train.lambda_invariance > 0 and "T4" not in tiers:
            raise ConfigError(f"train.lambda_invariance: {config.train.lambda_invariance} needs augmented views: "
                              f"add T4 to data.tiers (or set it to 0)")
        self.config, self.progress, self.warn = config, progress, warn
        self.spec_model = config.model_spec()
        self.train_set = self.val_set = self.test_set = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        cfg, spec = self.config.data, self.spec_model
        views = 1 if "T4" in cfg.tiers else 0
        self.audio, audio = audio_frames(spec.audio_encoder, spec.audio_checkpoint, self.config, views,
                                         self.progress, self.warn)
        self.symbolic = symbolic_frames(spec.symbolic_encoder, spec.symbolic_checkpoint, self.config,
                                        spec.needs_score, self.progress, self.warn)
        data = percepiano_data(cfg.labels)
        score_of = None
        if spec.needs_score:
            score_of = {sid: item.item_id for sid, item in score_items(data).items()}
        self.soundfonts, self.eval_soundfont = tuple(audio.soundfonts), audio.eval_soundfont
        self.eval_views = 1 if audio.robustness_eval else 0
        available = {k[0] for k in self.audio.keys}
        fold = data.fold(cfg.split, cfg.fold, cfg.pieces, cfg.allow_piece_leakage)

        def entries(ids, soundfonts, n_views, part):
            kept, missing = [], 0
            for sid in ids:
                if sid not in available:
                    continue  # not in the audio encoder's subset (max_train_segments / max_eval_segments)
                ok = sid in self.symbolic and (score_of is None or score_of[sid] in self.symbolic) and all(
                    (sid, sf, v) in self.audio for sf in soundfonts for v in range(n_views + 1))
                if not ok:
                    missing += 1
                    continue
                seg = data.by_id[sid]
                kept.append(Entry(sid, np.asarray(seg.labels, np.float32), np.asarray(seg.label_std, np.float32),
                                  data.group_of[seg.score_key], TIER_LABELLED, True))
            if missing:
                self.warn(f"[fusion] {part}: {missing} segments left out (no frames of one modality, see above)")
            return kept

        train = entries(fold.train, self.soundfonts, views, "train")
        if not train:
            raise ConfigError("fusion: no training segment has frames of both modalities")
        self.train_set = FusionDataset(train, self.audio, self.symbolic, score_of)
        self.val_set = FusionDataset(entries(fold.validation, (self.eval_soundfont,), self.eval_views, "validation"),
                                     self.audio, self.symbolic, score_of)
        self.test_set = FusionDataset(entries(fold.test, (self.eval_soundfont,), self.eval_views, "test"),
                                      self.audio, self.symbolic, score_of)
        self.sampler = AudioTrainSampler(np.array([e.group for e in train]), [], cfg.batch_size,
                                         cfg.batch_sampler == "grouped", cfg.group_size, self.config.seed,
                                         self.soundfonts, views, 1)
        self.warn(f"[fusion] data: {len(train)} train segments x {len(self.soundfonts)} soundfonts, {views} augmented "
                  f"views; val {len(self.val_set)}, test {len(self.test_set)}; frames: audio {self.audio.width} wide "
                  f"({spec.audio_encoder['name']}), symbolic {self.symbolic.width} wide ({spec.symbolic_encoder['name']})"
                  + (", + score" if spec.needs_score else ""))

    @property
    def input_dim(self) -> tuple[int, int]:
        self.setup()
        return self.audio.width, self.symbolic.width

    def steps_per_epoch(self) -> int:
        return len(self.sampler)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_sampler=self.sampler, collate_fn=collate_fusion)

    def _eval_loader(self, dataset: FusionDataset) -> DataLoader:
        size = self.config.data.eval_batch_size
        keys = [(i, self.eval_soundfont, self.eval_views) for i in range(len(dataset))]
        return DataLoader(dataset, batch_sampler=[keys[i:i + size] for i in range(0, len(keys), size)],
                          collate_fn=collate_fusion)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)
