"""Sparse numeric tables to series: a CSV parsed by numpy, other rows cell by cell.

Table-shaped logs (CSV, JSON lines, W&B histories) are sparse tables: a header and one row
per logging call; an empty cell (a missing JSON key, a parquet null) means "not logged at
this step", a NaN the file spells out stays NaN. A :class:`Table` holds them column-wise:
per column, the rows holding a number and those numbers, and the rows whose cell is not a
number.

Two ways in:

- :func:`parse_csv_bytes`: a CSV file's bytes parsed with numpy in blocks of a few MB, two
  at a time where two cores are usable (no Python loop over rows or cells), when the data
  rows hold only numbers (``nan`` and ``inf`` included) and empty cells. Anything else (a
  quote, text, a ragged row, a row without a step, a bare CR) gives ``None``: the ``csv``
  module then reads the file row by row (:func:`table_from_rows`), so that every problem
  gets the same one-line error.
- :func:`table_from_rows`: rows of Python values (CSV cells, JSON values, parquet values).

One way out, :func:`table_to_raw`: the step column, Lightning's 0-based step made 1-based,
rows without a step (an error when they hold a number, skipped and counted otherwise) and
cells that are not numbers (reported if their series is used).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cptopt._processes import usable_cores
from cptopt._validation import MAX_LOG_ROWS
from cptopt.exceptions import InputError
from cptopt.pilots.logs._base import RawLog, file_sha256, is_training_name, to_float
from cptopt.pilots.logs._numbers import parse_fields

#: Bytes a CSV data row parsed by numpy may hold: digits, signs, '.', exponents, the letters
#: of nan/inf/infinity, blanks, ',' and LF.
_NUMERIC_BYTES = np.zeros(256, dtype=bool)
_NUMERIC_BYTES[np.frombuffer(b"0123456789+-.eEnNaAiIfFtTyY \t,\n", dtype=np.uint8)] = True
_COMMA, _NEWLINE, _SPACE, _TAB, _ZERO = 44, 10, 32, 9, 48
#: Bytes parsed at once (whole lines): bounds the temporary arrays.
BLOCK_BYTES = 1 << 21
#: At most this many threads parse a file's blocks (this one included): each helper keeps
#: its freed temporaries in its own malloc arena (about 45 MB more at peak on the 1M-step
#: log of ``benchmarks/scale.py`` for one helper), and two were measured (0.54 -> 0.40 s).
READ_THREADS = 2
#: Cells (rows x columns) a table read row by row (JSON lines, parquet, W&B runs) may hold.
MAX_TABLE_CELLS = 200_000_000


@dataclass(frozen=True)
class Table:
    """A sparse numeric table, column-wise (see the module docstring).

    ``lines[r]`` is the file line (or JSON line, or row) of row ``r``, for messages;
    ``cells[c]`` the rows of column ``c`` that hold a number and those numbers; ``bad[c]``
    the rows whose cell of column ``c`` is neither empty nor a number; ``rows`` the rows as
    read, quoted in messages (``None`` when parsed from bytes: no cell is then text).
    """

    header: list[str]
    lines: np.ndarray
    cells: list[tuple[np.ndarray, np.ndarray]]
    bad: dict[int, np.ndarray]
    rows: list[list] | None = None
    sha256: str = ""

    @property
    def size(self) -> int:
        return int(self.lines.size)

    def cell(self, row: int, column: int) -> object:
        """The cell as read (``''`` for a table parsed from bytes: only numbers or empty)."""
        return "" if self.rows is None else self.rows[row][column]


def check_rows(path: Path, rows: int, what: str = "rows") -> None:
    """A one-line error when a log holds more than :data:`MAX_LOG_ROWS` rows."""
    if rows > MAX_LOG_ROWS:
        raise InputError(
            f"{path}: {rows} {what}, more than cptopt reads ({MAX_LOG_ROWS}: three per update "
            "of the longest run); give the log of one run"
        )


def check_cells(path: Path, rows: int, columns: int) -> None:
    """A one-line error when a row-wise table would hold more than :data:`MAX_TABLE_CELLS`
    cells (checked before the rows are built: each cell is a Python object)."""
    if rows * columns > MAX_TABLE_CELLS:
        raise InputError(
            f"{path}: {rows} rows x {columns} columns, more cells than cptopt reads "
            f"({MAX_TABLE_CELLS}); keep the step, LR and loss columns"
        )


def _empty(cell: object) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def table_from_rows(
    header: list[str], rows: list[list], lines: np.ndarray | list[int], sha256: str = ""
) -> Table:
    """A table from rows of Python values (``None`` or blank: not logged)."""
    numbers: list[tuple[list[int], list[float]]] = [([], []) for _ in header]
    bad: list[list[int]] = [[] for _ in header]
    for index, row in enumerate(rows):
        for column, cell in enumerate(row):
            value = to_float(cell)
            if value is not None:
                numbers[column][0].append(index)
                numbers[column][1].append(value)
            elif not _empty(cell):
                bad[column].append(index)
    cells = [
        (np.asarray(found, dtype=np.int64), np.asarray(values, dtype=float))
        for found, values in numbers
    ]
    return Table(
        header=list(header),
        lines=np.asarray(lines, dtype=np.int64),
        cells=cells,
        bad={column: np.asarray(found) for column, found in enumerate(bad) if found},
        rows=rows,
        sha256=sha256,
    )


# --------------------------------------------------------------------------- CSV bytes


def _parse_block(block: np.ndarray, width: int) -> tuple[np.ndarray, ...] | None:
    """The numbers of a block of whole lines (ending in LF), with the row (the block's lines
    that are not blank) and column of each, and the line (index in the block) of each row.
    ``None``: not plain numbers, or a line of another width than the header."""
    if not _NUMERIC_BYTES[block].all():
        return None
    newline = block == _NEWLINE
    delimiter = newline | (block == _COMMA)
    ends = np.flatnonzero(delimiter)
    starts = np.empty_like(ends)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    blank = delimiter | (block == _SPACE) | (block == _TAB)
    content = np.logical_or.reduceat(~blank, starts)  # per field: holds something
    closing = np.flatnonzero(newline[ends])  # per line: index of its last field
    first = np.empty_like(closing)
    first[0], first[1:] = 0, closing[:-1] + 1
    counts = closing - first + 1
    used = np.logical_or.reduceat(content, first)  # per line: not blank
    if (counts[used] != width).any():
        return None
    filled = np.flatnonzero(content)
    numbers = parse_fields(block, starts[filled], ends[filled])
    if numbers is None:
        return None
    line = np.repeat(np.arange(closing.size, dtype=np.int32), counts)[filled]
    column = (filled - first[line]).astype(np.int32)
    row = (np.cumsum(used, dtype=np.int32) - 1)[line]  # blank lines are no rows
    return numbers, row, column, np.flatnonzero(used).astype(np.int32)


def _blocks(body: bytes, start: int) -> list[tuple[int, int]]:
    """``(start, end)`` spans of ``body`` of about :data:`BLOCK_BYTES`, cut after a LF."""
    spans = []
    while start < len(body):
        cut = body.find(b"\n", min(start + BLOCK_BYTES, len(body)) - 1)
        end = len(body) if cut < 0 else cut + 1
        spans.append((start, end))
        start = end
    return spans


def _csv_body(data: bytes) -> tuple[list[str], bytes, int] | None:
    """The header, and the bytes with LF line ends and the header's end, if plain."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    end = data.find(b"\n")
    if end < 0 or b"\x00" in data[:8192] or b'"' in data[:end]:
        return None
    try:
        header = next(csv.reader([data[:end].rstrip(b"\r").decode("utf-8")]))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:
            return None
        end = data.find(b"\n")
    if not data.endswith(b"\n"):
        data += b"\n"
    return [name.strip() for name in header], data, end


def parse_csv_bytes(data: bytes) -> Table | None:
    """A CSV file's bytes as a table, parsed by numpy; ``None`` when the file is not a
    header line and plain numeric rows (see the module docstring).

    A file of several blocks is parsed on up to :data:`READ_THREADS` threads (no more than
    :func:`~cptopt._processes.usable_cores`; numpy releases the GIL on a block's arrays), each
    block parsed alone: the table is the same as one thread's."""
    digest = hashlib.sha256(data).hexdigest()
    plain = _csv_body(data)
    if plain is None:
        return None
    header, data, end = plain
    spans = _blocks(data, end + 1)

    def parse(span: tuple[int, int]) -> tuple[tuple[np.ndarray, ...] | None, int]:
        block = np.frombuffer(data, dtype=np.uint8, count=span[1] - span[0], offset=span[0])
        return _parse_block(block, len(header)), int(np.count_nonzero(block == _NEWLINE))

    threads = min(len(spans), usable_cores(), READ_THREADS)
    if threads > 1:
        # this thread takes every threads-th block itself: one helper fewer, and so one
        # fewer malloc arena holding a block's freed temporaries for the rest of the run
        pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="cptopt-csv")
        try:
            helped = {i: pool.submit(parse, span) for i, span in enumerate(spans) if i % threads}
            mine = {i: parse(span) for i, span in enumerate(spans) if not i % threads}
            blocks = [mine[i] if i in mine else helped[i].result() for i in range(len(spans))]
        finally:  # on Ctrl-C or an error, the blocks not started yet are dropped
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        blocks = [parse(span) for span in spans]
    rows, line = 0, 2
    parts: list[tuple[np.ndarray, ...]] = []
    for parsed, newlines in blocks:
        if parsed is None:
            return None
        numbers, row, column, used = parsed
        parts.append((numbers, row + rows, column, used + line))
        rows += used.size
        line += newlines
    blocks.clear()
    if not rows:
        return None
    column = np.concatenate([part[2] for part in parts])
    # by column, rows in file order (16-bit keys: numpy's stable sort is then a radix sort)
    order = np.argsort(column.astype(np.uint16) if len(header) < 1 << 16 else column, kind="stable")
    bounds = np.searchsorted(column[order], np.arange(len(header) + 1))
    del column
    row = np.concatenate([part[1] for part in parts])[order]
    numbers = np.concatenate([part[0] for part in parts])[order]
    lines = np.concatenate([part[3] for part in parts])
    parts.clear()
    spans_of_columns = zip(bounds[:-1], bounds[1:], strict=True)
    cells = [(row[low:high], numbers[low:high]) for low, high in spans_of_columns]
    return Table(header, lines, cells, {}, None, digest)


# --------------------------------------------------------------------------- table -> raw log


def _shown(cell: object) -> str:
    return repr(cell.strip() if isinstance(cell, str) else cell)


def _steps(
    path: Path, table: Table, index: int, step_name: str, shift: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The step of every row (NaN: none) and which rows have one; rows without a step that
    hold a number are an error. ``shift``: Lightning's 0-based step made 1-based."""
    step_rows, step_values = table.cells[index]
    steps = np.full(table.size, np.nan)
    steps[step_rows] = step_values
    has = np.zeros(table.size, dtype=bool)
    has[step_rows] = True
    numbered = np.zeros(table.size, dtype=bool)
    for column, (rows, _) in enumerate(table.cells):
        if column != index:
            numbered[rows] = True
    orphans = np.flatnonzero(numbered & ~has)
    if orphans.size:
        row = int(orphans[0])
        raise InputError(
            f"{path}: line {table.lines[row]} has no '{step_name}' (got {table.cell(row, index)!r})"
        )
    if shift:
        trains = np.zeros(table.size, dtype=bool)
        for column, name in enumerate(table.header):
            if column != index and is_training_name(name):
                trains[table.cells[column][0]] = True
        later = np.nan_to_num(steps, nan=0.0) != 0
        started = np.logical_or.accumulate(trains | later)
        steps = np.where(started & np.isfinite(steps), steps + 1, steps)
    return steps, has


def _skipped_note(path: Path, table: Table, index: int, has: np.ndarray) -> tuple[str, ...]:
    """A note on rows skipped because their step cell is text and they hold no number."""
    texts = table.bad.get(index)
    if texts is None:
        return ()
    skipped = texts[~has[texts]]
    if not skipped.size:
        return ()
    row = int(skipped[0])
    return (
        f"{path}: {skipped.size} rows without a number skipped (line {table.lines[row]}: "
        f"'{table.header[index]}' is {_shown(table.cell(row, index))}; a repeated header?)",
    )


def table_to_raw(
    path: Path,
    table: Table,
    *,
    fmt: str,
    step_name: str,
    skip: frozenset[str] = frozenset(),
    notes: tuple[str, ...] = (),
    aliases: dict[str, str] | None = None,
    shift: bool = False,
) -> RawLog:
    """The table's series over the step column (``shift``: Lightning's ``step + 1``)."""
    if step_name not in table.header:
        raise InputError(
            f"{path}: no step column '{step_name}'; columns present: {', '.join(table.header)}"
        )
    index = table.header.index(step_name)
    steps, has = _steps(path, table, index, step_name, shift)
    series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    bad: dict[str, str] = {}
    seen = {step_name}
    for column, name in enumerate(table.header):
        if column == index or name in skip:
            continue
        if name in seen:
            bad[name] = f"column '{name}' appears more than once in the header"
            continue
        seen.add(name)
        rows, values = table.cells[column]
        if not rows.size:
            continue
        series[name] = (steps[rows], values)
        texts = table.bad.get(column)
        if texts is not None:
            row = int(texts[0])
            more = f" ({texts.size} cells of this column)" if texts.size > 1 else ""
            problem = f"line {table.lines[row]} == {_shown(table.cell(row, column))}"
            bad[name] = f"{problem}, not a number{more}"
    return RawLog(
        source=str(path),
        sha256=table.sha256 or file_sha256(path),
        format=fmt,
        series=series,
        step_name=step_name,
        aliases=aliases or {},
        notes=notes + _skipped_note(path, table, index, has),
        bad={name: problem for name, problem in bad.items() if name in series},
    )
