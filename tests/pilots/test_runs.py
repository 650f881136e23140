"""Fitting a fixture log gives the law of the native CSV; coarse LR logs with a schedule too.

Every fixture in ``tests/fixtures/logs`` carries the curve of the bundled real run
``code_U_lr1x_r25_wsd_1000`` (see ``tests/fixtures/make_fixtures.py``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cptopt.fitting.estimator import LawFitter
from cptopt.pilots.logs import ColumnMap, Series, read_csv_log, read_log
from cptopt.pilots.manifest import ScheduleSpec
from cptopt.pilots.runs import PilotSet, PretrainHistory, cpt_lr_from_log, run_from_log
from cptopt.prediction import predict
from cptopt.schedules import Schedule

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "logs"
DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "cpt-code"
NATIVE = DATA / "runs" / "code_U_lr1x_r25_wsd_1000.csv"
#: The native run's schedule (its runs/<id>.json: warmup 20, decay from step 800 to 0 at 1000).
SCHEDULE = Schedule(family="wsd", peak_lr=2e-3, steps=1000, warmup_steps=20, decay_start_step=800)
PER_STEP_FIXTURES = [
    "hf",
    "tensorboard",
    "lightning/metrics.csv",
    "wandb/export.csv",
    "wandb/history.parquet",
    "jsonl/metrics.jsonl",
]
COARSE_FIXTURES = ["hf-every10", "lightning-every50"]


@pytest.fixture(scope="module")
def pretrain() -> PretrainHistory:
    """The PT history as examples/pilots/unannealed.yaml declares it."""
    log = read_csv_log(DATA / "pretrain.csv")
    return PretrainHistory(
        lr=log.lr.values[log.lr.steps >= 1],
        warmup_steps=80,
        checkpoints={"unannealed": 3200},
        general=log.general,
        domain=log.domain,
    )


def _fit(log, pretrain, schedule=None):
    run = run_from_log(
        log, name="pilot", replay_ratio=0.25, checkpoint="unannealed", schedule=schedule
    )
    fitter = LawFitter(form="paper", lam=0.999, jackknife=False, n_starts=1, n_screen=16, seed=0)
    return fitter.fit(PilotSet((run,), pretrain)).law_, run


@pytest.fixture(scope="module")
def native_law(pretrain):
    return _fit(read_csv_log(NATIVE), pretrain)[0]


def test_schedule_reproduces_native_lr():
    native = read_csv_log(NATIVE)
    np.testing.assert_allclose(SCHEDULE.lr_array(), native.lr.values[1:], rtol=0, atol=1e-15)


@pytest.mark.parametrize("relative", PER_STEP_FIXTURES)
def test_fixture_fits_same_law_as_native(relative, pretrain, native_law):
    law, run = _fit(read_log(FIXTURES / relative), pretrain)
    assert not any("interpolated" in note for note in run.notes)
    for name in ("general", "domain"):
        np.testing.assert_allclose(
            getattr(law, name).values, getattr(native_law, name).values, rtol=1e-6, atol=0
        )


def _curves(law):
    steps = list(range(0, 1001, 10))
    prediction = predict(law, SCHEDULE, 0.25, checkpoint="unannealed", steps=steps)
    return np.array(prediction.general.mean), np.array(prediction.domain.mean)


@pytest.mark.parametrize("relative", COARSE_FIXTURES)
@pytest.mark.parametrize("partial", [False, True])
def test_coarse_lr_with_schedule_matches_per_step_fit(relative, partial, pretrain, native_law):
    log = read_log(FIXTURES / relative)
    assert 20 <= len(log.lr) <= 110  # LR logged every 10 or 50 steps only
    schedule = SCHEDULE
    if partial:  # peak_lr and steps left to the log
        spec = ScheduleSpec(family="wsd", warmup_steps=20, decay_fraction=0.2)
        schedule, notes = spec.resolve(log, "coarse")
        assert schedule.peak_lr == 2e-3 and schedule.steps == 1000 and notes
    law, run = _fit(log, pretrain, schedule)
    assert run.notes == ()
    for mine, reference in zip(_curves(law), _curves(native_law), strict=True):
        assert np.max(np.abs(mine / reference - 1)) < 1e-3


def test_coarse_lr_without_schedule_is_matched_and_says_so(pretrain, native_law):
    """LR every 50 steps plus update 1: the points pin down the WSD schedule (issue #14)."""
    law, run = _fit(read_log(FIXTURES / "lightning-every50"), pretrain)
    assert run.notes == ()  # information, not a warning
    (info,) = run.info
    assert "LR logged at 21 of 1000 updates; they pin down WSD linear decay" in info
    assert "warmup 20" in info and "decay from step 800" in info
    assert info not in law.notes
    for mine, reference in zip(_curves(law), _curves(native_law), strict=True):
        assert np.max(np.abs(mine / reference - 1)) < 1e-3


def test_coarse_lr_that_cannot_be_pinned_is_interpolated_and_says_so(pretrain, native_law):
    """Without the point at update 1 the 20-step warmup hides between two points."""
    log = read_log(FIXTURES / "lightning-every50")
    keep = log.lr.steps != 1
    log = replace(log, lr=Series(log.lr.steps[keep], log.lr.values[keep]))
    law, run = _fit(log, pretrain)
    (note,) = run.notes
    assert "LR logged at 20 of 1000 updates: interpolated linearly" in note
    assert "S1 may be off by up to" in note
    assert note in law.notes
    # Logged every 50 steps, the 20-step warmup is smeared over 50 steps: a visibly
    # different law, which is why the schedule matters.
    general, _ = _curves(law)
    reference, _ = _curves(native_law)
    assert np.max(np.abs(general / reference - 1)) > 1e-3


def test_schedule_that_disagrees_with_logged_lr_is_an_error():
    log = read_log(FIXTURES / "hf-every10")
    wrong = Schedule(family="cosine", peak_lr=2e-3, steps=1000, warmup_steps=20)
    from cptopt.exceptions import InputError

    with pytest.raises(InputError, match="logged LR at step .* but the schedule gives"):
        run_from_log(log, name="x", replay_ratio=0.25, schedule=wrong)


def test_wandb_history_step_is_the_trainer_step():
    log = read_log(FIXTURES / "wandb" / "history.parquet", ColumnMap())
    assert log.general.steps[-1] == 1000  # train/global_step, not W&B's _step counter


def test_schedule_accepts_lr_logged_one_step_early_or_late():
    """HF logs the LR after the scheduler step, Lightning before the update: both pass."""
    from cptopt.pilots.logs import LogData

    per_step = SCHEDULE.lr_array()
    steps = np.arange(0, 1001, 10)
    for shift in (-1, 1):
        index = np.clip(steps + shift, 1, 1000) - 1
        log = LogData("shifted", "", Series(steps, per_step[index]), None, None)
        lr, notes, _ = cpt_lr_from_log(log.lr, SCHEDULE, 1000, "shifted")
        np.testing.assert_array_equal(lr, per_step)
    too_far = Series(steps, per_step[np.clip(steps + 5, 1, 1000) - 1])
    from cptopt.exceptions import InputError

    with pytest.raises(
        InputError, match="logged LR at step 0 is 0.0005 but the schedule gives 0.0001"
    ):
        cpt_lr_from_log(too_far, SCHEDULE, 1000, "shifted")
    beyond = Series(np.array([10, 1001, 1002]), np.array([per_step[9], 0.0, 0.0]))
    cpt_lr_from_log(beyond, SCHEDULE, 1000, "beyond")  # points past the schedule are ignored
