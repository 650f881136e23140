"""Input checks that return the cleaned value or raise a one-line ``InputError``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cptopt.exceptions import InputError


def check_finite_positive(values: np.ndarray, name: str, where: str) -> np.ndarray:
    """Return ``values`` as float64 if all are finite and > 0, else name the first bad one."""
    array = np.asarray(values, dtype=float)
    bad = ~np.isfinite(array) | (array <= 0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{name} must be finite and > 0, got {array[index]!r} at row {index} ({where})"
        )
    return array


def check_increasing(steps: np.ndarray, name: str, where: str) -> np.ndarray:
    """Return ``steps`` if strictly increasing, else raise naming the first offending pair."""
    array = np.asarray(steps)
    if array.size > 1:
        diffs = np.diff(array)
        if (diffs <= 0).any():
            index = int(np.flatnonzero(diffs <= 0)[0])
            raise InputError(
                f"{name} must be strictly increasing, got {array[index]!r} then "
                f"{array[index + 1]!r} ({where})"
            )
    return array


def check_fraction(value: float, name: str, where: str = "") -> float:
    """Return ``value`` if it lies in [0, 1]."""
    if not (np.isfinite(value) and 0.0 <= value <= 1.0):
        suffix = f" ({where})" if where else ""
        raise InputError(f"{name} == {value!r}, must be in [0, 1]{suffix}")
    return float(value)


def parse_weights(text: str | Sequence[float]) -> tuple[float, float, bool]:
    """Parse ``"0.3,0.7"`` (general, domain) into normalised weights.

    Returns ``(w_general, w_domain, normalised)`` where ``normalised`` says whether the
    input did not already sum to 1.
    """
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise InputError(
                f"--weights == {text!r}, must be two numbers 'general,domain' such as 0.3,0.7"
            ) from None
    else:
        values = [float(v) for v in text]
    if len(values) != 2:
        raise InputError(f"--weights needs exactly two numbers (general,domain), got {len(values)}")
    if any(not np.isfinite(v) or v < 0 for v in values):
        raise InputError(f"--weights == {values}, must be finite and >= 0")
    total = sum(values)
    if total <= 0:
        raise InputError("--weights sum to 0; at least one weight must be > 0")
    normalised = abs(total - 1.0) > 1e-9
    return values[0] / total, values[1] / total, normalised


def pydantic_error_line(source: str, error: Exception) -> str:
    """One line for a pydantic ``ValidationError``: file, key path, message (+ how many more)."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return f"{source}: {error}"
    details = errors()
    if not details:
        return f"{source}: invalid"
    first = details[0]
    location = ".".join(str(part) for part in first.get("loc", ())) or "<top level>"
    message = first.get("msg", "invalid")
    if first.get("type") == "extra_forbidden":
        message = "unknown key (not allowed here)"
    value = first.get("input")
    shown = "" if first.get("type") in ("extra_forbidden", "missing") else f" (got {value!r:.60})"
    more = f" [+{len(details) - 1} more]" if len(details) > 1 else ""
    return f"{source}: {location}: {message}{shown}{more}"


def load_yaml_mapping(path: str) -> dict:
    """Read a YAML file that must hold a mapping; one-line ``InputError`` otherwise."""
    from pathlib import Path

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
