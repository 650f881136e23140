"""Sparse numeric tables: the numpy CSV reader agrees with the csv module, row for row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cptopt.exceptions import InputError
from cptopt.pilots.logs import _table as table_module
from cptopt.pilots.logs import read_log, read_raw
from cptopt.pilots.logs._table import parse_csv_bytes, table_to_raw
from cptopt.pilots.logs._tabular import _csv_rows, read_csv_table


def _both(path: Path, step: str = "step", shift: bool = False):
    """The raw log read by numpy and by the csv module (``None`` if numpy declined)."""
    data = path.read_bytes()
    fast = parse_csv_bytes(data)
    slow = _csv_rows(path, data)
    read = [
        None if table is None else table_to_raw(path, table, fmt="csv", step_name=step, shift=shift)
        for table in (fast, slow)
    ]
    return read[0], read[1]


def _same(fast, slow) -> None:
    assert fast.sha256 == slow.sha256
    assert list(fast.series) == list(slow.series)
    for name, (steps, values) in slow.series.items():
        np.testing.assert_array_equal(fast.series[name][0], steps)
        np.testing.assert_array_equal(fast.series[name][1], values)  # NaN == NaN here
    assert fast.bad == slow.bad and fast.notes == slow.notes


def _cell(rng: np.random.Generator) -> str:
    kind = rng.integers(0, 12)
    if kind < 3:
        return ""
    if kind == 3:
        return " "
    if kind == 4:
        return str(rng.choice(["nan", "NaN", "inf", "-inf", "Infinity", "+1.5", ".5", "1e-3"]))
    value = float(rng.normal() * 10.0 ** rng.integers(-8, 6))
    return f" {value!r}" if kind == 5 else repr(value) if kind < 9 else f"{value:.6g}"


@pytest.mark.parametrize("seed", range(12))
def test_numpy_reader_matches_the_csv_module(tmp_path, seed):
    rng = np.random.default_rng(seed)
    width = int(rng.integers(2, 6))
    lines = [",".join(["step", *(f"c{i}" for i in range(width - 1))])]
    for step in range(int(rng.integers(1, 400))):
        if rng.random() < 0.05:
            lines.append(rng.choice(["", "  ", "," * (width - 1)]))
        lines.append(",".join([str(step), *(_cell(rng) for _ in range(width - 1))]))
    newline = "\r\n" if seed % 3 == 0 else "\n"
    text = newline.join(lines) + ("" if seed % 4 == 1 else newline)
    prefix = b"\xef\xbb\xbf" if seed % 5 == 2 else b""
    path = tmp_path / "log.csv"
    path.write_bytes(prefix + text.encode())
    fast, slow = _both(path, shift=seed % 2 == 1)
    assert fast is not None, text[:200]
    _same(fast, slow)


def test_float_text_is_read_as_python_reads_it(tmp_path):
    values = np.random.default_rng(7).normal(size=2000) * 10.0 ** np.arange(-20, 20, 0.02)
    text = "step,x\n" + "".join(f"{i},{v!r}\n" for i, v in enumerate(values.tolist()))
    path = tmp_path / "log.csv"
    path.write_text(text)
    fast, slow = _both(path)
    _same(fast, slow)
    np.testing.assert_array_equal(fast.series["x"][1], values)


@pytest.mark.parametrize(
    "body",
    [
        '0,"1.5"\n',  # a quote
        "0,abc\n",  # text
        "0,1,2\n",  # a ragged row
        "0,1_000\n",  # Python reads it, numpy does not
        "0,nan(1)\n",  # numpy reads it, Python does not
        "0,1\r1,2\n",  # a bare CR ends a line for the csv module
        "0,1 2\n",
    ],
)
def test_anything_but_plain_numbers_goes_to_the_csv_module(tmp_path, body):
    path = tmp_path / "log.csv"
    path.write_text("step,x\n" + body)
    assert parse_csv_bytes(path.read_bytes()) is None


def test_a_2m_row_file_is_parsed_in_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(table_module, "BLOCK_BYTES", 64)  # many blocks, lines cut across
    rows = [f"{step},{step / 7!r},{'' if step % 3 else step}" for step in range(500)]
    path = tmp_path / "log.csv"
    path.write_text("step,a,b\n" + "\n".join(rows) + "\n\n")
    fast, slow = _both(path)
    _same(fast, slow)
    assert fast.series["b"][0].size == 167


@pytest.mark.parametrize("threads", [1, 3])
def test_blocks_parsed_on_threads_give_the_one_thread_table(monkeypatch, threads):
    # exactness is the contract: each block is parsed alone, whichever thread takes it
    monkeypatch.setattr(table_module, "BLOCK_BYTES", 64)
    rows = [f"{step},{step / 7!r},{'' if step % 3 else -step / 3}" for step in range(400)]
    data = ("step,a,b\n" + "\n\n".join(rows) + "\n").encode()
    monkeypatch.setattr(table_module, "usable_cores", lambda: 1)
    alone = parse_csv_bytes(data)
    monkeypatch.setattr(table_module, "usable_cores", lambda: threads)
    monkeypatch.setattr(table_module, "READ_THREADS", threads)
    table = parse_csv_bytes(data)
    assert table.lines.tolist() == alone.lines.tolist() == list(range(2, 801, 2))
    for (rows_a, values_a), (rows_b, values_b) in zip(table.cells, alone.cells, strict=True):
        assert rows_a.tolist() == rows_b.tolist()
        assert values_a.tolist() == values_b.tolist()
    # a text cell in the last block still sends the whole file to the csv module
    assert parse_csv_bytes(data[:-1] + b"x\n") is None


def test_error_lines_count_file_lines(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("step,x\n0,1\n\n10,2,3\n")
    with pytest.raises(InputError, match=r"log\.csv: line 4 has 3 fields, the header has 2"):
        read_raw(path)
    path.write_text("step,x\n0,1\n\n,2\n")
    with pytest.raises(InputError, match=r"log\.csv: line 4 has no 'step' \(got ''\)"):
        read_raw(path)


def test_cells_that_are_not_numbers_are_counted(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("step,lr,loss_general,loss_domain\n0,0,2,2\n10,1e-3,n/a,1.9\n20,1e-3,?,1.8\n")
    problem = r"line 3 == 'n/a', not a number \(2 cells of this column\)"
    with pytest.raises(InputError, match=problem):
        read_log(path)


def test_a_repeated_header_is_skipped_with_a_note(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("step,lr,loss_general\n0,0,2\n10,1e-3,1.9\nstep,lr,loss_general\n20,1e-3,1.8\n")
    raw = read_raw(path)
    assert raw.series["lr"][0].tolist() == [0, 10, 20]
    assert raw.notes == (
        f"{path}: 1 rows without a number skipped (line 4: 'step' is 'step'; a repeated header?)",
    )


def test_a_column_named_twice_is_an_error_when_used(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("step,lr,loss_general,loss_general\n0,0,2,2\n10,1e-3,1.9,1.8\n")
    with pytest.raises(InputError, match="column 'loss_general' appears more than once"):
        read_log(path)


def test_json_values_that_are_not_numbers_are_reported(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(
        '{"step": 0, "lr": 0, "loss_general": 2}\n\n'
        '{"step": 10, "lr": 0.001, "loss_general": true}\n'
    )
    with pytest.raises(InputError, match=r"line 3 == True, not a number"):
        read_log(path)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("log.csv", "step,x\n" + "0,1\n" * 6),
        ("log.jsonl", '{"step": 0, "x": 1}\n' * 6),
    ],
)
def test_row_bound_is_checked_before_parsing(tmp_path, monkeypatch, name, text):
    monkeypatch.setattr(table_module, "MAX_LOG_ROWS", 5)
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=r"6 rows, more than cptopt reads \(5: three per update"):
        read_raw(path)


def test_csv_table_keeps_the_file_hash(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"\xef\xbb\xbfstep,x\r\n0,1\r\n")
    from cptopt.pilots.logs import file_sha256

    assert read_csv_table(path).sha256 == file_sha256(path)


def test_a_table_of_too_many_cells_is_refused_before_its_rows_are_built(tmp_path, monkeypatch):
    monkeypatch.setattr(table_module, "MAX_TABLE_CELLS", 10)
    path = tmp_path / "log.jsonl"
    path.write_text("".join(f'{{"step": {i}, "k{i}": 1}}\n' for i in range(4)))
    with pytest.raises(
        InputError, match=r"4 rows x 5 columns, more cells than cptopt reads \(10\)"
    ):
        read_raw(path)


def test_a_wide_csv_is_grouped_by_column_at_once(tmp_path):
    header = ["step", *(f"c{i}" for i in range(3000))]
    row = ["1", *("" if i % 2 else str(i) for i in range(3000))]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    fast, slow = _both(path)
    _same(fast, slow)
    assert len(fast.series) == 1500
