"""Label sets: which targets a run learns, as N named dimensions per segment key.

``data.labels`` names one of three kinds:

* ``percepiano19`` (the default): PercePiano's 19 dimensions with their rater std.
* a JSON file ``{key: {dimension: value}}`` with values in [0, 1]. The dimension order
  is the file's ``"dimensions": [...]`` list, else a sidecar ``<stem>.dimensions.json``
  holding that list, else the sorted names.
* a taxonomy: YAML defining composite dimensions as weighted combinations of the 19
  PercePiano dimensions, computed at load (``dimensions: {name: {source: weight}}``; a
  list of sources is their equal-weight mean). A taxonomy shipped in
  ``pianoeval/data/taxonomies/`` is named without its path (``percepiano_categories``).

A label set of a file carries no rater std (the ``std_score_*`` metrics are left out).
Segments the set has no label for are skipped, counted and reported; a malformed value
(missing dimension, not a number, outside [0, 1]) is a one-line DataError naming the
file, the key and the dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from pianoeval.config import load_yaml
from pianoeval.data.percepiano import LABEL_NAMES, Segment
from pianoeval.errors import ConfigError, DataError
from pianoeval.io import read_user_json

DEFAULT_LABELS = "percepiano19"
TAXONOMY_DIR = Path(__file__).resolve().parent / "taxonomies"
_FIRST = 3  # offending items a message names


def taxonomy_names() -> list[str]:
    return sorted(p.stem for p in TAXONOMY_DIR.glob("*.yaml"))


def label_source(spec: str) -> tuple[str, Path | None]:
    """``(kind, path)`` of a ``data.labels`` value: kind is ``percepiano19``, ``file``
    or ``taxonomy``. ConfigError when it is neither a known name nor a usable file."""
    if spec == DEFAULT_LABELS:
        return DEFAULT_LABELS, None
    shipped = TAXONOMY_DIR / f"{spec}.yaml"
    if "/" not in spec and shipped.is_file():
        return "taxonomy", shipped
    path = Path(spec).expanduser()
    if path.suffix not in (".json", ".yaml", ".yml"):
        raise ConfigError(f"data.labels: {spec!r} is not a label set (use {DEFAULT_LABELS}, a taxonomy name "
                          f"({', '.join(taxonomy_names())}), a labels .json or a taxonomy .yaml file)")
    if path.is_dir():
        raise ConfigError(f"data.labels: {path}: is a folder, not a file (give the labels .json or taxonomy .yaml)")
    if not path.is_file():
        raise ConfigError(f"data.labels: {path}: file not found")
    return ("file" if path.suffix == ".json" else "taxonomy"), path.resolve()


@dataclass(frozen=True)
class LabelSet:
    """N named dimensions and each labelled key's values (std None: no rater std)."""

    spec: str  # the data.labels value
    path: Path | None
    dimensions: tuple[str, ...]
    values: dict[str, tuple[float, ...]]
    std: dict[str, tuple[float, ...]] | None = None

    def describe(self) -> str:
        where = f" from {self.path}" if self.path is not None else ""
        return f"{self.spec}{where}: {len(self.dimensions)} dimensions ({', '.join(self.dimensions)})"


def _number(value, path: Path, key: str, dim: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{path}: {key}: {dim}: {value!r} is not a number (labels are numbers in [0, 1])")
    if not 0.0 <= value <= 1.0:
        raise DataError(f"{path}: {key}: {dim}: {value} is outside [0, 1] (rescale the labels to [0, 1])")
    return float(value)


def _read_json(path: Path):
    return read_user_json(path)


def _dimension_list(value, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(d, str) and d for d in value):
        raise DataError(f"{path}: dimensions: expected a non-empty list of names, got {value!r:.60}")
    if len(set(value)) != len(value):
        raise DataError(f"{path}: dimensions: a name is listed twice ({value})")
    return tuple(value)


def read_label_file(path: Path) -> tuple[tuple[str, ...], dict[str, tuple[float, ...]], str]:
    """``(dimensions, {key: values}, where the order came from)`` of a labels JSON file."""
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a mapping {{key: {{dimension: value}}}}, got {type(raw).__name__}")
    raw = dict(raw)
    sidecar = path.with_name(f"{path.stem}.dimensions.json")
    if "dimensions" in raw:
        dims, order = _dimension_list(raw.pop("dimensions"), path), "the file's dimensions list"
    elif sidecar.is_file():
        dims, order = _dimension_list(_read_json(sidecar), sidecar), str(sidecar)
    else:
        names = set()
        for value in raw.values():
            names |= set(value) if isinstance(value, dict) else set()
        dims, order = tuple(sorted(names)), "sorted names"
        if raw and not dims:
            raise DataError(f"{path}: no dimension names: every key's entry is empty (each key needs "
                            f"{{dimension: value}}, e.g. {next(iter(raw))}: {{timing: 0.5}})")
    if not raw:
        raise DataError(f"{path}: no labelled keys")
    values = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict):
            raise DataError(f"{path}: {key}: expected {{dimension: value}}, got {type(entry).__name__}")
        missing = [d for d in dims if d not in entry]
        if missing:
            raise DataError(f"{path}: {key}: dimension {missing[0]} is missing "
                            f"({len(missing)} of {len(dims)}; every key needs every dimension)")
        extra = sorted(set(entry) - set(dims))
        if extra:
            raise DataError(f"{path}: {key}: dimension {extra[0]} is not in the dimensions list ({', '.join(dims)})")
        values[key] = tuple(_number(entry[d], path, key, d) for d in dims)
    return dims, values, order


def read_taxonomy(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """``(composite names, weights [N, 19])`` of a taxonomy YAML file."""
    raw = load_yaml(path)  # UTF-8, no key twice (a composite defined twice), no alias bombs
    table = raw.get("dimensions")
    if not isinstance(table, dict) or not table:
        raise DataError(f"{path}: dimensions: expected a mapping {{composite: {{percepiano dimension: weight}}}}")
    weights = np.zeros((len(table), len(LABEL_NAMES)))
    for row, (name, sources) in enumerate(table.items()):
        if not isinstance(name, str):  # YAML reads yes / no / on / 1 as booleans and numbers
            raise DataError(f"{path}: dimensions: composite name {name!r} is read as {type(name).__name__}, not a "
                            f"name (YAML reads yes, no, on, off and numbers so; quote the name in the file)")
        if isinstance(sources, list):
            twice = sorted({s for s in sources if sources.count(s) > 1}, key=str)
            if twice:
                raise DataError(f"{path}: dimensions.{name}: {twice[0]!r} is listed twice (a list is an equal-weight "
                                f"mean; give {{dimension: weight}} for other weights)")
            sources = {s: 1.0 / len(sources) for s in sources} if sources else {}
        if not isinstance(sources, dict) or not sources:
            raise DataError(f"{path}: dimensions.{name}: expected a non-empty list or {{dimension: weight}} mapping")
        for source, weight in sources.items():
            if source not in LABEL_NAMES:
                raise DataError(f"{path}: dimensions.{name}: {source!r} is not a PercePiano dimension "
                                f"(they are: {', '.join(LABEL_NAMES)})")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
                raise DataError(f"{path}: dimensions.{name}.{source}: weight {weight!r} is not a number")
            weights[row, LABEL_NAMES.index(source)] = weight
        if not weights[row].any():  # a constant 0 target: every model would fit it, nothing would be learned
            raise DataError(f"{path}: dimensions.{name}: every weight is 0; give at least one source a weight")
    return tuple(str(n) for n in table), weights


def label_dimensions(spec: str) -> tuple[str, ...]:
    """The dimension names of a ``data.labels`` value, in label order (reads the file only)."""
    kind, path = label_source(spec)
    if kind == DEFAULT_LABELS:
        return LABEL_NAMES
    return read_label_file(path)[0] if kind == "file" else read_taxonomy(path)[0]


def _label_set(spec: str, segments: list[Segment]) -> LabelSet:
    kind, path = label_source(spec)
    if kind == DEFAULT_LABELS:
        return LabelSet(spec, None, LABEL_NAMES, {s.segment_id: s.labels for s in segments},
                        {s.segment_id: s.label_std for s in segments})
    if kind == "file":
        dims, values, _ = read_label_file(path)
        return LabelSet(spec, path, dims, values)
    dims, weights = read_taxonomy(path)
    values = {}
    for seg in segments:
        composite = weights @ np.asarray(seg.labels)
        for dim, value in zip(dims, composite):
            _number(float(value), path, seg.segment_id, dim)  # weights that leave [0, 1] are an error
        values[seg.segment_id] = tuple(float(v) for v in composite)
    return LabelSet(spec, path, dims, values)


@lru_cache(maxsize=8)
def _cached(spec: str, stamp: tuple, segments: tuple[Segment, ...]) -> LabelSet:
    return _label_set(spec, list(segments))


def load_label_set(spec: str, segments: list[Segment]) -> LabelSet:
    """The label set ``spec`` over PercePiano's ``segments`` (a taxonomy is computed
    from their 19 labels); cached per file state, so a changed file is read again."""
    _, path = label_source(spec)
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path is not None else ()
    return _cached(spec, stamp, tuple(segments))


def apply_label_set(segments: list[Segment], labels: LabelSet, warn=print) -> tuple[list[Segment], dict[str, int]]:
    """``segments`` relabelled with ``labels`` (std NaN when the set has none), and the
    counts of what was left out: segments without a label, label keys without a segment.
    Each kind of skip is one reported line; no overlap at all is a DataError."""
    known = {s.segment_id for s in segments}
    unlabelled = [s.segment_id for s in segments if s.segment_id not in labels.values]
    orphans = sorted(set(labels.values) - known)
    if len(unlabelled) == len(segments):
        raise DataError(f"{labels.path}: no key matches a PercePiano segment id (e.g. {orphans[0]!r}; ids look "
                        f"like {segments[0].segment_id!r})")
    if unlabelled:
        warn(f"[labels] skip {len(unlabelled)} segments without a label in {labels.path} "
             f"(first: {', '.join(unlabelled[:_FIRST])})")
    if orphans:
        warn(f"[labels] {len(orphans)} keys of {labels.path} match no PercePiano segment and are unused "
             f"(first: {', '.join(orphans[:_FIRST])})")
    nan = (float("nan"),) * len(labels.dimensions)
    relabelled = [replace(s, labels=labels.values[s.segment_id],
                          label_std=labels.std[s.segment_id] if labels.std is not None else nan)
                  for s in segments if s.segment_id in labels.values]
    return relabelled, {"no_label_in_set": len(unlabelled), "label_without_segment": len(orphans)}
