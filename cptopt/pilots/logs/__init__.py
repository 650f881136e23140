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
``wandb-run``             W&B run folder or its ``run-<id>.wandb`` file (needs ``cptopt[wandb]``)
========================  =====================================================================

Steps: every reader returns points at the update they belong to: a loss at step ``s`` was
measured after ``s`` updates, an LR at step ``s`` is the LR of update ``s``. HF
(``trainer_state.json``, its TensorBoard and W&B callbacks) already counts so; Lightning's
``step`` (CSV, ``TensorBoardLogger``, ``WandbLogger``'s ``trainer/global_step``) counts from
0 and is read as ``step + 1`` (``RawLog.step_offset``).

The per-step LR (:func:`lr_per_step`) comes from the LR points: used as logged when every
update has one, else matched against known schedule families, else interpolated with a
bound on the S1 error (see :mod:`cptopt.pilots.logs._lr`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from cptopt._io import check_input_file
from cptopt.exceptions import InputError, param
from cptopt.pilots.logs._base import (
    ColumnMap,
    LogData,
    RawLog,
    Series,
    file_sha256,
    logging_interval,
    reject_binary,
    resolve,
    select,
    series_problems,
    suggest_loader_mapping,
)
from cptopt.pilots.logs._hf import find_trainer_state, read_trainer_state
from cptopt.pilots.logs._lr import LrEstimate, lr_per_step, torch_convention
from cptopt.pilots.logs._names import default_run_name, default_run_names
from cptopt.pilots.logs._tabular import (
    WANDB_EXTREMA,
    read_jsonl,
    read_lightning_csv,
    read_plain_csv,
    read_wandb_export,
    read_wandb_history,
)
from cptopt.pilots.logs._tensorboard import event_files, is_event_file, read_tensorboard
from cptopt.pilots.logs._wandb import WANDB_SUFFIX, read_wandb_run, wandb_files

LogFormat = Literal[
    "auto",
    "csv",
    "jsonl",
    "hf",
    "tensorboard",
    "lightning",
    "wandb",
    "wandb-history",
    "wandb-run",
]
FORMATS: tuple[str, ...] = get_args(LogFormat)

__all__ = [
    "FORMATS",
    "ColumnMap",
    "LogData",
    "LogFormat",
    "LrEstimate",
    "RawLog",
    "Series",
    "default_run_name",
    "default_run_names",
    "detect_format",
    "file_sha256",
    "lr_per_step",
    "log_lr",
    "logging_interval",
    "read_csv_log",
    "read_log",
    "read_raw",
    "start_loss_remark",
    "summarize",
    "torch_convention",
]


def detect_format(path: str | Path) -> str:
    """The format of a log, from its path and first bytes (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        if find_trainer_state(path) is not None:
            return "hf"
        if event_files(path):
            return "tensorboard"
        if (path / "metrics.csv").is_file():
            return "lightning"
        if wandb_files(path):
            return "wandb-run"
        below = _logs_below(path)
        if below:
            more = f" and {len(below) - 3} more" if len(below) > 3 else ""
            raise InputError(
                f"{path}: no log in this folder; below it: {', '.join(map(str, below[:3]))}"
                f"{more}: give one of them as the log"
            )
        raise InputError(
            f"{path}: a directory without trainer_state.json, TensorBoard event files, "
            "metrics.csv or a W&B run file; give the log file itself"
        )
    check_input_file(path, "log file")  # not found, a FIFO or a device: one line
    if is_event_file(path):
        return "tensorboard"
    suffix = path.suffix.lower()
    if suffix == WANDB_SUFFIX:
        return "wandb-run"
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
        f"{', '.join(FORMATS[1:])} ({param('format:')})"
    )


#: Where logs sit below a folder a user may give instead (Lightning's
#: ``lightning_logs/version_N/metrics.csv``, an output dir of several HF runs).
_LOGS_BELOW = ("*/metrics.csv", "*/trainer_state.json", "*/*/metrics.csv", "*/*/trainer_state.json")


def _logs_below(path: Path) -> list[Path]:
    """Log files one or two folders below ``path``, nearest first."""
    found: list[Path] = []
    for pattern in _LOGS_BELOW:
        found += sorted(file for file in path.glob(pattern) if file.is_file())
    return found


def _head(path: Path) -> str:
    """The first 64 KiB of a text log, for detection; a binary file is a one-line error."""
    with path.open("rb") as handle:
        data = handle.read(1 << 16)
    reject_binary(path, data)
    return data.decode("utf-8-sig", errors="replace")


def _detect_json(path: Path) -> str:
    head = _head(path)
    if '"log_history"' in head or path.name == "trainer_state.json":
        return "hf"
    first = head.lstrip().splitlines()[0] if head.strip() else ""
    if first.startswith("{") and first.rstrip().endswith("}"):
        return "jsonl"
    return "hf"


def _detect_csv(path: Path) -> str:
    try:
        header = [name.strip() for name in next(csv.reader(io.StringIO(_head(path))))]
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
    if not path.is_dir():
        check_input_file(path, "log file")  # no FIFO or device is ever opened
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "hf":
        return read_trainer_state(path)
    if fmt == "tensorboard":
        return read_tensorboard(path)
    if fmt == "wandb-run":
        return read_wandb_run(path, columns)
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


def summarize(
    raw: RawLog,
    columns: ColumnMap | None = None,
    render: Callable[[InputError], str] = str,
) -> dict:
    """What ``cptopt inspect`` reports on one log: its series, the mapping and the LR.

    Returns plain types (JSON-ready): ``source``, ``format``, ``sha256``, ``step`` and
    ``step_offset`` (added to the file's step), ``runs`` (when the log holds several),
    ``series`` (name, role, first/last step, points, problems), ``mapping`` (role -> series)
    or ``error``, ``lr_coverage`` (points, steps covered, largest gap), the per-update LR
    cptopt would use (``lr_per_step``, update 1 first; ``lr_source``: logged, matched or
    interpolated; ``lr_s1_bound``: the largest relative S1 error the points allow, 0 when
    pinned down; ``lr_description``), ``suggested_columns`` and ``notes``. ``render``
    writes a mapping error's message (the command line names the fields it marks as its
    options).
    """
    columns = columns or ColumnMap()
    mapping: dict[str, str | None] = {}
    log, error, kind = None, None, None
    loss = _pretrain_loss(raw, columns)
    if loss is not None:  # one loss: the run's loss, as a 'kind: pretrain' manifest reads it
        values = {name: getattr(columns, name) for name in columns.model_fields_set}
        columns = ColumnMap(**{**values, "general": loss, "domain": None})
    try:
        mapping = resolve(raw, columns)
        log = select(raw, columns)
        kind = "cpt" if loss is None else "pretrain"
    except InputError as exc:
        error = " ".join(render(exc).split())
    suggestion = suggest_loader_mapping(raw)
    return {
        "source": raw.source,
        "format": raw.format,
        "sha256": raw.sha256,
        "kind": kind,
        "step": raw.step_name,
        "step_offset": raw.step_offset,
        "runs": list(raw.runs),
        "series": _series_rows(raw, mapping),
        "mapping": mapping,
        **_lr_summary(log),
        "suggested_columns": suggestion or None,
        "notes": _notes(raw, log, loss),
        "error": error,
    }


#: The pre-training manifest's default loss column (``pilots.manifest``).
_PRETRAIN_LOSS = "loss"


def _pretrain_loss(raw: RawLog, columns: ColumnMap) -> str | None:
    """The one loss of a pre-training log, when the log has no general or domain loss
    and neither was named: ``loss`` (a ``kind: pretrain`` manifest's default column; HF's
    ``loss`` is the training loss), else the one validation-like loss. None otherwise."""
    if {"general", "domain"} & columns.model_fields_set:
        return None
    try:
        resolve(raw, columns)
        return None  # a general or a domain loss: a CPT log
    except InputError:
        pass
    losses = [
        name
        for name in raw.series
        if "loss" in name.lower() and "train" not in name.lower() and not _loader_loss(name)
    ]
    if raw.format == "hf":
        losses = [name for name in losses if name != "loss"]
    if _PRETRAIN_LOSS in losses:
        return _PRETRAIN_LOSS
    return losses[0] if len(losses) == 1 else None


def _loader_loss(name: str) -> bool:
    """A loss of one of several validation dataloaders (Lightning's ``/dataloader_idx_N``)."""
    return "/dataloader_idx_" in name


def _notes(raw: RawLog, log: LogData | None, pretrain_loss: str | None) -> list[str]:
    """The reader's notes, why the log is cut short, and the step-0 remark (CPT logs), or
    what a pre-training log's one loss is."""
    notes = [*raw.notes, *([raw.cut] if raw.cut else []), *(log.notes if log else ())]
    if log is not None and pretrain_loss is not None:
        mapped = (
            "its default column"
            if pretrain_loss == _PRETRAIN_LOSS
            else f"map it with columns: {{general: {pretrain_loss}}}"
        )
        remark: str | None = (
            f"one loss, '{pretrain_loss}': a pre-training log (in a 'kind: pretrain' manifest "
            f"it is the run's loss: {mapped}); CPT pilots need a general and a domain loss"
        )
    else:
        remark = None if log is None else start_loss_remark(log.general, log.domain)
    return list(dict.fromkeys(notes)) + ([remark] if remark else [])


def _series_rows(raw: RawLog, mapping: dict[str, str | None]) -> list[dict]:
    """One row per series of the log: the role it was given, its steps and its problems."""
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
    return rows


def _lr_summary(log: LogData | None) -> dict:
    """The LR entries of :func:`summarize` (``None`` without a mapped LR series)."""
    keys = ("lr_coverage", "lr_per_step", "lr_source", "lr_s1_bound", "lr_description")
    if log is None or log.lr is None:
        return dict.fromkeys(keys)
    updates = log.lr.steps[log.lr.steps >= 1]
    total = log.last_step
    gaps = np.diff(np.concatenate(([0], updates))) if updates.size else np.array([total])
    coverage = {
        "points": int(updates.size),
        "steps": total,
        "largest_gap": int(gaps.max()),
        "per_step": bool(updates.size == total and updates[0] == 1),
    }
    if not updates.size:
        return {**dict.fromkeys(keys), "lr_coverage": coverage}
    estimate = log_lr(log)
    bound = estimate.s1_bound
    return {
        "lr_coverage": coverage,
        "lr_per_step": estimate.per_step.astype(float).tolist(),
        "lr_source": estimate.source,
        "lr_s1_bound": float(bound) if np.isfinite(bound) else None,
        "lr_description": estimate.description,
    }


def log_lr(log: LogData, schedule_steps: int | None = None) -> LrEstimate:
    """The per-update LR of a log's LR series up to its last logged step (see ``lr_per_step``).

    ``schedule_steps`` (the schedule's length, where the decay ends) defaults to the
    ``max_steps`` the log records, else its last step.
    """
    if log.lr is None:
        raise InputError(f"{log.source}: no LR series")
    steps = schedule_steps or log.max_steps
    return lr_per_step(log.lr, log.last_step, schedule_steps=steps)


#: How to log the losses before the first update, per format (for the step-0 remark).
START_EVAL_HOWTO = (
    "log an evaluation before the first update (HF Trainer: eval_on_start=True; Lightning: "
    "trainer.validate(model, val_dataloaders) before trainer.fit, as the sanity check is "
    "not logged)"
)


def start_loss_remark(general: Series | None, domain: Series | None) -> str | None:
    """A remark when a loss has no point at step 0, saying how to log one (else ``None``).

    With an unknown PT history the start loss is then extrapolated.
    """
    missing = [
        role
        for role, series in (("general", general), ("domain", domain))
        if series is not None and not (series.steps == 0).any()
    ]
    if not missing:
        return None
    return (
        f"no {' and '.join(missing)} loss at step 0: with 'pretrain: unknown' the start loss "
        f"is extrapolated; {START_EVAL_HOWTO}"
    )
