"""Logs written by the real libraries (issue #14): steps, per-step LR, run folders, W&B.

The fixtures in ``tests/fixtures/real-logs/`` were written by transformers 5.24 (Trainer +
TensorBoard and W&B callbacks), Lightning 2.6.6 (CSVLogger + LearningRateMonitor) and wandb
0.31 (offline); each CPT run folder has ``true_lr.json``, the LR every update really used
(see its README). The W&B offline run is the Lightning run L1 again (same script, seed and
schedule), so its true LR is L1's; the W&B history export of the HF run has hf-A2's schedule.
"""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import numpy as np
import pytest

from cptopt.exceptions import InputError
from cptopt.pilots.logs import ColumnMap, default_run_name, log_lr, read_log, read_raw
from cptopt.pilots.manifest import load_manifest

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real-logs"
WANDB_RUN = next((REAL / "wandb-pl" / "wandb").glob("offline-run-*"))
WANDB_FILE = next(WANDB_RUN.glob("*.wandb"))
L5_COLUMNS = ColumnMap(general="val_loss/dataloader_idx_0", domain="val_loss/dataloader_idx_1")

#: The trainer keys each run was trained with (its README), as a manifest's ``schedule:``.
HF_KEYS = {
    "hf-B": "{learning_rate: 3.0e-3, lr_scheduler_type: constant_with_warmup, warmup_steps: 10}",
    "hf-C": "{learning_rate: 2.0e-3, lr_scheduler_type: cosine, warmup_steps: 10}",
    "hf-A2": "{learning_rate: 1.0e-3, lr_scheduler_type: cosine, warmup_steps: 10}",
    "pl/L1/version_0": "{learning_rate: 1.0e-3, lr_scheduler_type: cosine, warmup_steps: 10}",
    "pl/L2/version_0": (
        "{learning_rate: 3.0e-3, lr_scheduler_type: constant_with_warmup, warmup_steps: 10}"
    ),
}
HF_KEYS["pl/L5/version_0"] = HF_KEYS["pl/L2/version_0"]

#: (log as the tool wrote it, folder with true_lr.json, columns, first eval step)
CPT_RUNS = [
    ("hf-B", "hf-B", None, 20),
    ("hf-C", "hf-C", None, 0),
    ("hf-A2", "hf-A2", None, 20),
    ("hf-B/checkpoint-200", "hf-B", None, 20),
    ("hf-B/runs", "hf-B", None, 20),
    ("hf-C/runs", "hf-C", None, 0),
    ("hf-A2/runs/Dec02_00-42-16_vm", "hf-A2", None, 20),
    ("pl/L1/version_0", "pl/L1/version_0", None, 20),
    ("pl/L2/version_0/metrics.csv", "pl/L2/version_0", None, 20),
    ("pl/L5/version_0", "pl/L5/version_0", L5_COLUMNS, 20),
    ("wandb-pl", "pl/L1/version_0", None, 20),
    (str(WANDB_RUN.relative_to(REAL)), "pl/L1/version_0", None, 20),
    (str(WANDB_FILE.relative_to(REAL)), "pl/L1/version_0", None, 20),
    ("wandb-export/pl-history.csv", "pl/L1/version_0", None, 20),
    ("wandb-export/history.csv", "hf-A2", None, 0),
    ("wandb-export/history.parquet", "hf-A2", None, 0),
]

pytest.importorskip("tensorboard")


def true_lr(folder: str) -> np.ndarray:
    return np.asarray(json.loads((REAL / folder / "true_lr.json").read_text()), dtype=float)


def s1_error(per_step: np.ndarray, truth: np.ndarray) -> float:
    return abs(per_step.sum() / truth.sum() - 1)


def manifest(tmp_path: Path, runs: str, pretrain: str = "unknown") -> Path:
    path = tmp_path / "pilots.yaml"
    path.write_text(f"version: 1\npretrain: {pretrain}\nruns:\n{runs}")
    return path


def _needs_readers(log: str) -> None:
    if "wandb" in log and not log.endswith(".csv"):
        pytest.importorskip("wandb" if "wandb-pl" in log else "pyarrow")


# --------------------------------------------------------------------------- steps and S1


@pytest.mark.parametrize(("log", "truth", "columns", "first_eval"), CPT_RUNS)
def test_real_run_per_step_lr_and_loss_steps(log, truth, columns, first_eval):
    """Default logging: S1 within 0.1 % where the points pin the schedule, else bounded."""
    _needs_readers(log)
    data = read_log(REAL / log, columns)
    true = true_lr(truth)
    estimate = log_lr(data)
    assert estimate.per_step.size == true.size == 200
    error = s1_error(estimate.per_step, true)
    if estimate.s1_bound == 0:
        assert estimate.source == "matched", estimate.description
        assert error <= 1e-3
        np.testing.assert_allclose(estimate.per_step, true, rtol=0, atol=1e-6 * true.max())
    else:
        assert estimate.source == "interpolated", estimate.description
        assert error <= estimate.s1_bound
    # each logged LR point is the LR of the update it sits at
    np.testing.assert_allclose(data.lr.values, true[data.lr.steps - 1], rtol=1e-6)
    # losses at the right update: evaluations every 20 updates, the last after update 200
    for series in (data.general, data.domain):
        assert series.steps[0] == first_eval and series.steps[-1] == 200
        assert set(np.diff(series.steps)) == {20}


@pytest.mark.parametrize("folder", sorted(HF_KEYS))
def test_hf_keys_in_a_manifest_give_the_lr_every_update_used(tmp_path, folder):
    """``schedule:`` with the trainer's keys (max_steps left to the log) pins every run."""
    columns = f"\n    columns: {{general: {L5_COLUMNS.general}, domain: {L5_COLUMNS.domain}}}"
    path = manifest(
        tmp_path,
        f"  - log: {REAL / folder}\n    replay_ratio: 0.25\n    schedule: {HF_KEYS[folder]}"
        + (columns if folder.endswith("L5/version_0") else "")
        + "\n",
    )
    (run,) = load_manifest(path).runs
    true = true_lr(folder)
    assert s1_error(run.cpt_lr, true) < 1e-3
    np.testing.assert_allclose(run.cpt_lr, true, rtol=0, atol=1e-12)
    assert run.notes[0].endswith("schedule max_steps 200 taken from the log")


def test_sparse_lightning_default_is_bounded_and_hf_keys_pin_it():
    """log_every_n_steps=50: the 10-step warmup hides before the first point (update 50)."""
    estimate = log_lr(read_log(REAL / "pl/L5/version_0", L5_COLUMNS))
    error = s1_error(estimate.per_step, true_lr("pl/L5/version_0"))
    assert estimate.source == "interpolated"
    assert 0.02 < error <= estimate.s1_bound < 0.2  # +2.8 %, bound 14.3 %
    assert "several schedules fit them" in estimate.description


def test_pretrain_log_lr_is_exact():
    """hf-pt (constant_with_warmup, warmup 40, logged every 10): S1 was +0.27 % off."""
    path = REAL / "pilots.yaml"
    pretrain = load_manifest(path).pretrain
    state = json.loads((REAL / "hf-pt" / "trainer_state.json").read_text())
    assert pretrain.lr.size == state["max_steps"] == 400
    true = true_lr("hf-pt")
    np.testing.assert_allclose(pretrain.lr, true, rtol=0, atol=1e-12)


def test_hf_keys_schedule_errors_are_one_clean_line(tmp_path):
    path = manifest(
        tmp_path,
        f"  - {{log: {REAL / 'hf-B'}, replay_ratio: 0.25, schedule: {{learning_rate: 3.0e-3,"
        " lr_scheduler_type: constant_warmup, warmup_steps: 10}}\n",
    )
    with pytest.raises(InputError) as caught:
        load_manifest(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: run ")  # names the manifest, not the log
    assert "schedule: lr_scheduler_type" in message and "\n" not in message
    assert "function-after" not in message and "Schedule]" not in message
    path = manifest(
        tmp_path,
        f"  - {{log: {REAL / 'hf-B'}, replay_ratio: 0.25, schedule: {{learning_rate: 3.0e-3,"
        " family: constant}}\n",
    )
    with pytest.raises(InputError, match=r"runs\.0\.schedule: give cptopt's keys .* not both"):
        load_manifest(path)
    path = manifest(
        tmp_path, f"  - {{log: {REAL / 'hf-B'}, replay_ratio: 0.25, schedule: {{peak: 1}}}}\n"
    )
    with pytest.raises(InputError, match="needs 'family' .* or Hugging Face"):
        load_manifest(path)


def test_lightning_steps_are_read_one_based(tmp_path):
    raw = read_raw(REAL / "pl/L1/version_0/metrics.csv")
    assert raw.step_offset == 1
    assert raw.series["lr-AdamW"][0][0] == 10  # file: step 9, the LR of update 10
    assert raw.series["val_loss_general"][0][0] == 20  # file: 19, after 20 updates
    own = tmp_path / "metrics.csv"  # a step column the user logs and names: read as is
    own.write_text("lr-AdamW,my_step,step,val_loss\n0.001,10,9,\n,20,19,2.0\n")
    named = read_raw(own, "lightning", ColumnMap(step="my_step"))
    assert named.step_offset == 0 and named.series["val_loss"][0].tolist() == [20]


def test_lightning_validate_before_fit_stays_at_step_0(tmp_path):
    """Rows at step 0 written before any training row come from trainer.validate()."""
    path = tmp_path / "metrics.csv"
    path.write_text(
        "epoch,lr-AdamW,step,train_loss,val_loss_domain,val_loss_general\n"
        "0,,0,,3.0,2.0\n"  # trainer.validate() before fit: 0 updates
        ",0.0,0,,,\n"  # LearningRateMonitor, update 1
        "0,,0,4.0,,\n"  # training loss of update 1
        "0,,0,,2.9,1.9\n"  # validation after update 1 (val_check_interval=1)
        ",0.001,1,,,\n"
        "0,,1,,2.8,1.8\n"
    )
    data = read_log(path)
    np.testing.assert_array_equal(data.general.steps, [0, 1, 2])
    np.testing.assert_array_equal(data.lr.steps, [1, 2])


def _lightning_event_file(folder: Path, *, lightning: bool) -> Path:
    """Events as Lightning's TensorBoardLogger writes them (0-based steps, hparams.yaml)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    folder.mkdir(parents=True)
    writer = EventFileWriter(str(folder))
    events = [  # (wall time, step, tag, value) in the order Lightning logs them
        (1.0, 0, "val_loss_general", 2.0),  # trainer.validate() before fit
        (2.0, 0, "lr-AdamW", 0.0),  # update 1
        (3.0, 0, "train_loss", 4.0),
        (4.0, 1, "lr-AdamW", 0.001),  # update 2
        (5.0, 1, "val_loss_general", 1.8),  # after 2 updates
    ]
    for wall, step, tag, value in events:
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
        writer.add_event(Event(step=step, wall_time=wall, summary=summary))
    writer.close()
    if lightning:
        (folder / "hparams.yaml").write_text("{}\n")
    return folder


def test_lightning_tensorboard_logger_is_one_based(tmp_path):
    """Lightning's TensorBoardLogger (hparams.yaml beside the events) reads as its CSV does."""
    folder = _lightning_event_file(tmp_path / "lightning_logs" / "version_0", lightning=True)
    raw = read_raw(folder)
    assert raw.step_offset == 1
    np.testing.assert_array_equal(raw.series["val_loss_general"][0], [0, 2])
    np.testing.assert_array_equal(raw.series["lr-AdamW"][0], [1, 2])
    other = read_raw(_lightning_event_file(tmp_path / "plain", lightning=False))
    assert other.step_offset == 0 and other.series["lr-AdamW"][0].tolist() == [0, 1]


def test_wandb_lightning_history_is_one_based_like_the_csv():
    """W&B's own decoding of the offline run (pl-history.csv) reads like the CSV log."""
    history = read_log(REAL / "wandb-export/pl-history.csv")
    csv = read_log(REAL / "pl/L1/version_0")
    for role in ("lr", "general", "domain"):
        np.testing.assert_array_equal(getattr(history, role).steps, getattr(csv, role).steps)
    np.testing.assert_array_equal(history.lr.values, csv.lr.values)


def test_hf_tensorboard_and_trainer_state_agree():
    state, board = read_log(REAL / "hf-C"), read_log(REAL / "hf-C/runs")
    # the schedule's length: trainer_state's max_steps, the TrainingArguments TensorBoard holds
    assert board.max_steps == state.max_steps == 200
    for role in ("lr", "general", "domain"):
        mine, theirs = getattr(board, role), getattr(state, role)
        np.testing.assert_array_equal(mine.steps, theirs.steps)
        np.testing.assert_allclose(mine.values, theirs.values, rtol=1e-6)


# --------------------------------------------------------------------------- run folders


def test_tensorboard_run_folder_takes_tags_without_prefix():
    data = read_log(
        REAL / "hf-B/runs", ColumnMap(general="eval/general_loss", domain="eval/domain_loss")
    )
    assert data.names["general"] == "eval/general_loss"
    prefixed = ColumnMap(general="Dec02_00-43-09_vm/eval/general_loss", domain=None, lr=None)
    assert read_log(REAL / "hf-B/runs", prefixed).general is not None


def test_tensorboard_several_runs_name_the_runs_and_how_to_pick_one():
    raw = read_raw(REAL / "hf-A2/runs")
    assert raw.runs == ("Dec02_00-42-16_vm", "Dec02_00-43-09_vm")
    with pytest.raises(InputError) as caught:
        read_log(REAL / "hf-A2/runs")
    message = str(caught.value)
    assert "holds 2 runs (Dec02_00-42-16_vm, Dec02_00-43-09_vm)" in message
    assert "give one run's folder as the log" in message and "\n" not in message
    with pytest.raises(InputError, match="is in several runs"):
        read_log(REAL / "hf-A2/runs", ColumnMap(general="eval/general_loss"))
    picked = ColumnMap(general="Dec02_00-42-16_vm/eval/general_loss", domain=None, lr=None)
    assert read_log(REAL / "hf-A2/runs", picked).general.steps[-1] == 200


def test_pilot_names_come_from_the_run_folder(tmp_path):
    names = {
        "hf-B": "hf-B",
        "hf-B/runs": "hf-B",
        "hf-B/runs/Dec02_00-43-09_vm": "hf-B",
        "hf-B/checkpoint-200": "hf-B",
        "hf-B/checkpoint-200/trainer_state.json": "hf-B",
        "pl/L1/version_0/metrics.csv": "L1",
        "proj/lightning_logs/version_3": "proj",
        "wandb-pl": "wandb-pl",
        "wandb-pl/wandb": "wandb-pl",
        str(WANDB_FILE.relative_to(REAL)): "wandb-pl",
        "exports/wandb/history.parquet": "wandb",
        "runs/a.csv": "a",
    }
    for log, name in names.items():
        assert default_run_name(log) == name, log
    # hf-A2's second run folder holds a copy of hf-B's event file: the same run, listed
    # here for its name only (as a replicate, or the manifest would refuse it)
    path = manifest(
        tmp_path,
        f"  - {{log: {REAL / 'hf-B/runs'}, replay_ratio: 0.25}}\n"
        f"  - {{log: {REAL / 'hf-A2/runs/Dec02_00-42-16_vm'}, replay_ratio: 0.25}}\n"
        f"  - {{log: {REAL / 'hf-A2/runs/Dec02_00-43-09_vm'}, replay_ratio: 0.25, "
        "replicate: true}\n",
    )
    names = [run.name for run in load_manifest(path).runs]
    assert names == ["hf-B", "hf-A2/Dec02_00-42-16_vm", "hf-A2/Dec02_00-43-09_vm"]


# --------------------------------------------------------------------------- W&B


def test_wandb_run_reads_like_wandbs_own_history():
    pytest.importorskip("wandb")
    run = read_raw(WANDB_RUN)
    export = read_raw(REAL / "wandb-export/pl-history.csv")
    assert run.format == "wandb-run" and run.step_name == "trainer/global_step"
    assert run.step_offset == 1
    for name in ("lr-AdamW", "train_loss", "val_loss_general", "val_loss_domain"):
        np.testing.assert_array_equal(run.series[name][0], export.series[name][0])
        np.testing.assert_array_equal(run.series[name][1], export.series[name][1])


def test_wandb_run_config_gives_the_schedules_length(tmp_path):
    """HF's WandbCallback logs its TrainingArguments as the run's config: max_steps is read."""
    pytest.importorskip("wandb")
    import struct
    import zlib

    from wandb.proto import wandb_internal_pb2

    record = wandb_internal_pb2.Record()
    item = record.config.update.add()
    item.key, item.value_json = "max_steps", "1000"
    data = record.SerializeToString()
    crc = zlib.crc32(data, zlib.crc32(bytes([1]))) & 0xFFFFFFFF  # one FULL chunk
    original = WANDB_FILE.read_bytes()
    assert len(original) % 32768 + 7 + len(data) <= 32768  # fits in the last block
    path = tmp_path / WANDB_FILE.name
    path.write_bytes(original + struct.pack("<IHB", crc, len(data), 1) + data)
    assert read_raw(WANDB_FILE).meta == {}  # Lightning's run logs no TrainingArguments
    log = read_log(path)
    assert log.max_steps == 1000
    # L1's cosine ends at update 200: no cosine ending at 1000 fits its points
    assert log_lr(read_log(WANDB_FILE)).source == "matched"
    assert log_lr(log).source == "interpolated"


def test_wandb_missing_is_one_line(monkeypatch):
    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name.startswith("wandb"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(InputError, match=r"needs wandb: pip install 'cptopt\[wandb\]'$"):
        read_raw(WANDB_RUN)


def test_wandb_run_file_damage_is_one_line(tmp_path):
    pytest.importorskip("wandb")
    data = bytearray(WANDB_FILE.read_bytes())
    data[200] ^= 0xFF
    damaged = tmp_path / "run-x.wandb"
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"corrupt record at byte \d+ \(CRC mismatch\)"):
        read_raw(damaged)
    truncated = tmp_path / "run-y.wandb"
    truncated.write_bytes(WANDB_FILE.read_bytes()[:4])
    with pytest.raises(InputError, match="not a W&B run file"):
        read_raw(truncated)
    (tmp_path / "wandb" / "offline-run-20260101_000000-a").mkdir(parents=True)
    (tmp_path / "wandb" / "offline-run-20260101_000001-b").mkdir(parents=True)
    for folder in (tmp_path / "wandb").iterdir():
        (folder / f"run-{folder.name[-1]}.wandb").write_bytes(WANDB_FILE.read_bytes())
    with pytest.raises(InputError, match="holds 2 W&B runs .* give one run's folder"):
        read_raw(tmp_path / "wandb")


# --------------------------------------------------------------------------- start loss


def test_no_eval_at_step_0_warns_in_unknown_mode(tmp_path):
    path = manifest(
        tmp_path,
        f"  - {{log: {REAL / 'hf-B'}, replay_ratio: 0.25}}\n"
        f"  - {{log: {REAL / 'hf-C'}, replay_ratio: 0.5}}\n",
    )
    hf_b, hf_c = load_manifest(path).runs
    (warning,) = [note for note in hf_b.notes if "step 0" in note]
    assert "start loss is extrapolated" in warning and "eval_on_start=True" in warning
    assert "trainer.validate" in warning
    assert not [note for note in hf_c.notes if "step 0" in note]  # eval_on_start=True


def test_matched_lr_is_information_not_a_warning(tmp_path):
    path = manifest(tmp_path, f"  - {{log: {REAL / 'pl/L1/version_0'}, replay_ratio: 0.25}}\n")
    (run,) = load_manifest(path).runs
    (info,) = run.info
    assert "LR logged at 20 of 200 updates; they pin down cosine" in info
    assert "(PyTorch/HF step convention): warmup 10, peak 0.001" in info
    assert not [note for note in run.notes if "LR logged" in note]
