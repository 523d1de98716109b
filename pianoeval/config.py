"""Config plumbing shared by experiments, search spaces and ablations.

* ``StrictModel``: the pydantic base for every config block. Unknown keys are
  errors, values are validated on assignment.
* ``load_yaml``: ``yaml.safe_load`` with errors that name the file.
* ``validate``: turns a dict into a config object, converting pydantic's errors
  into one-line ``ConfigError``s of the form ``file: key.path: problem``.
* ``flatten`` / ``unflatten`` / ``parse_set``: the flat ``a.b.c`` view used by
  Ray Tune trial configs and ``--set key=value`` overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Iterable, Mapping, TypeVar

import pydantic
import yaml

from pianoeval.errors import ConfigError
from pianoeval.io import atomic_write_text, is_safe_name

T = TypeVar("T", bound=pydantic.BaseModel)

#: An integer that must be written as one: ``true`` is not seed 1, ``2.0`` is not fold 2.
StrictInt = Annotated[int, pydantic.Strict()]


def distinct(values: list, what: str) -> list:
    """``values`` unchanged, or a ValueError naming the first value listed twice (repeated
    folds or seeds would train the same run twice and break the pairing)."""
    seen = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice; list each {what} once")
        seen.add(value)
    return values


#: Folds or seeds of a trial set: distinct integers (each pairs one run per variant).
Folds = Annotated[list[Annotated[StrictInt, pydantic.Field(ge=0)]],
                  pydantic.AfterValidator(lambda values: distinct(values, "fold"))]
Seeds = Annotated[list[Annotated[StrictInt, pydantic.Field(ge=0)]],
                  pydantic.AfterValidator(lambda values: distinct(values, "seed"))]


class StrictModel(pydantic.BaseModel):
    """Base of all config blocks: unknown keys are errors, assignments are validated."""

    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True)

    def input_files(self) -> dict[str, str]:
        """Files this block reads, by config key, recorded with their content hash in
        ``resolved.yaml``; a block that reads files (a model's pre-trained weights) says so."""
        return {}


#: How many values a YAML file may expand to once its aliases are followed: a spec is a
#: few hundred; an alias bomb (a few lines whose aliases nest) is billions.
MAX_YAML_VALUES = 100_000


class _SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (YAML itself
    keeps the last one silently: a variant or parameter would vanish)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader reports it
                continue
            if first is not None:
                where = f"line {line}" if first == line else f"lines {first} and {line}"
                raise _DuplicateKey(f"key {key!r} appears twice ({where}); keep one")
        return super().construct_mapping(node, deep)


class _DuplicateKey(Exception):
    pass


def _expanded_size(node, memo: dict[int, int], visiting: set[int]) -> int:
    """The number of values ``node`` stands for with every alias expanded (memoised, so the
    count itself stays cheap); a recursive alias is an error."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in visiting:
        raise _DuplicateKey("an alias refers to its own anchor (a recursive structure); write the values out")
    visiting.add(key)
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo, visiting) + _expanded_size(v, memo, visiting) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(item, memo, visiting) for item in node.value)
    else:
        size = 1
    visiting.discard(key)
    memo[key] = size
    return size


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping safely; any problem is a one-line ConfigError naming the file.

    Beyond ``yaml.safe_load``: the file must be UTF-8 text, a key may not appear twice in
    a mapping, and aliases may not expand past ``MAX_YAML_VALUES`` values (checked on the
    parsed node graph, before anything is built or copied)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}, line {line}); save the file as UTF-8") from None
    loader = _SpecLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        size = _expanded_size(node, {}, set())
        if size > MAX_YAML_VALUES:
            raise ConfigError(f"{path}: its aliases expand to {size:,} values (at most {MAX_YAML_VALUES:,}); "
                              "write the repeated parts out, or use fewer nested aliases")
        data = loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
    except _DuplicateKey as err:
        raise ConfigError(f"{path}: {err}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read") from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data



def load_spec_yaml(path: str | Path, doc: str) -> dict[str, Any]:
    """``load_yaml`` for a spec file (a search space, an ablation): an empty file, or one of
    comments only, is a one-line error pointing at ``doc``, not a list of missing keys."""
    raw = load_yaml(path)
    if not raw:
        raise ConfigError(f"{path}: the file is empty; a spec is a YAML mapping (see {doc})")
    return raw

def _key_path(loc: Iterable[Any]) -> str:
    parts = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "<top>"


def _fields_at(model: type[pydantic.BaseModel] | None, loc: list) -> list[str] | None:
    """Field names of the (nested) config block that contains ``loc``'s last key."""
    for part in loc[:-1]:
        field = model.model_fields.get(part) if model is not None else None
        annotation = getattr(field, "annotation", None)
        model = annotation if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel) else None
    return list(model.model_fields) if model is not None else None


def format_validation_error(err: pydantic.ValidationError, source: str, prefix: str = "",
                            model: type[pydantic.BaseModel] | None = None) -> str:
    """One line for the first problem pydantic found, naming file and key path. An unknown key
    comes before a missing one: it is most often the missing key misspelt (``variant:``), or a
    key this kind of file does not take (``extends:`` in an ablation)."""
    problems = err.errors()
    unknown = [p for p in problems if p["type"] == "extra_forbidden"]
    first = unknown[0] if unknown and any(p["type"] == "missing" for p in problems) else problems[0]
    loc = [p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    # pydantic puts the union/tag branch name into loc for tagged unions; drop class names
    loc = [p for p in loc if not (isinstance(p, str) and p[:1].isupper())]
    key = _key_path(([prefix] if prefix else []) + loc)
    kind = first["type"]
    value = first.get("input")
    if kind == "extra_forbidden":
        msg = "unknown key"
        allowed = _fields_at(model, loc)
        if allowed:
            msg += f" (allowed: {', '.join(allowed)})"
    elif kind == "literal_error":
        msg = f"got {value!r}, expected one of {first['ctx']['expected']}"
    elif kind == "missing":
        msg = "required key is missing"
    else:
        msg = first["msg"].removeprefix("Value error, ")  # our validators' own words, not pydantic's label
        if value is not None and not isinstance(value, (dict, list)) and repr(value) not in msg:
            msg += f", got {value!r}"
    more = len(err.errors()) - 1
    tail = f" (+{more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {key}: {msg}{tail}"


def validate(model: type[T], data: Mapping[str, Any], source: str, prefix: str = "") -> T:
    """Build ``model`` from ``data``; errors become a one-line ConfigError."""
    try:
        return model.model_validate(dict(data))
    except pydantic.ValidationError as err:
        raise ConfigError(format_validation_error(err, source, prefix, model)) from None


def allowed_keys(model: type[pydantic.BaseModel]) -> list[str]:
    return list(model.model_fields)


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``. Lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, full + "."))
        else:
            flat[full] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``; nested dict values are merged."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"<overrides>: {key}: '{part}' is a value, not a section")
        if isinstance(value, Mapping):
            node.setdefault(parts[-1], {})
            deep_merge(node[parts[-1]], value)
        else:
            node[parts[-1]] = value
    return nested


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into ``base`` in place (mappings recursively) and return it."""
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``--set key.path=value`` items; values are YAML scalars or lists."""
    overrides: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key=value, e.g. --set train.lr=1e-4")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set {item}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"--set {item}: value {raw!r} is not valid YAML") from None
        overrides[key] = value
    return overrides


def route_overrides(overrides: Mapping[str, Any], spec_keys: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one ``--set`` router of sweeps, ablations and staged runs: a key whose first part is
    one of the spec file's own keys (``budget.max_epochs``, ``folds``, ``stages.round1...``)
    changes the spec; any other key (``train.lr``, ``model.hidden_size``; a ``base.`` prefix
    is dropped) changes the run config every trial trains. Returns (spec part, config part)."""
    keys = set(spec_keys)
    spec: dict[str, Any] = {}
    config: dict[str, Any] = {}
    for key, value in overrides.items():
        if key.split(".", 1)[0] in keys:
            spec[key] = value
        else:
            config[key.removeprefix("base.")] = value
    return spec, config


def set_path(node: dict, dotted: str, value: Any) -> None:
    """``node[a][b][c] = value`` for ``dotted`` = ``"a.b.c"``, creating the mappings on the way."""
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def dump_yaml(data: Mapping[str, Any], path: str | Path) -> None:
    """Write YAML atomically (write a temp file, then rename)."""
    atomic_write_text(Path(path), yaml.safe_dump(plain(data), sort_keys=False))


def plain(value: Any) -> Any:
    """Convert numpy scalars, tuples and Paths into YAML-safe plain types."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def spec_names(folder: Path) -> list[str]:
    """The names of the YAML specs in ``folder`` (search spaces, ablations)."""
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


def find_spec(name_or_path: str | Path, folder: Path, what: str, prefix: str = "") -> Path:
    """A spec file: a path to a YAML file, or a name in ``folder``; an unknown name is a
    ConfigError listing the available ones (``what``: "search space", "ablation")."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    if not is_safe_name(str(name_or_path)):  # ../x or a/b would be looked up outside the folder, or below it
        article = "an" if what[0] in "aeiou" else "a"
        raise ConfigError(f"{prefix}{name_or_path}: not {article} {what} name (a name of {Path(folder).name}/: "
                          f"{', '.join(spec_names(folder))}); give a path to a file with its .yaml suffix")
    candidate = Path(folder) / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise ConfigError(f"{prefix}{name_or_path}: no such {what} (available: {', '.join(spec_names(folder))}; "
                          f"files live in {Path(folder).name}/)")
    return candidate
