"""Table-shaped logs: plain CSV, JSON lines, Lightning ``metrics.csv``, W&B exports.

All are sparse tables: one row per logging call, an empty cell (or a missing JSON key, or a
parquet null) means "not logged at this step". A NaN the file spells out stays NaN and is an
error if that series is used.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from cptopt.exceptions import InputError
from cptopt.pilots.logs._base import (
    ColumnMap,
    RawLog,
    is_training_name,
    numeric_table_to_raw,
    pick_step_column,
    read_text,
    require_file,
    to_float,
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


def read_csv_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a CSV file; one-line errors for empty or ragged files."""
    text = read_text(path, "CSV")
    with io.StringIO(text, newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(f"{path}: file is empty") from None
        except csv.Error as exc:
            raise InputError(f"{path}: not a readable CSV file ({exc})") from None
        header = [name.strip() for name in header]
        try:
            rows = [row for row in reader if row and any(cell.strip() for cell in row)]
        except csv.Error as exc:
            raise InputError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise InputError(f"{path}: no data rows below the header")
    width = len(header)
    for number, row in enumerate(rows, start=2):
        if len(row) != width:
            raise InputError(f"{path}: line {number} has {len(row)} fields, the header has {width}")
    return header, rows


def read_plain_csv(path: Path, columns: ColumnMap) -> RawLog:
    """A CSV with a step column and one column per series (the bundled data's layout)."""
    header, rows = read_csv_table(path)
    step = pick_step_column(path, header, columns, CSV_STEPS)
    return numeric_table_to_raw(path, header, list(rows), fmt="csv", step_name=step)


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
    header, rows = read_csv_table(path)
    step = pick_step_column(path, header, columns, LIGHTNING_STEPS)
    offset = 0
    if step == "step":
        rows = shift_lightning_rows(header, rows, step)
        offset = 1
    raw = numeric_table_to_raw(path, header, list(rows), fmt="lightning", step_name=step)
    return replace(raw, step_offset=offset)


def shift_lightning_rows(header: list[str], rows: list[list], step: str) -> list[list]:
    """Rows with Lightning's 0-based ``step`` made 1-based (see :func:`read_lightning_csv`).

    Every row is shifted except rows at step 0 before the first row that logs a training
    value (LR, training loss) or a step above 0: those come from ``trainer.validate()``
    before ``trainer.fit()``.
    """
    index = header.index(step)
    training = [i for i, name in enumerate(header) if i != index and is_training_name(name)]
    cells = [to_float(row[index]) for row in rows]
    steps = np.array([np.nan if cell is None else cell for cell in cells], dtype=float)
    trains = np.array([any(to_float(row[i]) is not None for i in training) for row in rows])
    later = np.nan_to_num(steps, nan=0.0) != 0
    started = np.logical_or.accumulate(trains | later) if rows else np.zeros(0, dtype=bool)
    shifted = np.where(started & np.isfinite(steps), steps + 1, steps)
    return [
        [*row[:index], float(value), *row[index + 1 :]] if moved else row
        for row, value, moved in zip(rows, shifted, started & np.isfinite(steps), strict=True)
    ]


def read_wandb_export(path: Path, columns: ColumnMap) -> RawLog:
    """A W&B chart's "Export CSV": ``Step``, ``<run> - <metric>`` and its ``__MIN``/``__MAX``.

    The ``__MIN``/``__MAX`` columns (extrema of the chart's sampling buckets) are dropped.
    ``<metric>`` alone is accepted as a name when only one run logs it.
    """
    header, rows = read_csv_table(path)
    step = pick_step_column(path, header, columns, WANDB_EXPORT_STEPS)
    skip = frozenset(name for name in header if name.endswith(WANDB_EXTREMA))
    by_metric: dict[str, list[str]] = {}
    for name in header:
        if name != step and name not in skip and " - " in name:
            by_metric.setdefault(name.split(" - ", 1)[1], []).append(name)
    aliases = {metric: names[0] for metric, names in by_metric.items() if len(names) == 1}
    notes = (f"W&B export: {len(skip)} __MIN/__MAX columns ignored",) if skip else ()
    return numeric_table_to_raw(
        path,
        header,
        list(rows),
        fmt="wandb",
        step_name=step,
        skip=skip,
        notes=notes,
        aliases=aliases,
    )


def read_wandb_history(path: Path, columns: ColumnMap) -> RawLog:
    """A W&B run history (``run.history()`` / ``run.scan_history()``) saved as CSV or parquet.

    Sparse: each row is one ``wandb.log`` call. The step is the trainer's
    (``trainer/global_step``, ``train/global_step``, ...) when logged, else ``_step``.
    """
    if path.suffix.lower() == ".parquet":
        header, rows = _read_parquet(path)
        first_line = 0
    else:
        header, rows = read_csv_table(path)
        first_line = 2
    step = pick_step_column(path, header, columns, WANDB_HISTORY_STEPS)
    return wandb_history_to_raw(path, header, rows, step, first_line=first_line)


def wandb_history_to_raw(
    path: Path, header: list[str], rows: list[list], step: str, *, first_line: int = 2
) -> RawLog:
    """A W&B history table as a raw log, each point at its update.

    The step convention is the writer's: ``train/global_step`` (HF ``WandbCallback``)
    counts updates done, as HF's own logs do; ``trainer/global_step`` (Lightning's
    ``WandbLogger``) is Lightning's 0-based step, read as ``step + 1`` as in
    :func:`read_lightning_csv`; ``_step`` counts ``wandb.log`` calls, not updates.
    """
    notes = () if step != "_step" else ("W&B history: step taken from '_step'",)
    offset = 0
    if step == LIGHTNING_WANDB_STEP:
        rows = shift_lightning_rows(header, rows, step)
        offset = 1
    raw = numeric_table_to_raw(
        path, header, rows, fmt="wandb-history", step_name=step, first_line=first_line, notes=notes
    )
    return replace(raw, step_offset=offset)


def _read_parquet(path: Path) -> tuple[list[str], list[list[object]]]:
    require_file(path)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{path}: reading parquet needs pyarrow: pip install 'cptopt[parquet]'"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise InputError(f"{path}: not a readable parquet file ({_first_line(exc)})") from None
    if table.num_rows == 0:
        raise InputError(f"{path}: no rows")
    header = list(table.column_names)
    data = [table.column(name).to_pylist() for name in header]
    return header, [list(row) for row in zip(*data, strict=True)]


def read_jsonl(path: Path, columns: ColumnMap) -> RawLog:
    """JSON lines: one object per line, e.g. ``{"step": 10, "lr": 2e-3, "loss_general": 1.8}``."""
    records: list[dict] = []
    with io.StringIO(read_text(path, "JSON lines")) as handle:
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
    if not records:
        raise InputError(f"{path}: file is empty")
    header = list(dict.fromkeys(key for record in records for key in record))
    step = pick_step_column(path, header, columns, CSV_STEPS)
    rows = [[record.get(key) for key in header] for record in records]
    return numeric_table_to_raw(path, header, rows, fmt="jsonl", step_name=step, first_line=1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
