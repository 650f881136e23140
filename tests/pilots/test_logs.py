"""Mapping, inference and format detection of cptopt.pilots.logs (all formats share them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cptopt.exceptions import InputError
from cptopt.pilots.logs import (
    ColumnMap,
    LogData,
    Series,
    detect_format,
    file_sha256,
    read_csv_log,
    read_log,
    read_raw,
    summarize,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "logs"
DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "cpt-code"
NATIVE = DATA / "runs" / "code_U_lr1x_r25_wsd_1000.csv"

DETECTED = {
    "hf": "hf",
    "hf/trainer_state.json": "hf",
    "hf-every10": "hf",
    "tensorboard": "tensorboard",
    "lightning/metrics.csv": "lightning",
    "lightning-every50": "lightning",
    "wandb/export.csv": "wandb",
    "wandb/history.parquet": "wandb-history",
    "jsonl/metrics.jsonl": "jsonl",
}


def test_public_names_importable():
    assert {ColumnMap, LogData, Series}  # the historical public names still import
    data = read_csv_log(NATIVE)
    assert isinstance(data, LogData) and isinstance(data.general, Series)


@pytest.mark.parametrize(("relative", "expected"), sorted(DETECTED.items()))
def test_detect_format(relative, expected):
    assert detect_format(FIXTURES / relative) == expected


def test_detect_plain_csv():
    assert detect_format(NATIVE) == "csv"


def test_event_file_itself_is_tensorboard():
    (event,) = (FIXTURES / "tensorboard").iterdir()
    assert detect_format(event) == "tensorboard"


@pytest.mark.parametrize(
    ("relative", "names"),
    [
        ("hf", ("eval_general_loss", "eval_domain_loss", "learning_rate")),
        ("tensorboard", ("eval/loss_general", "eval/loss_domain", "train/learning_rate")),
        ("lightning/metrics.csv", ("val_loss_general", "val_loss_domain", "lr-AdamW")),
        (
            "wandb/export.csv",
            (
                "cpt-wsd-r25 - eval/loss_general",
                "cpt-wsd-r25 - eval/loss_domain",
                "cpt-wsd-r25 - train/learning_rate",
            ),
        ),
        ("wandb/history.parquet", ("eval/loss_general", "eval/loss_domain", "train/learning_rate")),
        ("jsonl/metrics.jsonl", ("val/loss_general", "val/loss_domain", "lr")),
    ],
)
def test_inferred_mapping_and_same_curve_as_native(relative, names):
    log = read_log(FIXTURES / relative)
    assert (log.names["general"], log.names["domain"], log.names["lr"]) == names
    native = read_csv_log(NATIVE)
    for role in ("general", "domain"):
        mine, theirs = getattr(log, role), getattr(native, role)
        np.testing.assert_array_equal(mine.steps, theirs.steps)
        np.testing.assert_array_equal(mine.values, theirs.values)
    keep = np.isin(native.lr.steps, log.lr.steps)
    np.testing.assert_array_equal(log.lr.values, native.lr.values[keep])


def test_hf_short_alias_and_explicit_none():
    columns = ColumnMap(general="general", domain=None, lr="learning_rate")
    log = read_log(FIXTURES / "hf", columns)
    assert log.names == {"general": "eval_general_loss", "domain": None, "lr": "learning_rate"}
    assert log.domain is None and len(log.general) == 25


def test_wandb_metric_alias():
    log = read_log(FIXTURES / "wandb" / "export.csv", ColumnMap(general="eval/loss_general"))
    assert log.names["general"] == "cpt-wsd-r25 - eval/loss_general"


def test_explicit_missing_name_lists_series():
    with pytest.raises(
        InputError, match="no series 'eval_loss'.*series present: .*eval_domain_loss"
    ):
        read_log(FIXTURES / "hf", ColumnMap(general="eval_loss"))


def test_ambiguous_losses_list_candidates(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("step,lr,val_general_loss,test_general_loss,loss_domain\n1,1e-3,2,2.1,3\n")
    with pytest.raises(InputError, match="ambiguous general loss: val_general_loss, test_general"):
        read_log(path)


def test_no_recognisable_loss_lists_series(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("step,lr,eval_loss\n1,1e-3,2.0\n")
    with pytest.raises(InputError, match="cannot tell .*series present: lr, eval_loss"):
        read_log(path)


def test_legacy_reader_stays_strict(tmp_path):
    path = tmp_path / "renamed.csv"
    path.write_text("step,lr,val_general_loss,loss_domain\n1,1e-3,2,3\n")
    assert read_log(path).names["general"] == "val_general_loss"  # inferred by read_log
    with pytest.raises(InputError, match="no series 'loss_general'"):
        read_csv_log(path)  # ... but not by the strict historical reader


def test_sparse_long_rows_are_merged(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("step,lr,loss_general,loss_domain\n0,0,2,3\n1,1e-3,,\n2,1e-3,,\n2,,1.9,2.8\n")
    log = read_log(path)
    assert log.lr.steps.tolist() == [0, 1, 2] and log.general.steps.tolist() == [0, 2]


def test_summarize_reports_coverage_and_problems():
    summary = summarize(read_raw(FIXTURES / "lightning-every50"))
    assert summary["error"] is None
    assert summary["lr_coverage"] == {
        "points": 21,
        "steps": 1000,
        "largest_gap": 50,
        "per_step": False,
    }
    epoch = next(row for row in summary["series"] if row["name"] == "epoch")
    assert epoch["problems"] == ["step 50 logged twice"]  # unmapped: reported, not fatal


def test_directory_hash_changes_with_content(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "a").write_bytes(b"1")
    first = file_sha256(run)
    (run / "a").write_bytes(b"2")
    assert file_sha256(run) != first


def test_tensorboard_float32_read_as_shortest_decimal():
    log = read_log(FIXTURES / "tensorboard")
    assert 0.002 in log.lr.values.tolist()  # not 0.0020000000949949026


def test_unknown_format_name():
    with pytest.raises(InputError, match="log format == 'excel'"):
        read_raw(NATIVE, "excel")


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "tensorboard.backend.event_processing.event_accumulator", None)
    with pytest.raises(InputError, match=r"pip install 'cptopt\[tensorboard\]'"):
        read_log(FIXTURES / "tensorboard")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(InputError, match=r"pip install 'cptopt\[parquet\]'"):
        read_log(FIXTURES / "wandb" / "history.parquet")


def test_plain_csv_needs_no_optional_dependency(monkeypatch):
    import sys

    for name in ("tensorboard", "pyarrow", "pyarrow.parquet", "pandas", "torch"):
        monkeypatch.setitem(sys.modules, name, None)
    assert read_log(NATIVE).format == "csv"


def test_wandb_history_csv_prefers_trainer_step(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "_step,_runtime,train/global_step,train/learning_rate,eval/loss_general,eval/loss_domain\n"
        "0,0.1,1,1e-3,,\n"
        "1,0.2,1,,2.0,3.0\n"
        "2,0.3,2,1e-3,,\n"
        "3,0.4,2,,1.9,2.9\n"
    )
    assert detect_format(path) == "wandb-history"
    raw = read_raw(path)
    assert raw.step_name == "train/global_step"
    log = read_log(path)
    assert log.general.steps.tolist() == [1, 2] and log.lr.steps.tolist() == [1, 2]
    only_step = tmp_path / "only_step.csv"
    only_step.write_text("_step,eval/loss_general,eval/loss_domain\n0,2.0,3.0\n5,1.9,2.9\n")
    assert read_raw(only_step).notes == ("W&B history: step taken from '_step'",)


def test_hf_checkpoint_directory_uses_latest(tmp_path):
    import json
    import shutil

    for step in (500, 1000):
        target = tmp_path / f"checkpoint-{step}"
        target.mkdir()
        shutil.copy(FIXTURES / "hf-every10" / "trainer_state.json", target / "trainer_state.json")
    state = json.loads((tmp_path / "checkpoint-500" / "trainer_state.json").read_text())
    state["log_history"] = [r for r in state["log_history"] if r.get("step", 0) <= 500]
    (tmp_path / "checkpoint-500" / "trainer_state.json").write_text(json.dumps(state))
    log = read_log(tmp_path)
    assert log.source.endswith("checkpoint-1000/trainer_state.json")
    assert log.general.steps[-1] == 1000


def test_tensorboard_keeps_every_point(tmp_path):
    """More points than the loader's default reservoir (10,000 scalars per tag) all survive."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(tmp_path))
    n = 12_500
    for step in range(1, n + 1):
        values = [Summary.Value(tag="lr", simple_value=1e-3)]
        if step % 500 == 0:
            values.append(Summary.Value(tag="loss_general", simple_value=2.0 - step / 1e5))
        writer.add_event(Event(step=step, wall_time=1.7e9, summary=Summary(value=values)))
    writer.close()
    log = read_log(tmp_path)
    assert len(log.lr) == n and log.lr.steps.tolist() == list(range(1, n + 1))
    assert len(log.general) == n // 500
