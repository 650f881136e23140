"""Read pilot logs into plain arrays: the first stage of logs -> runs -> areas -> law.

A reader returns a :class:`LogData`: the LR series (possibly sparse), and the general and
domain validation-loss series, each as ``(steps, values)`` arrays, already validated
(finite, positive losses; strictly increasing steps). Which column is which comes from a
:class:`ColumnMap`; a missing or misnamed column raises an ``InputError`` listing the
columns the file has.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cptopt._validation import check_finite_positive, check_increasing
from cptopt.exceptions import InputError


class ColumnMap(BaseModel):
    """Which column of a log holds the step, the LR and each validation loss.

    Set ``lr`` to ``None`` when the log has no LR column (then the run needs a schedule);
    set ``general`` or ``domain`` to ``None`` when that loss was not logged.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str = Field(default="step", description="Column with the optimizer step.")
    lr: str | None = Field(default="lr", description="Column with the LR of each step.")
    general: str | None = Field(default="loss_general", description="General validation loss.")
    domain: str | None = Field(default="loss_domain", description="Domain validation loss.")


@dataclass(frozen=True)
class Series:
    """A logged series: ``steps`` (int, strictly increasing) and ``values`` (float), shape ``(n,)``."""

    steps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(self.steps.size)


@dataclass(frozen=True)
class LogData:
    """What a reader found in one log file."""

    source: str
    sha256: str
    lr: Series | None
    general: Series | None
    domain: Series | None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (recorded in law files so a fit can be traced to its inputs)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_csv_columns(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        raise InputError(f"log file not found: {path}")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(f"{path}: file is empty") from None
        header = [name.strip() for name in header]
        rows = [row for row in reader if row and any(cell.strip() for cell in row)]
    if not rows:
        raise InputError(f"{path}: no data rows below the header")
    width = len(header)
    for number, row in enumerate(rows, start=2):
        if len(row) != width:
            raise InputError(f"{path}: line {number} has {len(row)} fields, the header has {width}")
    return {name: [row[i].strip() for row in rows] for i, name in enumerate(header)}


def _require(columns: dict[str, list[str]], name: str, role: str, path: Path) -> list[str]:
    if name not in columns:
        present = ", ".join(columns)
        raise InputError(f"{path}: no column '{name}' for the {role}; columns present: {present}")
    return columns[name]


def _to_float(cells: list[str], name: str, path: Path) -> np.ndarray:
    values = np.full(len(cells), np.nan)
    for index, cell in enumerate(cells):
        if cell == "":
            continue
        try:
            values[index] = float(cell)
        except ValueError:
            raise InputError(
                f"{path}: column '{name}' row {index + 1} == {cell!r}, not a number"
            ) from None
        if math.isnan(values[index]):
            raise InputError(f"{path}: column '{name}' row {index + 1} is NaN")
    return values


def _series(
    steps: np.ndarray, values: np.ndarray, name: str, path: Path, *, positive: bool
) -> Series:
    logged = ~np.isnan(values)
    if not logged.any():
        raise InputError(f"{path}: column '{name}' has no values")
    series_steps = steps[logged]
    series_values = values[logged]
    where = f"{path}, column '{name}'"
    if positive:
        check_finite_positive(series_values, name, where)
    elif not np.isfinite(series_values).all() or (series_values < 0).any():
        raise InputError(f"{path}: column '{name}' must be finite and >= 0")
    check_increasing(series_steps, "step", where)
    return Series(series_steps.astype(int), series_values.astype(float))


def read_csv_log(path: str | Path, columns: ColumnMap | None = None) -> LogData:
    """Read a CSV log with one row per step (or per logged step) and named columns.

    Empty cells mean "not logged at this step" (the bundled data logs the LR every step and
    the losses only at evaluation steps).
    """
    path = Path(path)
    columns = columns or ColumnMap()
    table = _read_csv_columns(path)
    step_cells = _require(table, columns.step, "step", path)
    steps = _to_float(step_cells, columns.step, path)
    if np.isnan(steps).any():
        raise InputError(f"{path}: column '{columns.step}' has empty cells")
    if (steps != np.round(steps)).any() or (steps < 0).any():
        raise InputError(f"{path}: column '{columns.step}' must hold integers >= 0")
    check_increasing(steps, columns.step, str(path))

    def optional(name: str | None, role: str, positive: bool) -> Series | None:
        if name is None:
            return None
        cells = _require(table, name, role, path)
        return _series(steps, _to_float(cells, name, path), name, path, positive=positive)

    lr = optional(columns.lr, "learning rate", positive=False)
    general = optional(columns.general, "general loss", positive=True)
    domain = optional(columns.domain, "domain loss", positive=True)
    if general is None and domain is None:
        raise InputError(f"{path}: the column map names neither a general nor a domain loss")
    return LogData(str(path), file_sha256(path), lr, general, domain)
