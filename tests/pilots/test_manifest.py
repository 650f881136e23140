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
