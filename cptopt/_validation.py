"""Input validation shared by every stage: pydantic errors and YAML files to one-line errors.

Every record a user writes (manifest, training config, search config, limits, candidates,
law file) is a pydantic model. :func:`validate` is the one place where a pydantic
``ValidationError`` becomes the user's one line: ``file: key.path: problem (got value)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from cptopt._io import read_text
from cptopt.exceptions import InputError

Model = TypeVar("Model", bound=BaseModel)

#: The longest run cptopt plans or reads, in updates: ten times the pre-training of today's
#: large models, and per-step arrays of at most 80 MB.
MAX_STEPS = 10_000_000
#: The most rows (logging calls, log_history entries, event records) a log may hold: three
#: per update of the longest run (a training, an evaluation and an LR row), checked before
#: the rows are parsed.
MAX_LOG_ROWS = 3 * MAX_STEPS
#: The largest batch, in tokens per update.
MAX_TOKENS_PER_STEP = 1_000_000_000
#: The largest learning rate a schedule may reach: far above any used to train a language
#: model (Adam's are below 0.1), far below where the law's areas overflow.
MAX_LR = 10.0
#: Seeds are 32-bit (Optuna's samplers pass them to numpy's legacy generator).
MAX_SEED = 2**32 - 1
#: Complete trials a study may be asked for.
MAX_TRIALS = 1_000_000
#: Optimiser starts polished per fit (each costs a full optimisation).
MAX_STARTS = 100
#: Nodes a YAML file's aliases (``*name``) may add to it when expanded: far more than any
#: manifest or config repeats, far less than an alias bomb (a few hundred bytes that
#: expand to billions of nodes).
MAX_YAML_ALIAS_NODES = 100_000
#: How deeply YAML collections may nest (cptopt's files nest a few levels; thousands of
#: levels overflow the parser's stack).
MAX_YAML_DEPTH = 100


def validate(
    model: type[Model],
    data: Any,
    source: str,
    prefix: Sequence[str] = (),
    aliases: Mapping[str, str] | None = None,
) -> Model:
    """``model.model_validate(data)``, or an :class:`InputError` of one line.

    ``source`` names where the data came from (a file; empty for command-line options);
    ``prefix`` is the key path of ``data`` inside that source (e.g.
    ``("tool", "cptopt", "check")``); ``aliases`` rename dotted key paths in the message
    (``{"space.peak_lr": "--peak-lr"}``; an item of a list takes its list's name).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(error_line(source, exc, model, prefix, aliases)) from None


def error_line(
    source: str,
    error: ValidationError,
    model: type[BaseModel] | None = None,
    prefix: Sequence[str] = (),
    aliases: Mapping[str, str] | None = None,
) -> str:
    """``source: key.path: message (got value)``, for every problem of ``error``.

    Problems with the same message share one entry (``a, b: unknown key (allowed: ...)``,
    ``runs.0.replay_ratio, runs.1.replay_ratio: ... (got 25, 50)``); entries are joined
    by ``; ``. A fraction given as a percentage says so (``a fraction, e.g. 0.25 for 25 %``).
    """
    groups: dict[str, tuple[list[str], list[str], list[str]]] = {}  # locations, values, hints
    for detail in error.errors():
        location, message, shown, hint = _problem(detail, model, prefix, aliases)
        locations, values, hints = groups.setdefault(message, ([], [], []))
        locations.append(location)
        values += [shown] if shown is not None else []
        hints += [hint] if hint else []
    if not groups:
        return f"{source}: invalid"
    entries = []
    for message, (locations, values, hints) in groups.items():
        if len(locations) > 1 and message.startswith("unknown key"):
            message = message.replace("unknown key", "unknown keys", 1)
        got = f" (got {', '.join(values)})" if values else ""
        entries.append(
            f"{', '.join(locations)}: {message}{got}" + (f": {hints[0]}" if hints else "")
        )
    where = f"{source}: " if source else ""
    return where + "; ".join(entries)


def _problem(
    detail: Any,
    model: type[BaseModel] | None,
    prefix: Sequence[str],
    aliases: Mapping[str, str] | None,
) -> tuple[str, str, str | None, str | None]:
    """One pydantic error as (location, message, value shown or None, hint or None)."""
    loc = tuple(detail.get("loc", ()))
    parts = [str(part) for part in (*prefix, *loc)]
    location = ".".join(parts) or "<top level>"
    for end in range(len(parts), 0, -1):  # an item of a list is named by the list's alias
        if ".".join(parts[:end]) in (aliases or {}):
            location = (aliases or {})[".".join(parts[:end])]
            break
    error_type = detail.get("type")
    message = str(detail.get("msg", "invalid")).removeprefix("Value error, ")
    if error_type == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        message = f"unknown key (allowed: {', '.join(allowed)})" if allowed else "unknown key"
    value = detail.get("input")
    if error_type in ("extra_forbidden", "missing") or isinstance(value, dict):
        return location, message, None, None
    return location, message, f"{value!r:.60}", _fraction_hint(loc, detail, value)


#: Keys that hold a share (0..1), whose values users write as percentages by mistake.
_FRACTION_SUFFIXES = ("_ratio", "_fraction", "_rate")


def _fraction_hint(loc: tuple, detail: Any, value: Any) -> str | None:
    """``a fraction, e.g. 0.25 for 25 %`` for a share given as a percentage (1 < value <= 100)."""
    key = str(loc[-1]) if loc else ""
    bound = (detail.get("ctx") or {}).get("le", (detail.get("ctx") or {}).get("lt"))
    if not key.endswith(_FRACTION_SUFFIXES) or bound not in (1, 1.0):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return f"a fraction, e.g. {number / 100:g} for {number:g} %" if 1 < number <= 100 else None


def first_non_finite(data: Any, path: str = "") -> str | None:
    """Where the first NaN or infinity of JSON data (dicts, lists, numbers) sits, as
    ``general.values[3] is NaN`` (``path``: the key path of ``data``), or None.

    Lists of numbers are checked at once (a law file's per-step LRs run to millions).
    """
    if isinstance(data, float):
        if math.isfinite(data):
            return None
        return f"{path} is {'NaN' if math.isnan(data) else ('-' if data < 0 else '') + 'Infinity'}"
    if isinstance(data, dict):
        for key, value in data.items():
            found = first_non_finite(value, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(data, list):
        try:
            numbers = np.asarray(data, dtype=float) if data else np.zeros(0)
        except (TypeError, ValueError, OverflowError):
            numbers = None  # nested or mixed: item by item
        if numbers is not None and numbers.ndim == 1:
            bad = np.flatnonzero(~np.isfinite(numbers))
            return first_non_finite(float(data[bad[0]]), f"{path}[{bad[0]}]") if bad.size else None
        for index, value in enumerate(data):
            found = first_non_finite(value, f"{path}[{index}]")
            if found:
                return found
    return None


def _allowed_keys(model: type[BaseModel] | None, path: tuple) -> list[str]:
    """Field names of the model found at ``path`` inside ``model`` (empty if unknown)."""
    for part in path:
        if model is None or isinstance(part, int):
            continue  # list indices keep the item model
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        model = _model_in(annotation)
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model in an annotation such as ``Model``, ``list[Model]``, ``Model | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _unique_key_loader() -> type:
    """A safe YAML loader (libyaml's when installed) that refuses duplicate keys."""
    import yaml
    from yaml.constructor import ConstructorError

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class UniqueKeyLoader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node: Any, deep: bool = False) -> dict:
            seen: set = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise ConstructorError(
                        None, None, f"duplicate key '{key}'", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def _check_yaml_size(text: str, path: str | Path) -> None:
    """Refuse a YAML text whose aliases would expand it by more than
    :data:`MAX_YAML_ALIAS_NODES` nodes, that nests deeper than :data:`MAX_YAML_DEPTH`, or
    whose alias refers to a collection that holds it (a recursive structure).

    Reads the parser's events (libyaml's when installed, no recursion, nothing built), so
    a bomb is refused before anything expands it: the expanded size of each anchored node
    is counted once, and an alias adds that size.
    """
    import yaml

    loader = _unique_key_loader()(text)
    sizes: dict[str, int] = {}  # anchor -> nodes it expands to
    open_nodes: list[list] = []  # [anchor, nodes so far] of each collection being read
    added = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            size = 0
            if isinstance(event, yaml.AliasEvent):
                if event.anchor not in sizes:
                    if any(frame[0] == event.anchor for frame in open_nodes):
                        line = event.start_mark.line + 1
                        raise InputError(
                            f"{path}: line {line} alias *{event.anchor} refers to a "
                            "collection that holds it (a recursive structure)"
                        )
                    continue  # an undefined alias: the loader says so
                size = sizes[event.anchor]
                added += size
                if added > MAX_YAML_ALIAS_NODES:
                    line = event.start_mark.line + 1
                    raise InputError(
                        f"{path}: line {line} aliases expand the file by more than "
                        f"{MAX_YAML_ALIAS_NODES} nodes (an alias bomb?); write the values out"
                    )
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                open_nodes.append([event.anchor, 1])
                if len(open_nodes) > MAX_YAML_DEPTH:
                    line = event.start_mark.line + 1
                    raise InputError(
                        f"{path}: line {line} collections nested more than {MAX_YAML_DEPTH} deep"
                    )
                continue
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                anchor, size = open_nodes.pop()
                if anchor is not None:
                    sizes[anchor] = size
            elif isinstance(event, yaml.ScalarEvent):
                size = 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            if open_nodes:
                open_nodes[-1][1] += size
    finally:
        loader.dispose()


def load_yaml_mapping(path: str | Path) -> dict:
    """Read a YAML file that must hold a mapping; one-line ``InputError`` otherwise.

    The file must be UTF-8 text (``_io.read_text``); a key given twice in a mapping is an
    error (YAML would silently keep the last one); aliases that would expand the file by
    more than :data:`MAX_YAML_ALIAS_NODES` nodes, or nesting deeper than
    :data:`MAX_YAML_DEPTH`, are refused before anything is built.
    """
    import yaml

    text = read_text(path)
    try:
        _check_yaml_size(text, path)
        data = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InputError(f"{path}:{where} {problem}") from None
    if data is None:
        raise InputError(f"{path}: file is empty")
    if not isinstance(data, dict):
        raise InputError(f"{path}: must hold a mapping of keys, got {type(data).__name__}")
    return data
