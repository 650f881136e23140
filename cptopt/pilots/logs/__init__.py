"""Read pilot logs into plain arrays: the first stage of logs -> runs -> areas -> law.

Every reader returns the same :class:`LogData`: the LR series (possibly sparse) and the
general and domain validation-loss series, each as ``(steps, values)`` arrays, validated
(finite, positive losses; strictly increasing integer steps). Which series is which comes
from a :class:`ColumnMap`; a missing or ambiguous name raises an ``InputError`` listing the
series the log holds.

Formats (``format=``; ``auto`` detects it from the path and content):

========================  =====================================================================
``csv``                   plain CSV, a step column and one column per series
``jsonl``                 JSON lines, one object per logging call
``hf``                    Hugging Face ``trainer_state.json`` (file, run or checkpoint dir)
``tensorboard``           event file or run directory (needs ``cptopt[tensorboard]``)
``lightning``             PyTorch Lightning ``CSVLogger`` ``metrics.csv``
``wandb``                 W&B chart "Export CSV" (``Step``, ``<run> - <metric>``)
``wandb-history``         W&B run history as CSV or parquet (parquet needs ``cptopt[parquet]``)
========================  =====================================================================
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

import numpy as np

from cptopt.exceptions import InputError
from cptopt.pilots.logs._base import (
    ColumnMap,
    LogData,
    RawLog,
    Series,
    file_sha256,
    resolve,
    select,
    series_problems,
)
from cptopt.pilots.logs._hf import find_trainer_state, read_trainer_state
from cptopt.pilots.logs._tabular import (
    WANDB_EXTREMA,
    read_jsonl,
    read_lightning_csv,
    read_plain_csv,
    read_wandb_export,
    read_wandb_history,
)
from cptopt.pilots.logs._tensorboard import event_files, is_event_file, read_tensorboard

LogFormat = Literal[
    "auto", "csv", "jsonl", "hf", "tensorboard", "lightning", "wandb", "wandb-history"
]
FORMATS: tuple[str, ...] = (
    "auto",
    "csv",
    "jsonl",
    "hf",
    "tensorboard",
    "lightning",
    "wandb",
    "wandb-history",
)

__all__ = [
    "FORMATS",
    "ColumnMap",
    "LogData",
    "LogFormat",
    "RawLog",
    "Series",
    "detect_format",
    "file_sha256",
    "read_csv_log",
    "read_log",
    "read_raw",
    "summarize",
]


def detect_format(path: str | Path) -> str:
    """The format of a log, from its path and first bytes (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"log file not found: {path}")
    if path.is_dir():
        if find_trainer_state(path) is not None:
            return "hf"
        if event_files(path):
            return "tensorboard"
        if (path / "metrics.csv").is_file():
            return "lightning"
        raise InputError(
            f"{path}: a directory without trainer_state.json, TensorBoard event files or "
            "metrics.csv; give the log file itself"
        )
    if is_event_file(path):
        return "tensorboard"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".parquet":
        return "wandb-history"
    if suffix == ".json":
        return _detect_json(path)
    if suffix in (".csv", ".tsv", ".txt", ""):
        return _detect_csv(path)
    raise InputError(
        f"{path}: cannot tell the log format from the name; give one of "
        f"{', '.join(FORMATS[1:])} (--log-format / format:)"
    )


def _detect_json(path: Path) -> str:
    with path.open(encoding="utf-8") as handle:
        head = handle.read(4096)
    if '"log_history"' in head or path.name == "trainer_state.json":
        return "hf"
    first = head.lstrip().splitlines()[0] if head.strip() else ""
    if first.startswith("{") and first.rstrip().endswith("}"):
        return "jsonl"
    return "hf"


def _detect_csv(path: Path) -> str:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        try:
            header = [name.strip() for name in next(csv.reader(handle))]
        except (StopIteration, csv.Error):
            return "csv"
    if "Step" in header and any(" - " in name for name in header):
        return "wandb"
    if any(name.endswith(WANDB_EXTREMA) for name in header):
        return "wandb"
    if "_step" in header:
        return "wandb-history"
    if any(name.startswith("lr-") for name in header) or (
        path.name == "metrics.csv" and "step" in header and "epoch" in header
    ):
        return "lightning"
    return "csv"


def read_raw(path: str | Path, format: str = "auto", columns: ColumnMap | None = None) -> RawLog:
    """Every numeric series of a log, unvalidated (what ``cptopt inspect`` shows)."""
    path = Path(path)
    columns = columns or ColumnMap()
    if format not in FORMATS:
        raise InputError(f"log format == {format!r}, must be one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if format == "auto" else format
    if not path.exists():
        raise InputError(f"log file not found: {path}")
    if fmt == "hf":
        return read_trainer_state(path)
    if fmt == "tensorboard":
        return read_tensorboard(path)
    if fmt == "lightning" and path.is_dir():
        path = path / "metrics.csv"
    readers = {
        "csv": read_plain_csv,
        "jsonl": read_jsonl,
        "lightning": read_lightning_csv,
        "wandb": read_wandb_export,
        "wandb-history": read_wandb_history,
    }
    return readers[fmt](path, columns)


def read_log(path: str | Path, columns: ColumnMap | None = None, format: str = "auto") -> LogData:
    """Read a pilot log of any supported format and pick its LR, general and domain series.

    Fields of ``columns`` left unset are inferred (see :class:`ColumnMap`).
    """
    columns = columns or ColumnMap()
    return select(read_raw(path, format, columns), columns)


def read_csv_log(path: str | Path, columns: ColumnMap | None = None) -> LogData:
    """Read a CSV log with one row per step (or per logged step) and named columns.

    Empty cells mean "not logged at this step" (the bundled data logs the LR every step and
    the losses only at evaluation steps). Every column of ``columns`` must exist (no
    inference): the strict reader of the first cptopt release.
    """
    columns = columns or ColumnMap()
    return select(read_raw(path, "csv", columns), columns, infer=False)


def summarize(raw: RawLog, columns: ColumnMap | None = None) -> dict:
    """What ``cptopt inspect`` reports on one log: its series, the mapping and LR coverage.

    Returns plain types (JSON-ready): ``source``, ``format``, ``sha256``, ``series`` (name,
    role, first/last step, points, problems), ``mapping`` (role -> series) or ``error``, and
    ``lr_coverage`` (points, steps covered, largest gap) when an LR series is mapped.
    """
    columns = columns or ColumnMap()
    mapping: dict[str, str | None] = {}
    error = None
    try:
        mapping = resolve(raw, columns)
        select(raw, columns)
    except InputError as exc:
        error = " ".join(str(exc).split())
    roles = {name: role for role, name in mapping.items() if name is not None}
    rows = []
    for name, (steps, values) in raw.series.items():
        problems = series_problems(steps, values)
        if name in raw.bad:
            problems.insert(0, raw.bad[name])
        finite = steps[np.isfinite(steps)]
        rows.append(
            {
                "name": name,
                "role": roles.get(name),
                "first_step": int(finite.min()) if finite.size else None,
                "last_step": int(finite.max()) if finite.size else None,
                "points": int(steps.size),
                "problems": problems,
            }
        )
    coverage = None
    lr_name = mapping.get("lr")
    if lr_name is not None and not error:
        lr_steps = raw.series[lr_name][0]
        loss_last = [
            int(raw.series[mapping[role]][0].max())  # type: ignore[index]
            for role in ("general", "domain")
            if mapping.get(role)
        ]
        total = int(max(lr_steps.max(), *loss_last))
        updates = lr_steps[lr_steps >= 1]
        gaps = np.diff(np.concatenate(([0.0], updates))) if updates.size else np.array([total])
        coverage = {
            "points": int(updates.size),
            "steps": total,
            "largest_gap": int(gaps.max()) if gaps.size else total,
            "per_step": bool(updates.size == total and updates.size and updates[0] == 1),
        }
    return {
        "source": raw.source,
        "format": raw.format,
        "sha256": raw.sha256,
        "step": raw.step_name,
        "series": rows,
        "mapping": mapping,
        "lr_coverage": coverage,
        "notes": list(raw.notes),
        "error": error,
    }
