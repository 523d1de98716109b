"""PercePiano segments: file names, labels, and where each segment's files are.

A performance file is named ``{piece}_{N}bars_{performer}_{segment}.mid`` (performer
second-to-last, as the upstream code and data agree; its README says the reverse),
e.g. ``Schubert_D960_mv3_8bars_8_13`` is performer 8 playing segment 13. Performers
``Score`` and ``Score2`` are deadpan renderings of the score that were rated too.
The score of a segment is ``{piece}_Score_{segment}`` (MusicXML and MIDI). One file
name upstream starts with a space; label keys never do, so ids are stripped names.

Labels: 19 means of 1-7 ratings divided by 7, then a performer index that is dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pianoeval.errors import DataError
from pianoeval.paths import PERCEPIANO_ENV, percepiano_root

LABEL_FILE = "labels/label_2round_mean_reg_19_with0_rm_highstd0.json"
STD_FILE = "labels/label_2round_std_reg_19_with0_rm_highstd0.json"

#: The 19 perceptual dimensions in label order, named low-pole_to_high-pole.
LABEL_NAMES: tuple[str, ...] = (
    "timing_stable_to_unstable",
    "articulation_short_to_long",
    "articulation_soft_to_hard",
    "pedal_sparse_to_saturated",
    "pedal_clean_to_blurred",
    "timbre_even_to_colorful",
    "timbre_shallow_to_rich",
    "timbre_bright_to_dark",
    "timbre_soft_to_loud",
    "dynamic_mellow_to_raw",
    "dynamic_range_little_to_large",
    "music_making_fast_to_slow",
    "music_making_flat_to_spacious",
    "music_making_disproportioned_to_balanced",
    "music_making_pure_to_dramatic",
    "mood_pleasant_to_dark",
    "mood_low_to_high_energy",
    "mood_honest_to_imaginative",
    "interpretation_unconvincing_to_convincing",
)
NUM_LABELS = len(LABEL_NAMES)

SCORE_PERFORMERS = ("Score", "Score2")
_WORK = re.compile(r"(_thema|_var\d+)?_\d+bars$")
_NAME = re.compile(r"^(?P<piece>.+_(?P<bars>\d+)bars)_(?P<performer>[^_]+)_(?P<segment>[^_]+)$")


@dataclass(frozen=True)
class Segment:
    """One rated performance segment.

    ``score_key`` identifies the music (piece + segment number): two segments with the
    same key are performances of the same notes, which makes them a ranking pair and
    keeps them on the same side of the piece split.
    """

    segment_id: str  # label key: the file stem without surrounding spaces
    file_stem: str  # the performance file's stem exactly as on disk
    piece: str  # e.g. "Schubert_D960_mv3_8bars"
    bars: int
    performer: str  # "8", "Score", "Score2"
    segment_number: str  # as in the file name ("05" stays "05")
    labels: tuple[float, ...]
    label_std: tuple[float, ...]

    @property
    def is_score_rendering(self) -> bool:
        return self.performer in SCORE_PERFORMERS

    @property
    def score_key(self) -> str:
        return f"{self.piece}_{self.segment_number}"

    @property
    def work(self) -> str:
        """The work the segment comes from: the piece name without its bar count and,
        for Beethoven WoO 80, without the variation (e.g. "Schubert_D960_mv3")."""
        return _WORK.sub("", self.piece)

    @property
    def composer(self) -> str:
        return self.piece.split("_", 1)[0]

    def performance_midi(self, root: Path) -> Path:
        return root / "performance_midi" / f"{self.file_stem}.mid"

    def score_musicxml(self, root: Path) -> Path:
        return root / "score_mxl" / f"{self.piece}_Score_{self.segment_number}.mxl"

    def score_midi(self, root: Path) -> Path:
        return root / "score_midi" / f"{self.piece}_Score_{self.segment_number}.mid"


def parse_stem(stem: str) -> dict[str, str] | None:
    """Split a performance file stem into piece, bars, performer and segment number."""
    match = _NAME.match(stem.strip())
    return match.groupdict() if match else None


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(
            f"{path}: label file not found; the bundled PercePiano copy is incomplete "
            f"(restore it with git, or point {PERCEPIANO_ENV} at a full PercePiano folder)"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None


def check_root(root: Path) -> None:
    """Raise DataError naming the missing folder and the fix."""
    if not root.is_dir():
        raise DataError(
            f"{root}: PercePiano folder not found (set {PERCEPIANO_ENV} to a PercePiano copy, "
            "or restore the bundled one with `git checkout pianoeval/data/bundled`)"
        )
    for sub in ("performance_midi", "score_mxl"):
        if not (root / sub).is_dir():
            raise DataError(f"{root / sub}: folder not found in the PercePiano copy (expected {sub}/)")


def load_segments(root: Path | None = None, warn=print) -> tuple[list[Segment], dict[str, int]]:
    """All labelled segments with a performance file, sorted by id.

    Returns ``(segments, skipped)`` where ``skipped`` counts what was left out and why
    (a file without a label, a label without a file, a name that does not parse);
    each skip is reported through ``warn`` on one line.
    """
    root = Path(root) if root is not None else percepiano_root()
    check_root(root)
    means = _load_json(root / LABEL_FILE)
    stds = _load_json(root / STD_FILE)
    stems = {p.stem.strip(): p.stem for p in (root / "performance_midi").glob("*.mid")}
    skipped = {"no_label": 0, "no_performance_file": 0, "bad_name": 0, "bad_label": 0}
    segments = []
    for segment_id in sorted(set(stems) | set(means)):
        if segment_id not in means:
            warn(f"[data] skip {segment_id}: performance file has no label in {LABEL_FILE}")
            skipped["no_label"] += 1
            continue
        if segment_id not in stems:
            warn(f"[data] skip {segment_id}: labelled but performance_midi/{segment_id}.mid is missing")
            skipped["no_performance_file"] += 1
            continue
        parts = parse_stem(segment_id)
        if parts is None:
            warn(f"[data] skip {segment_id}: name is not <piece>_<N>bars_<performer>_<segment>")
            skipped["bad_name"] += 1
            continue
        values = means[segment_id]
        spread = stds.get(segment_id, [float("nan")] * NUM_LABELS)
        if len(values) < NUM_LABELS or not np.all(np.isfinite(values[:NUM_LABELS])):
            warn(f"[data] skip {segment_id}: label has {len(values)} values, expected {NUM_LABELS} (+ performer)")
            skipped["bad_label"] += 1
            continue
        segments.append(
            Segment(
                segment_id=segment_id,
                file_stem=stems[segment_id],
                piece=parts["piece"],
                bars=int(parts["bars"]),
                performer=parts["performer"],
                segment_number=parts["segment"],
                labels=tuple(float(v) for v in values[:NUM_LABELS]),
                label_std=tuple(float(v) for v in spread[:NUM_LABELS]),
            )
        )
    if not segments:
        raise DataError(f"{root}: no labelled performance segments found")
    return segments, skipped


def score_groups(segments: list[Segment]) -> dict[str, list[int]]:
    """score_key -> indices of the segments that perform that music."""
    groups: dict[str, list[int]] = {}
    for i, seg in enumerate(segments):
        groups.setdefault(seg.score_key, []).append(i)
    return groups


def same_piece_pairs(segments: list[Segment]) -> np.ndarray:
    """All (i, j), i < j, of segments that perform the same music: [P, 2] int array."""
    pairs = []
    for members in score_groups(segments).values():
        idx = np.asarray(members)
        i, j = np.triu_indices(len(idx), k=1)
        pairs.append(np.stack([idx[i], idx[j]], axis=1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=int)
