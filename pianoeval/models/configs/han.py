"""The HAN family's config and its eight registered variants (the model: ``pianoeval.models.han``).

Torch-free, like every module of ``pianoeval.models.configs``: the registry validates a
``model:`` block against ``HanConfig`` without importing the model code.
"""

from __future__ import annotations

from typing import Literal

import pydantic

from pianoeval.config import StrictModel
from pianoeval.models.entry import ModelEntry

#: the data module of the ``notes`` input kind (score-aligned note features)
NOTES = "pianoeval.models.datamodules:NoteDataModule"

Level = Literal["voice", "beat", "measure"]
Readout = Literal["note", "voice", "beat", "measure", "total_note_cat"]
LEVEL_ORDER = ("voice", "beat", "measure")

# Levels each readout needs built, and levels that can feed it at all (any other built level
# would be off the path: built, counted, never used).
_READOUT_NEEDS: dict[str, tuple[str, ...]] = {
    "note": (), "voice": ("voice",), "beat": ("beat",), "measure": ("beat", "measure"), "total_note_cat": ()}
_READOUT_ALLOWS: dict[str, tuple[str, ...]] = {
    "note": (), "voice": ("voice",), "beat": ("voice", "beat"), "measure": LEVEL_ORDER,
    "total_note_cat": LEVEL_ORDER}


class HanConfig(StrictModel):
    """Config of the HAN family. Class defaults are the paper's HAN (``han``).

    Attributes:
        hidden_size: LSTM hidden size of every level (note = voice = beat = measure, as
            the reference's readouts assume); level outputs are ``2 * hidden_size`` wide.
        note_layers, voice_layers, beat_layers, measure_layers: BiLSTM depth per level;
            dropout is applied between layers (so not in 1-layer LSTMs).
        num_heads: heads of every context attention; must divide ``2 * hidden_size``.
        dropout: between LSTM layers and inside the ``out_fc`` head.
        attention_temperature: divides every context-attention score (1.0 = reference).
        levels: hierarchy levels built above the note LSTM. ``measure`` needs ``beat``.
        readout: what the head reads: ``note`` (note LSTM), ``voice`` ([note|voice]),
            ``beat`` / ``measure`` (that level's LSTM outputs), ``total_note_cat`` (note
            LSTM plus every built level, spanned back to notes, concatenated).
        flat_layers: if set, the flat depth-matched control: one BiLSTM of this depth
            replaces the note LSTM (``note_layers`` then does not apply); needs
            ``levels: []`` and ``readout: note``.
        zero_levels: built levels replaced by zeros: ``voice`` sets the voice LSTM output
            to 0 everywhere; ``beat`` / ``measure`` replace their spanned block before the
            ``total_note_cat`` projection (only that readout concatenates them).
        zero_mode: ``train_and_eval`` zeros always (capacity ablation); ``eval_only``
            zeros only when the module is in eval mode (reliance probe on a trained model).
    """

    hidden_size: int = pydantic.Field(256, ge=1)
    note_layers: int = pydantic.Field(2, ge=1)
    voice_layers: int = pydantic.Field(2, ge=1)
    beat_layers: int = pydantic.Field(2, ge=1)
    measure_layers: int = pydantic.Field(1, ge=1)
    num_heads: int = pydantic.Field(8, ge=1)
    dropout: float = pydantic.Field(0.2, ge=0.0, lt=1.0)
    attention_temperature: float = pydantic.Field(1.0, gt=0.0)
    levels: tuple[Level, ...] = LEVEL_ORDER
    readout: Readout = "measure"
    flat_layers: int | None = pydantic.Field(None, ge=1)
    zero_levels: tuple[Level, ...] = ()
    zero_mode: Literal["train_and_eval", "eval_only"] = "train_and_eval"

    @pydantic.field_validator("levels", "zero_levels")
    @classmethod
    def _canonical_order(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate level in {list(value)}")
        return tuple(level for level in LEVEL_ORDER if level in value)

    @pydantic.model_validator(mode="after")
    def _check_path(self) -> "HanConfig":
        levels, readout = set(self.levels), self.readout
        if (2 * self.hidden_size) % self.num_heads:
            raise ValueError(f"num_heads: {self.num_heads} does not divide 2 * hidden_size = "
                             f"{2 * self.hidden_size} (each head pools an equal feature slice)")
        if "measure" in levels and "beat" not in levels:
            raise ValueError("levels: 'measure' needs 'beat' (the measure attention pools beat-LSTM "
                             "outputs; pooling notes straight to measures is not implemented)")
        missing = [lv for lv in _READOUT_NEEDS[readout] if lv not in levels]
        if missing:
            raise ValueError(f"readout: {readout!r} needs levels {missing}; add them to levels")
        off_path = [lv for lv in self.levels if lv not in _READOUT_ALLOWS[readout]]
        if off_path:
            raise ValueError(f"levels: {off_path} would not reach readout {readout!r} (only modules "
                             f"on the readout's path are built); remove them or change the readout")
        if self.flat_layers is not None and (self.levels or readout != "note" or self.zero_levels):
            raise ValueError("flat_layers: the flat control is a single BiLSTM with the note readout; "
                             "it needs levels: [], readout: note and no zero_levels")
        for level in self.zero_levels:
            if level not in levels:
                raise ValueError(f"zero_levels: {level!r} is not built (levels: {list(self.levels)})")
            if level != "voice" and readout != "total_note_cat":
                raise ValueError(
                    f"zero_levels: cannot zero {level!r} with readout {readout!r}: {level} lies on "
                    f"the only path to that readout, so zeroing it would zero the readout itself; "
                    f"zero it under readout 'total_note_cat', or remove the level instead")
        return self


def _variant(name: str, description: str, feature_set: str = "full", **defaults) -> ModelEntry:
    return ModelEntry(name=name, config_cls=HanConfig, builder="pianoeval.models.han:build_han",
                      input_kind="notes", datamodule=NOTES, defaults=defaults,
                      data_defaults={"feature_set": feature_set}, description=description)


# The incremental build of reference section 7, plus the flat depth-matched control.
VARIANTS: tuple[ModelEntry, ...] = (
    _variant("bilstm_baseline", "paper's Bi-LSTM: note BiLSTM + note readout on performance-only features",
             feature_set="perf_only", levels=(), readout="note"),
    _variant("note_sa", "paper's Bi-LSTM + SA: note BiLSTM + attention readout on full features",
             levels=(), readout="note"),
    _variant("note_voice", "note + voice-wise BiLSTMs, [note|voice] readout", levels=("voice",), readout="voice"),
    _variant("note_beat", "note BiLSTM + beat hierarchy, no voice branch; beat readout",
             levels=("beat",), readout="beat"),
    _variant("note_voice_beat", "note + voice + beat hierarchy; beat readout",
             levels=("voice", "beat"), readout="beat"),
    _variant("han", "paper's HAN (Bi-LSTM + SA + HAN): full hierarchy, measure readout",
             levels=LEVEL_ORDER, readout="measure"),
    _variant("han_total_cat", "full hierarchy, readout over [note|voice|beat|measure] spanned to notes",
             levels=LEVEL_ORDER, readout="total_note_cat"),
    _variant("flat_bilstm_7", "depth-matched flat control: 7-layer BiLSTM + note readout",
             levels=(), readout="note", flat_layers=7),
)
