"""Table-shaped logs: plain CSV, JSON lines, Lightning ``metrics.csv``, W&B exports.

All are sparse tables: one row per logging call, an empty cell (or a missing JSON key, or a
parquet null) means "not logged at this step". A NaN the file spells out stays NaN and is an
error if that series is used.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from cptopt._io import decode_text, read_bytes
from cptopt.exceptions import InputError, param
from cptopt.pilots.logs._base import (
    ColumnMap,
    RawLog,
    pick_step_column,
    read_text,
    reject_binary,
    require_file,
)
from cptopt.pilots.logs._table import (
    Table,
    check_cells,
    check_rows,
    parse_csv_bytes,
    table_from_rows,
    table_to_raw,
)

#: Step columns tried, in order, when the map does not name one.
CSV_STEPS = ("step", "Step", "global_step", "_step")
LIGHTNING_STEPS = ("step",)
WANDB_EXPORT_STEPS = ("Step",)
#: W&B run history: the trainer's own step first (``_step`` counts ``wandb.log`` calls).
WANDB_HISTORY_STEPS = ("trainer/global_step", "train/global_step", "global_step", "step", "_step")

#: The step Lightning's ``WandbLogger`` logs (0-based, like its CSV ``step``).
LIGHTNING_WANDB_STEP = "trainer/global_step"

#: Columns a W&B chart export adds beside each ``<run> - <metric>`` column.
WANDB_EXTREMA = ("__MIN", "__MAX")


def read_csv_table(path: Path) -> Table:
    """A CSV file as a table: parsed by numpy when its rows are plain numbers, else row by
    row with the csv module (one-line errors for empty, ragged or unreadable files)."""
    data = read_bytes(path, "CSV file")
    check_rows(path, data.count(b"\n") - 1)  # lines below the header
    table = parse_csv_bytes(data)
    return table if table is not None else _csv_rows(path, data)


def _csv_rows(path: Path, data: bytes) -> Table:
    """The csv module's reading of a CSV file (quotes, text cells, every error message)."""
    reject_binary(path, data, "CSV")
    hint = f": not a text CSV; give its format ({param('format:')}) or the right file"
    text = decode_text(path, data, hint)
    with io.StringIO(text, newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(f"{path}: file is empty") from None
        except csv.Error as exc:
            raise InputError(f"{path}: not a readable CSV file ({exc})") from None
        header = [name.strip() for name in header]
        rows, lines = [], []
        try:
            for row in reader:
                if row and any(cell.strip() for cell in row):
                    rows.append(row)
                    lines.append(reader.line_num)
        except csv.Error as exc:
            raise InputError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise InputError(f"{path}: no data rows below the header")
    width = len(header)
    for number, row in zip(lines, rows, strict=True):
        if len(row) != width:
            raise InputError(f"{path}: line {number} has {len(row)} fields, the header has {width}")
    return table_from_rows(header, rows, lines, hashlib.sha256(data).hexdigest())


def read_plain_csv(path: Path, columns: ColumnMap) -> RawLog:
    """A CSV with a step column and one column per series (the bundled data's layout)."""
    table = read_csv_table(path)
    step = pick_step_column(path, table.header, columns, CSV_STEPS)
    return table_to_raw(path, table, fmt="csv", step_name=step)


def read_lightning_csv(path: Path, columns: ColumnMap) -> RawLog:
    """PyTorch Lightning ``CSVLogger`` ``metrics.csv``, at the update each row belongs to.

    One row per ``log_metrics`` call, columns sorted by name, LR from
    ``LearningRateMonitor`` as ``lr-<Optimizer>`` (every ``log_every_n_steps``, default 50).
    Lightning's ``step`` column counts updates *before* the row's update (0-based): the row
    at step ``s`` holds the LR of update ``s + 1``, the training loss of that update and the
    validation losses measured after ``s + 1`` updates. cptopt reads it as step ``s + 1``
    (``RawLog.step_offset`` = 1), so every point sits at its update. Exception: rows at
    step 0 written before the first LR or training row come from ``trainer.validate()``
    before ``trainer.fit()`` (nothing has been trained yet) and stay at step 0. A step column
    other than Lightning's own ``step`` (named with ``columns.step``) is read as is.
    """
    table = read_csv_table(path)
    step = pick_step_column(path, table.header, columns, LIGHTNING_STEPS)
    shift = step == "step"
    raw = table_to_raw(path, table, fmt="lightning", step_name=step, shift=shift)
    return replace(raw, step_offset=int(shift))


def read_wandb_export(path: Path, columns: ColumnMap) -> RawLog:
    """A W&B chart's "Export CSV": ``Step``, ``<run> - <metric>`` and its ``__MIN``/``__MAX``.

    The ``__MIN``/``__MAX`` columns (extrema of the chart's sampling buckets) are dropped.
    ``<metric>`` alone is accepted as a name when only one run logs it.
    """
    table = read_csv_table(path)
    step = pick_step_column(path, table.header, columns, WANDB_EXPORT_STEPS)
    skip = frozenset(name for name in table.header if name.endswith(WANDB_EXTREMA))
    by_metric: dict[str, list[str]] = {}
    for name in table.header:
        if name != step and name not in skip and " - " in name:
            by_metric.setdefault(name.split(" - ", 1)[1], []).append(name)
    aliases = {metric: names[0] for metric, names in by_metric.items() if len(names) == 1}
    notes = (f"W&B export: {len(skip)} __MIN/__MAX columns ignored",) if skip else ()
    return table_to_raw(
        path, table, fmt="wandb", step_name=step, skip=skip, notes=notes, aliases=aliases
    )


def read_wandb_history(path: Path, columns: ColumnMap) -> RawLog:
    """A W&B run history (``run.history()`` / ``run.scan_history()``) saved as CSV or parquet.

    Sparse: each row is one ``wandb.log`` call. The step is the trainer's
    (``trainer/global_step``, ``train/global_step``, ...) when logged, else ``_step``.
    """
    table = _read_parquet(path) if path.suffix.lower() == ".parquet" else read_csv_table(path)
    step = pick_step_column(path, table.header, columns, WANDB_HISTORY_STEPS)
    return wandb_history_to_raw(path, table, step)


def wandb_history_to_raw(path: Path, table: Table, step: str) -> RawLog:
    """A W&B history table as a raw log, each point at its update.

    The step convention is the writer's: ``train/global_step`` (HF ``WandbCallback``)
    counts updates done, as HF's own logs do; ``trainer/global_step`` (Lightning's
    ``WandbLogger``) is Lightning's 0-based step, read as ``step + 1`` as in
    :func:`read_lightning_csv`; ``_step`` counts ``wandb.log`` calls, not updates.
    """
    notes = () if step != "_step" else ("W&B history: step taken from '_step'",)
    shift = step == LIGHTNING_WANDB_STEP
    raw = table_to_raw(path, table, fmt="wandb-history", step_name=step, notes=notes, shift=shift)
    return replace(raw, step_offset=int(shift))


def _read_parquet(path: Path) -> Table:
    require_file(path)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{path}: reading parquet needs pyarrow: pip install 'cptopt[parquet]'"
        ) from None
    try:
        parquet = pq.ParquetFile(path)
        size = parquet.metadata.num_rows
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise InputError(f"{path}: not a readable parquet file ({_first_line(exc)})") from None
    if size == 0:
        raise InputError(f"{path}: no rows")
    check_rows(path, size)  # before the rows are read
    try:
        arrow = parquet.read()
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}: not a readable parquet file ({_first_line(exc)})") from None
    header = list(arrow.column_names)
    check_cells(path, size, len(header))
    data = [arrow.column(name).to_pylist() for name in header]
    rows = [list(row) for row in zip(*data, strict=True)]
    return table_from_rows(header, rows, np.arange(1, len(rows) + 1))


def read_jsonl(path: Path, columns: ColumnMap) -> RawLog:
    """JSON lines: one object per line, e.g. ``{"step": 10, "lr": 2e-3, "loss_general": 1.8}``."""
    text = read_text(path, "JSON lines")
    check_rows(path, text.count("\n"))  # lines
    records: list[dict] = []
    lines: list[int] = []
    with io.StringIO(text) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{path}: line {number} is not valid JSON ({exc.msg}; truncated file?)"
                ) from None
            if not isinstance(record, dict):
                raise InputError(f"{path}: line {number} is not a JSON object")
            records.append(record)
            lines.append(number)
    if not records:
        raise InputError(f"{path}: file is empty")
    header = list(dict.fromkeys(key for record in records for key in record))
    check_cells(path, len(records), len(header))
    step = pick_step_column(path, header, columns, CSV_STEPS)
    rows = [[record.get(key) for key in header] for record in records]
    table = table_from_rows(header, rows, lines)
    return table_to_raw(path, table, fmt="jsonl", step_name=step)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
