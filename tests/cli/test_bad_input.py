"""Bad logs, reader by reader: one stderr line, no traceback, exit code 2.

Cases per reader: missing series, empty file, truncated JSON (JSON formats), NaN rows,
duplicated steps, non-monotonic steps. Each bad file is made from a small good one of the
same format, so each case differs from a readable log by the one defect it tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cptopt.cli import app

Rows = list[tuple[int, float, float]]  # (step, lr, loss) - general and domain share the loss
GOOD: Rows = [(0, 0.0, 2.0), (10, 1e-3, 1.9), (20, 1e-3, 1.8), (30, 5e-4, 1.7)]
NAN: Rows = [(0, 0.0, 2.0), (10, 1e-3, float("nan")), (20, 1e-3, 1.8)]
DUPLICATE: Rows = [(0, 0.0, 2.0), (10, 1e-3, 1.9), (10, 1e-3, 1.8), (20, 1e-3, 1.7)]
BACKWARDS: Rows = [(0, 0.0, 2.0), (20, 1e-3, 1.9), (10, 1e-3, 1.8), (30, 1e-3, 1.7)]


def _num(value: float) -> str:
    return "nan" if value != value else repr(value)


def write_csv(path: Path, rows: Rows) -> Path:
    lines = ["step,lr,loss_general,loss_domain"]
    lines += [f"{s},{_num(lr)},{_num(v)},{_num(v * 1.1)}" for s, lr, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_lightning(path: Path, rows: Rows) -> Path:
    path = path.parent / "metrics.csv"
    lines = ["epoch,lr-AdamW,step,val_loss_domain,val_loss_general"]
    for s, lr, v in rows:  # as Lightning writes them: 0-based step, start eval from validate()
        if s == 0:
            lines.append(f"0,,0,{_num(v * 1.1)},{_num(v)}")
        else:
            lines += [f",{_num(lr)},{s - 1},,", f"0,,{s - 1},{_num(v * 1.1)},{_num(v)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_wandb(path: Path, rows: Rows) -> Path:
    run = "r1"
    header = ["Step"]
    for metric in ("lr", "eval/loss_general", "eval/loss_domain"):
        header += [f"{run} - {metric}", f"{run} - {metric}__MIN", f"{run} - {metric}__MAX"]
    lines = [",".join(f'"{h}"' for h in header)]
    for s, lr, v in rows:
        cells = [str(s)]
        for value in (lr, v, v * 1.1):
            cells += [_num(value)] * 3
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_jsonl(path: Path, rows: Rows) -> Path:
    lines = [
        json.dumps({"step": s, "lr": lr, "loss_general": v, "loss_domain": v * 1.1})
        for s, lr, v in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_hf(path: Path, rows: Rows) -> Path:
    history = []
    for s, lr, v in rows:
        if s > 0:
            history.append({"epoch": s / 30, "learning_rate": lr, "loss": 2.0, "step": s})
        history.append({"epoch": s / 30, "eval_general_loss": v, "step": s})
        history.append({"epoch": s / 30, "eval_domain_loss": v * 1.1, "step": s})
    history.append({"epoch": 1.0, "step": 30, "train_runtime": 1.0, "total_flos": 1.0})
    path.write_text(json.dumps({"global_step": 30, "log_history": history}, indent=2))
    return path


def write_parquet(path: Path, rows: Rows) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "_step": list(range(len(rows))),
            "train/global_step": [s for s, _, _ in rows],
            "train/learning_rate": [lr for _, lr, _ in rows],
            "eval/loss_general": [v for _, _, v in rows],
            "eval/loss_domain": [v * 1.1 for _, _, v in rows],
        }
    )
    pq.write_table(table, path)
    return path


def write_tensorboard(path: Path, rows: Rows) -> Path:
    """Event file written by TensorBoard's own writer (what torch's SummaryWriter uses)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    path.mkdir()
    writer = EventFileWriter(str(path))
    for s, lr, v in rows:
        for tag, value in (("lr", lr), ("eval/loss_general", v), ("eval/loss_domain", v * 1.1)):
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
            writer.add_event(Event(step=s, wall_time=1.7e9 + s, summary=summary))
    writer.close()
    return path


def write_wandb_run(path: Path, rows: Rows, encoding: str = "json") -> Path:
    """A ``run-<id>.wandb`` file as wandb writes it: history records in LevelDB log framing,
    each value as JSON text (wandb's default), typed (``x_history_value_encoding="typed"``:
    ``integer`` / ``number``) or both ("json,typed")."""
    pytest.importorskip("wandb")
    import struct
    import zlib

    from wandb.proto import wandb_internal_pb2

    chunks = [struct.pack("<4sHB", b":W&B", 0xBEE1, 0)]
    for s, lr, v in rows:
        record = wandb_internal_pb2.Record()
        for key, value in (
            ("train/global_step", s),
            ("train/learning_rate", lr),
            ("eval/general_loss", v),
            ("eval/domain_loss", v * 1.1),
        ):
            item = record.history.item.add()
            item.nested_key.extend(key.split("/"))
            if "json" in encoding:
                item.value_json = json.dumps(value)
            if "typed" in encoding and isinstance(value, int):
                item.integer = value
            elif "typed" in encoding:
                item.number = value
        data = record.SerializeToString()
        crc = zlib.crc32(data, zlib.crc32(bytes([1]))) & 0xFFFFFFFF  # one FULL chunk
        chunks.append(struct.pack("<IHB", crc, len(data), 1) + data)
    path.write_bytes(b"".join(chunks))
    return path


# name: (file name, writer, log format)
READERS: dict[str, tuple[str, Callable[[Path, Rows], Path], str]] = {
    "csv": ("log.csv", write_csv, "csv"),
    "jsonl": ("log.jsonl", write_jsonl, "jsonl"),
    "hf": ("trainer_state.json", write_hf, "hf"),
    "lightning": ("metrics.csv", write_lightning, "lightning"),
    "wandb": ("export.csv", write_wandb, "wandb"),
    "wandb-history": ("history.parquet", write_parquet, "wandb-history"),
    "tensorboard": ("run", write_tensorboard, "tensorboard"),
    "wandb-run": ("run-test.wandb", write_wandb_run, "wandb-run"),
}
JSON_READERS = ("jsonl", "hf")


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "3000", "CPTOPT_DEBUG": ""})
    return result


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def make(tmp_path: Path, reader: str, rows: Rows) -> tuple[Path, str]:
    name, writer, fmt = READERS[reader]
    return writer(tmp_path / name, rows), fmt


@pytest.mark.parametrize("reader", sorted(READERS))
def test_good_log_reads(tmp_path, reader):
    path, fmt = make(tmp_path, reader, GOOD)
    result = invoke("inspect", str(path), "--log-format", fmt, "--format", "json")
    assert result.exit_code == 0, result.stderr
    (summary,) = json.loads(result.stdout)["logs"]
    assert summary["error"] is None
    assert summary["mapping"]["general"] and summary["mapping"]["domain"]
    assert summary["lr_coverage"]["steps"] == 30


@pytest.mark.parametrize("reader", sorted(READERS))
def test_missing_series(tmp_path, reader):
    path, fmt = make(tmp_path, reader, GOOD)
    result = invoke("inspect", str(path), "--log-format", fmt, "--general", "val_ppl")
    assert_one_line_error(result, "no series 'val_ppl'", "series present:")


@pytest.mark.parametrize("reader", sorted(READERS))
def test_empty_file(tmp_path, reader):
    name, _, fmt = READERS[reader]
    path = tmp_path / name
    if reader == "tensorboard":
        path.mkdir()
        path = path / "events.out.tfevents.0.host"
    path.write_bytes(b"")
    result = invoke("inspect", str(path), "--log-format", fmt)
    assert_one_line_error(result, str(path))


@pytest.mark.parametrize("reader", JSON_READERS)
def test_truncated_json(tmp_path, reader):
    path, fmt = make(tmp_path, reader, GOOD)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    result = invoke("inspect", str(path), "--log-format", fmt)
    assert_one_line_error(result, "truncated file?")


@pytest.mark.parametrize("reader", sorted(READERS))
def test_nan_rows(tmp_path, reader):
    path, fmt = make(tmp_path, reader, NAN)
    result = invoke("inspect", str(path), "--log-format", fmt)
    assert_one_line_error(result, "NaN at step 10", "general loss")


@pytest.mark.parametrize("reader", sorted(READERS))
def test_duplicated_steps(tmp_path, reader):
    path, fmt = make(tmp_path, reader, DUPLICATE)
    result = invoke("inspect", str(path), "--log-format", fmt)
    assert_one_line_error(result, "step 10 logged twice")


@pytest.mark.parametrize("reader", sorted(READERS))
def test_non_monotonic_steps(tmp_path, reader):
    path, fmt = make(tmp_path, reader, BACKWARDS)
    result = invoke("inspect", str(path), "--log-format", fmt)
    assert_one_line_error(result, "steps go backwards (20 then 10)")


@pytest.mark.parametrize("reader", ["hf", "tensorboard", "wandb-history"])
def test_fit_reports_bad_log_with_exit_2(tmp_path, reader):
    """The same errors reach ``cptopt fit`` through a manifest (with its format key)."""
    path, fmt = make(tmp_path, reader, NAN)
    manifest = tmp_path / "pilots.yaml"
    pretrain = Path(__file__).resolve().parents[2] / "examples/data/cpt-code/pretrain.csv"
    manifest.write_text(
        f"version: 1\nformat: {fmt}\n"
        f"pretrain: {{log: {pretrain}, format: csv, checkpoints: {{unannealed: 3200}}}}\n"
        f"runs:\n  - {{log: {path.name}, replay_ratio: 0.25}}\n"
    )
    result = invoke("fit", str(manifest), "-o", str(tmp_path / "law.json"))
    assert_one_line_error(result, "NaN at step 10")
    assert not (tmp_path / "law.json").exists()


def test_non_numeric_cell_in_used_series(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("step,lr,loss_general,loss_domain\n0,0,2,2\n10,1e-3,n/a,1.9\n")
    assert_one_line_error(invoke("inspect", str(path)), "'n/a', not a number")


def test_hf_rows_without_step_are_skipped_and_noted(tmp_path):
    path = write_hf(tmp_path / "trainer_state.json", GOOD)
    state = json.loads(path.read_text())
    state["log_history"].insert(0, {"eval_general_loss": 9.0, "epoch": 0.0})
    path.write_text(json.dumps(state))
    result = invoke("inspect", str(path), "--format", "json")
    assert result.exit_code == 0, result.stderr
    (summary,) = json.loads(result.stdout)["logs"]
    assert summary["notes"] == [
        f"{path}: 1 log_history entries without a numeric 'step' skipped "
        "(entry 0: step None; eval_general_loss, epoch)"
    ]
    general = next(s for s in summary["series"] if s["name"] == "eval_general_loss")
    assert general["points"] == 4  # the summary row and the step-less row are not points


def test_not_a_trainer_state(tmp_path):
    path = tmp_path / "trainer_state.json"
    path.write_text('{"global_step": 3}')
    assert_one_line_error(invoke("inspect", str(path)), "no 'log_history'")


def test_directory_without_any_log(tmp_path):
    assert_one_line_error(invoke("inspect", str(tmp_path)), "give the log file itself")


BINARY = [  # (format asked for, file given)
    ("csv", "wandb"),
    ("jsonl", "wandb"),
    ("hf", "wandb"),
    ("lightning", "wandb"),
    ("wandb", "wandb"),
    ("wandb-history", "wandb"),
    ("auto", "wandb-as-csv"),
    ("auto", "latin-1"),
    ("wandb-run", "latin-1"),
    ("tensorboard", "latin-1"),
]


@pytest.mark.parametrize(("fmt", "given"), BINARY)
def test_binary_or_undecodable_file_is_one_line_and_exit_2(tmp_path, fmt, given):
    """A binary (``.wandb``) or non-UTF-8 file given as any format: one line, exit 2."""
    wandb_file = write_wandb_run(tmp_path / "run-test.wandb", GOOD)
    if given == "wandb":
        path = wandb_file
    elif given == "wandb-as-csv":
        path = tmp_path / "run.csv"
        path.write_bytes(wandb_file.read_bytes())
    else:
        path = tmp_path / "metrics.csv"
        path.write_bytes(b"step,lr\n1,\xff\xfe\n")
    result = invoke("inspect", str(path), "--log-format", fmt)
    assert_one_line_error(result, str(path))
    assert "internal error" not in result.stderr and "UnicodeDecodeError" not in result.stderr


@pytest.mark.parametrize("encoding", ["typed", "json,typed"])
def test_a_wandb_run_with_typed_values_reads_as_the_json_one(tmp_path, encoding):
    """wandb 0.31 can write each logged value typed instead of (or beside) its JSON text
    (``x_history_value_encoding``): the same history either way, and a NaN is still found."""
    from cptopt.exceptions import InputError
    from cptopt.pilots.logs import read_log

    rows = [*GOOD, (40, 2.5e-4, 1.65), (50, 1e-4, 1.6)]
    as_json = read_log(write_wandb_run(tmp_path / "run-a.wandb", rows))
    typed = read_log(write_wandb_run(tmp_path / "run-b.wandb", rows, encoding))
    for role in ("lr", "general", "domain"):
        expected, found = getattr(as_json, role), getattr(typed, role)
        assert found.steps.tolist() == expected.steps.tolist()
        # the same doubles: JSON text of a float round-trips it exactly, as the typed field
        assert found.values.tobytes() == expected.values.tobytes()
    assert len(typed.general) == len(rows)
    with pytest.raises(InputError, match="NaN at step 10"):
        read_log(write_wandb_run(tmp_path / "run-c.wandb", NAN, encoding))


def test_debugging_adds_the_traceback_and_keeps_the_exit_code(law_file) -> None:
    """CPTOPT_DEBUG=1 in a CI job must still tell bad input (2) from a broken limit (1).
    (The law comes first: its kind says what the options mean.)"""
    result = CliRunner().invoke(
        app,
        ["recommend", "--law", str(law_file), "--weights", "abc"],
        env={"COLUMNS": "3000", "CPTOPT_DEBUG": "1"},
    )
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert "Traceback (most recent call last)" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --weights == 'abc'"), last
