"""Input validation shared by every stage: pydantic errors and YAML files to one-line errors.

Every record a user writes (manifest, training config, search config, limits, candidates,
law file) is a pydantic model. :func:`validate` is the one place where a pydantic
``ValidationError`` becomes the user's one line: ``file: key.path: problem (got value)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cptopt.exceptions import InputError

Model = TypeVar("Model", bound=BaseModel)


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
    (``{"space.peak_lr": "--peak-lr"}``).
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
    """``source: key.path: message (got value) [+N more]`` for the first error of ``error``."""
    details = error.errors()
    if not details:
        return f"{source}: invalid"
    first = details[0]
    loc = tuple(first.get("loc", ()))
    location = ".".join(str(part) for part in (*prefix, *loc)) or "<top level>"
    location = (aliases or {}).get(location, location)
    kind = first.get("type")
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        message = f"unknown key (allowed: {', '.join(allowed)})" if allowed else "unknown key"
    shown = ""
    value = first.get("input")
    if kind not in ("extra_forbidden", "missing") and not isinstance(value, dict):
        shown = f" (got {value!r:.60})"
    more = f" [+{len(details) - 1} more]" if len(details) > 1 else ""
    where = f"{source}: " if source else ""
    return f"{where}{location}: {message}{shown}{more}"


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


def load_yaml_mapping(path: str | Path) -> dict:
    """Read a YAML file that must hold a mapping; one-line ``InputError`` otherwise."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise InputError(f"file not found: {path}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when installed
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506
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
