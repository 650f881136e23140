"""A log that ends early or is damaged is an error or a loud note, never a shorter pilot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cptopt.exceptions import InputError
from cptopt.pilots.logs import read_log, read_raw, summarize
from cptopt.pilots.manifest import load_manifest
from cptopt.pilots.runs import run_from_log

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EVENTS = next((FIXTURES / "logs" / "tensorboard").iterdir())
WANDB_RUN = next((FIXTURES / "real-logs" / "wandb-pl").rglob("*.wandb"))
HF = FIXTURES / "logs" / "hf" / "trainer_state.json"


def _copy(source: Path, folder: Path, data: bytes | None = None) -> Path:
    target = folder / source.name
    target.write_bytes(source.read_bytes() if data is None else data)
    return target


def _flip(data: bytes, count: int, seed: int = 0) -> bytes:
    damaged = bytearray(data)
    for index in np.random.default_rng(seed).integers(0, len(data), count):
        damaged[index] ^= 0xFF
    return bytes(damaged)


# --------------------------------------------------------------------------- TensorBoard


@pytest.mark.parametrize("seed", range(5))
def test_flipped_bytes_in_an_event_file_are_an_error(tmp_path, seed):
    path = _copy(EVENTS, tmp_path, _flip(EVENTS.read_bytes(), 100, seed))
    with pytest.raises(InputError, match=r"corrupt record at byte \d+ \(CRC mismatch\)"):
        read_raw(path)


def test_one_flipped_byte_names_its_record(tmp_path):
    data = bytearray(EVENTS.read_bytes())
    data[60_000] ^= 0x01
    path = _copy(EVENTS, tmp_path, bytes(data))
    with pytest.raises(InputError) as error:
        read_raw(path)
    offset = int(str(error.value).split("at byte ")[1].split()[0])
    assert offset <= 60_000 < offset + 200  # the record holding the byte (scalars are short)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.999])
def test_an_event_file_cut_short_is_read_with_a_note_and_no_pilot(tmp_path, fraction):
    data = EVENTS.read_bytes()
    path = _copy(EVENTS, tmp_path, data[: int(len(data) * fraction)])
    log = read_log(path)
    assert log.cut and (log.last_step < 1000 or fraction > 0.99)
    assert "ends in a partly written record at byte" in log.cut["file"]
    assert log.cut["file"] in summarize(read_raw(path))["notes"]
    with pytest.raises(InputError, match="a pilot is not fitted on a cut curve"):
        run_from_log(log, name="cut", replay_ratio=0.25)


def test_intact_event_file_reads_as_before():
    log = read_log(EVENTS)
    assert log.cut == {} and log.last_step == 1000


def test_a_killed_segment_resumed_in_a_later_file_is_a_note(tmp_path):
    data = EVENTS.read_bytes()
    first = tmp_path / "events.out.tfevents.1.vm"
    first.write_bytes(data[: len(data) // 2])
    raw = read_raw(tmp_path)
    assert raw.cut  # the last (only) file of the folder is cut
    later = tmp_path / "events.out.tfevents.2.vm"
    later.write_bytes(b"")
    with pytest.raises(InputError, match="file is empty"):
        read_raw(tmp_path)
    shutil.copy(EVENTS, later)
    raw = read_raw(tmp_path)
    assert not raw.cut
    assert any("a killed run, resumed in a later file" in note for note in raw.notes)


# --------------------------------------------------------------------------- W&B run files


def test_wandb_run_file_cut_or_damaged(tmp_path):
    data = WANDB_RUN.read_bytes()
    path = _copy(WANDB_RUN, tmp_path, data[: len(data) // 2])
    raw = read_raw(path)
    assert "ends in a partly written record at byte" in raw.cut
    path.write_bytes(_flip(data, 1, 3))
    with pytest.raises(InputError, match=r"corrupt record at byte \d+"):
        read_raw(path)


# --------------------------------------------------------------------------- curves that end early


def _csv(path: Path, loss_until: int, lr_until: int = 100) -> Path:
    rows = ["step,lr,loss_general,loss_domain"]
    for step in range(0, max(loss_until, lr_until) + 1, 10):
        lr = f"{1e-3 if step else 0}" if step <= lr_until else ""
        loss = f"{2 - step / 1000}" if step <= loss_until else ""
        rows.append(f"{step},{lr},{loss},{loss}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_loss_that_stops_while_the_lr_goes_on_is_cut(tmp_path):
    log = read_log(_csv(tmp_path / "a.csv", loss_until=40))
    assert log.cut == {
        "general": f"{tmp_path / 'a.csv'}: series 'loss_general' (general loss) ends at step 40 "
        "but 'lr' goes on to step 100: a cut log?",
        "domain": f"{tmp_path / 'a.csv'}: series 'loss_domain' (domain loss) ends at step 40 "
        "but 'lr' goes on to step 100: a cut log?",
    }
    with pytest.raises(InputError, match="ends at step 40 .*not fitted on a cut curve"):
        run_from_log(log, name="a", replay_ratio=0.25)


@pytest.mark.parametrize(("loss_until", "lr_until"), [(90, 100), (100, 100), (100, 91)])
def test_curves_ending_within_their_interval_are_not_cut(tmp_path, loss_until, lr_until):
    log = read_log(_csv(tmp_path / "a.csv", loss_until, lr_until))
    assert log.cut == {}
    run = run_from_log(log, name="a", replay_ratio=0.25)
    assert not any("schedule goes to" in note for note in run.notes)


def test_a_run_that_stops_before_its_max_steps_gets_a_note(tmp_path):
    state = json.loads(HF.read_text())
    last = max(row["step"] for row in state["log_history"] if "step" in row)
    state["max_steps"] = 2 * last
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(state))
    log = read_log(path)
    assert log.cut == {}
    run = run_from_log(log, name="hf", replay_ratio=0.25)
    note = next(note for note in run.notes if "schedule goes to" in note)
    assert f"the losses end at step {last} but the run's schedule goes to step {2 * last}" in note
    assert "(max_steps)" in note and f"fitted on steps up to {last}" in note


def test_max_steps_beyond_the_bound_is_no_hint(tmp_path):
    state = json.loads(HF.read_text())
    state["max_steps"] = 10**12
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(state))
    assert read_log(path).max_steps is None


# --------------------------------------------------------------------------- HF entries dropped


def test_hf_entries_without_a_numeric_step_are_counted(tmp_path):
    state = json.loads(HF.read_text())
    state["log_history"][3]["step"] = "ten"
    del state["log_history"][5]["step"]
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(state))
    notes = summarize(read_raw(path))["notes"]
    assert notes[0].startswith(
        f"{path}: 2 log_history entries without a numeric 'step' skipped (entry 3: step 'ten';"
    )


def test_hf_value_that_is_not_a_number_is_an_error_when_used(tmp_path):
    state = json.loads(HF.read_text())
    row = next(row for row in state["log_history"] if "eval_general_loss" in row)
    row["eval_general_loss"] = "1.5"
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(state))
    with pytest.raises(InputError, match=r"log_history entry \d+ == '1\.5', not a number"):
        read_log(path)


# --------------------------------------------------------------------------- bounds


def test_a_step_above_max_steps_is_refused_before_any_array(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("step,lr,loss_general,loss_domain\n0,0,2,2\n1e12,1e-3,1.9,1.9\n")
    with pytest.raises(InputError, match=r"step 1e\+12 is more than the longest run cptopt reads"):
        read_log(path)
    summary = summarize(read_raw(path))  # inspect shows it, allocates nothing per step
    assert "more than the longest run" in summary["error"]


# --------------------------------------------------------------------------- manifests


def test_the_pt_logs_notes_reach_every_run(tmp_path):
    data = EVENTS.read_bytes()
    _copy(EVENTS, tmp_path, data)  # the pilot: intact
    pt = tmp_path / "pt.csv"
    _csv(pt, loss_until=40)  # PT losses end early: a note, not an error
    (tmp_path / "m.yaml").write_text(
        f"version: 1\npretrain: {{log: pt.csv, checkpoints: {{c: 100}}}}\n"
        f"runs:\n  - {{log: {EVENTS.name}, replay_ratio: 0.25}}\n"
    )
    pilots = load_manifest(tmp_path / "m.yaml")
    assert pilots.pretrain.notes and pilots.pretrain.notes[0] in pilots.runs[0].notes


def test_a_run_folder_and_its_trainer_state_are_one_log(tmp_path):
    shutil.copytree(HF.parent, tmp_path / "hf")
    (tmp_path / "m.yaml").write_text(
        "version: 1\npretrain: unknown\nruns:\n"
        "  - {log: hf, replay_ratio: 0.25, name: a}\n"
        "  - {log: hf/trainer_state.json, replay_ratio: 0.5, name: b}\n"
    )
    with pytest.raises(
        InputError,
        match=r"runs 'a' \(hf\) and 'b' \(hf/trainer_state\.json\) "
        r"read identical files \(same SHA-256\): list each pilot once",
    ):
        load_manifest(tmp_path / "m.yaml")


def test_an_lr_series_that_ends_early_is_no_matter_with_a_schedule(tmp_path):
    from cptopt.schedules import Schedule

    log = read_log(_csv(tmp_path / "a.csv", loss_until=100, lr_until=40))
    assert list(log.cut) == ["lr"]
    with pytest.raises(InputError, match="'lr' .* ends at step 40 .*not fitted on a cut curve"):
        run_from_log(log, name="a", replay_ratio=0.25)
    schedule = Schedule(family="constant", peak_lr=1e-3, steps=100, warmup_steps=1)
    assert run_from_log(log, name="a", replay_ratio=0.25, schedule=schedule).steps == 100
