"""Pilot manifests with ``format:``, series mappings and partial schedules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cptopt.exceptions import InputError
from cptopt.pilots.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "logs"
PRETRAIN = ROOT / "examples" / "data" / "cpt-code" / "pretrain.csv"


def write(tmp_path: Path, runs: str, top: str = "") -> Path:
    path = tmp_path / "pilots.yaml"
    path.write_text(
        f"version: 1\n{top}"
        f"pretrain: {{log: {PRETRAIN}, warmup_steps: 80, checkpoints: {{unannealed: 3200}}}}\n"
        f"runs:\n{runs}"
    )
    return path


def test_commented_example_manifest_loads():
    pilots = load_manifest(ROOT / "examples" / "pilots" / "pilots-commented.yaml")
    hf, csv_explicit, csv_inferred = pilots.runs
    assert hf.name == "hf_lr1x_r25_wsd" and hf.steps == 1000 and hf.peak_lr == 2e-3
    assert hf.notes == (
        "hf_lr1x_r25_wsd: schedule peak_lr 0.002 and steps 1000 taken from the log",
    )
    assert len(hf.general) == 25 and hf.domain is not None
    assert csv_explicit.replay_ratio == 0.0 and csv_inferred.replay_ratio == 0.5
    assert pilots.pretrain.known and pilots.pretrain.warmup_steps == 80


def test_bundled_csv_manifests_unchanged():
    pilots = load_manifest(ROOT / "examples" / "pilots" / "unannealed.yaml")
    assert [run.notes for run in pilots.runs] == [()] * 5
    assert all(run.steps == 1000 for run in pilots.runs)


@pytest.mark.parametrize(
    ("log", "name"),
    [
        ("hf", "hf"),
        ("hf/trainer_state.json", "hf"),
        ("tensorboard", "tensorboard"),
        ("lightning/metrics.csv", "lightning"),
        ("wandb/history.parquet", "wandb"),
    ],
)
def test_every_format_in_a_manifest(tmp_path, log, name):
    path = write(tmp_path, f"  - {{log: {FIXTURES / log}, replay_ratio: 0.25}}\n")
    (run,) = load_manifest(path).runs
    assert run.name == name and run.steps == 1000 and len(run.general) == 25


def test_unknown_format_is_rejected(tmp_path):
    path = write(tmp_path, f"  - {{log: {FIXTURES / 'hf'}, replay_ratio: 0.25, format: xlsx}}\n")
    with pytest.raises(InputError, match=r"runs\.0\.format"):
        load_manifest(path)


def test_forced_wrong_format_fails_cleanly(tmp_path):
    path = write(
        tmp_path,
        f"  - {{log: {FIXTURES / 'hf' / 'trainer_state.json'}, replay_ratio: 0.25}}\n",
        top="format: csv\n",
    )
    with pytest.raises(InputError, match="no step column|fields"):
        load_manifest(path)


def test_partial_schedule_needs_an_lr_in_the_log(tmp_path):
    runs = (
        f"  - {{log: {FIXTURES / 'hf'}, replay_ratio: 0.25, columns: {{lr: null}},"
        " schedule: {family: wsd, warmup_steps: 20}}\n"
    )
    with pytest.raises(InputError, match="schedule has no 'peak_lr' and the log has no LR"):
        load_manifest(write(tmp_path, runs))


def test_invalid_partial_schedule_is_one_line(tmp_path):
    runs = (
        f"  - {{log: {FIXTURES / 'hf-every10'}, replay_ratio: 0.25,"
        " schedule: {family: wsd, warmup_steps: 2000}}\n"
    )
    with pytest.raises(InputError, match="schedule.*warmup") as info:
        load_manifest(write(tmp_path, runs))
    assert "\n" not in str(info.value)


def test_no_lr_and_no_schedule(tmp_path):
    runs = f"  - {{log: {FIXTURES / 'hf'}, replay_ratio: 0.25, columns: {{lr: null}}}}\n"
    with pytest.raises(InputError, match="no LR column and no 'schedule'"):
        load_manifest(write(tmp_path, runs))


def test_replay_ratio_validated(tmp_path):
    with pytest.raises(InputError, match="replay_ratio"):
        load_manifest(write(tmp_path, f"  - {{log: {FIXTURES / 'hf'}, replay_ratio: 1.3}}\n"))


@pytest.mark.parametrize(
    ("keys", "first", "expected"),
    [
        # cosine without warmup: HF's LambdaLR gives update 1 the full peak
        ("lr_scheduler_type: cosine", 1e-3, lambda x: 0.5 * (1 + np.cos(np.pi * x / 1000))),
        # warmup_ratio 0.02 of 1000 = 20 steps; update 1 runs at 0, update 21 at the peak
        (
            "lr_scheduler_type: linear, warmup_ratio: 0.02",
            0.0,
            lambda x: np.where(x < 20, x / 20, (1000 - x) / 980),
        ),
    ],
)
def test_trainer_keys_schedule_runs_as_the_trainer(tmp_path, keys, first, expected):
    """HF keys on a log without LR: update s gets the lambda at step s - 1 (LambdaLR)."""
    runs = (
        f"  - {{log: {FIXTURES / 'hf'}, replay_ratio: 0.25, columns: {{lr: null}},"
        f" schedule: {{learning_rate: 1.0e-3, max_steps: 1000, {keys}}}}}\n"
    )
    (run,) = load_manifest(write(tmp_path, runs)).runs
    assert run.cpt_lr[0] == pytest.approx(first)
    np.testing.assert_allclose(run.cpt_lr, 1e-3 * expected(np.arange(1000.0)), atol=1e-15)
    assert run.notes == ()  # nothing was taken from the log


def test_trainer_keys_need_a_learning_rate_somewhere(tmp_path):
    runs = (
        f"  - {{log: {FIXTURES / 'hf'}, replay_ratio: 0.25, columns: {{lr: null}},"
        " schedule: {lr_scheduler_type: cosine, warmup_steps: 10}}\n"
    )
    path = write(tmp_path, runs)
    with pytest.raises(InputError, match=r"run '.*': schedule: learning_rate: required"):
        load_manifest(path)


# --------------------------------------------------------------- pre-training pilots

PT_DATA = ROOT / "examples" / "data" / "pt-mpl25"
PT_RUN = (
    f"{{log: {PT_DATA / 'wsdcon_9.csv'}, schedule: "
    "{family: step, peak_lr: 3.0e-4, steps: 16000, warmup_steps: 2160, milestones: [8000], "
    "step_factor: 0.3}"
)


def write_pretrain(tmp_path: Path, runs: str, top: str = "") -> Path:
    path = tmp_path / "pt.yaml"
    path.write_text(f"version: 1\nkind: pretrain\n{top}runs:\n{runs}")
    return path


def test_pretrain_manifest_loads_runs_with_their_whole_schedule(pretrain_manifest):
    from cptopt.pilots.runs import PretrainPilots

    pilots = load_manifest(pretrain_manifest)
    assert isinstance(pilots, PretrainPilots) and pilots.kind == "pretrain"
    assert [run.name for run in pilots.runs] == ["cosine_24000", "constant_24000", "wsdcon_9"]
    assert all(run.warmup_steps == 2160 and run.notes == () for run in pilots.runs)
    assert [run.steps for run in pilots.runs] == [24000, 24000, 16000]
    assert pilots.runs[2].lr[8000] == pytest.approx(9e-5) and pilots.runs[2].peak_lr == 3e-4
    # cosine_24000 logs a point at step 2160, inside the warmup: read (not fitted)
    assert 2160 in pilots.runs[0].loss.steps.tolist()


def test_pretrain_run_without_a_schedule_takes_the_logged_lr_and_infers_its_warmup(tmp_path):
    rows = ["step,lr,val"] + [f"{s},{min(s, 100) * 1e-5:g},{4 - s / 1e4:g}" for s in range(1, 501)]
    (tmp_path / "run.csv").write_text("\n".join(rows) + "\n")
    path = write_pretrain(tmp_path, "  - {log: run.csv, columns: {general: val}}\n")
    (run,) = load_manifest(path).runs
    assert run.warmup_steps == 99 and run.steps == 500 and run.lr[-1] == pytest.approx(1e-3)
    path = write_pretrain(
        tmp_path, "  - {log: run.csv, warmup_steps: 50, columns: {general: val}}\n"
    )
    assert load_manifest(path).runs[0].warmup_steps == 50


@pytest.mark.parametrize(
    ("runs", "top", "message"),
    [
        (f"  - {PT_RUN}, replay_ratio: 0.25}}\n", "", "replay_ratio: a pre-training run has no"),
        (f"  - {PT_RUN}, checkpoint: final}}\n", "", "checkpoint: a pre-training run has no"),
        (f"  - {PT_RUN}}}\n", "pretrain: unknown\n", "pretrain: not for pre-training pilots"),
        (f"  - {PT_RUN}}}\n", "domain_tokens: 1000\n", "domain_tokens: not for pre-training"),
        (f"  - {PT_RUN}}}\n", "columns: {domain: loss}\n", "columns.domain: pre-training pilots"),
        (f"  - {PT_RUN}}}\n", "columns: {general: val_loss}\n", "no series 'val_loss'"),
        (f"  - {PT_RUN}, warmup_steps: 16000}}\n", "", "warmup_steps: 16000 must be shorter"),
    ],
)
def test_bad_pretrain_manifests_are_one_line_errors(tmp_path, runs, top, message):
    with pytest.raises(InputError, match=message) as error:
        load_manifest(write_pretrain(tmp_path, runs, top))
    assert "\n" not in str(error.value)
    if "replay_ratio" in message or "checkpoint" in message:
        assert str(error.value).startswith(f"{tmp_path / 'pt.yaml'}: run '")


def test_cpt_manifests_say_how_to_declare_pretraining_runs(tmp_path):
    with pytest.raises(
        InputError,
        match=r"run '.*': replay_ratio: required for a CPT run .*"
        r"set 'kind: pretrain'",
    ):
        load_manifest(write(tmp_path, f"  - {{log: {FIXTURES / 'hf'}}}\n"))
    path = tmp_path / "no-pt.yaml"
    path.write_text(f"version: 1\nruns:\n  - {{log: {FIXTURES / 'hf'}, replay_ratio: 0.2}}\n")
    with pytest.raises(InputError, match="pretrain: required for CPT pilots.*kind: pretrain"):
        load_manifest(path)
    runs = f"  - {{log: {FIXTURES / 'hf'}, replay_ratio: 0.2, warmup_steps: 10}}\n"
    with pytest.raises(InputError, match="warmup_steps: only for pre-training runs"):
        load_manifest(write(tmp_path, runs))
    with pytest.raises(InputError, match="kind"):
        load_manifest(write(tmp_path, f"  - {PT_RUN}}}\n", "kind: pretraining\n"))
