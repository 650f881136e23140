"""Schedules: the generator must reproduce the real runs' per-step LR exactly."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from pydantic import ValidationError

from cptopt.schedules import EXPONENTIAL_FLOOR_RATIO, Schedule


def logged_lr(data_dir, run_id: str) -> np.ndarray:
    with (data_dir / "runs" / f"{run_id}.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return np.array([float(r["lr"]) for r in rows if int(r["step"]) >= 1])


@pytest.mark.parametrize(
    ("run_id", "schedule"),
    [
        ("code_U_lr1x_r25_wsd_1000", dict(family="wsd", peak_lr=2e-3, steps=1000, warmup_steps=20)),
        (
            "code_U_lr1x_r25_cos_1000",
            dict(family="cosine", peak_lr=2e-3, steps=1000, warmup_steps=20),
        ),
        (
            "code_U_lr1x_r25_const_1000",
            dict(family="constant", peak_lr=2e-3, steps=1000, warmup_steps=20),
        ),
        (
            "code_U_lr0.3x_r25_wsd_1000",
            dict(family="wsd", peak_lr=6e-4, steps=1000, warmup_fraction=0.02),
        ),
        (
            "code_U_lr1x_r25_wsd_2000",
            dict(family="wsd", peak_lr=2e-3, steps=2000, warmup_fraction=0.02, decay_fraction=0.2),
        ),
        (
            "code_A_lr1x_r25_cos_2000",
            dict(family="cosine", peak_lr=2e-3, steps=2000, warmup_steps=40),
        ),
    ],
)
def test_schedule_matches_logged_lr(data_dir, run_id, schedule):
    expected = logged_lr(data_dir, run_id)
    produced = Schedule(**schedule).lr_array()
    # The CSVs print 6 significant digits.
    np.testing.assert_allclose(produced, expected, rtol=1e-5, atol=1e-10)


def test_pretrain_schedule_matches_logged_lr(data_dir):
    with (data_dir / "pretrain.csv").open() as handle:
        expected = np.array([float(r["lr"]) for r in csv.DictReader(handle) if int(r["step"]) >= 1])
    produced = Schedule(
        family="wsd", peak_lr=2e-3, steps=4000, warmup_steps=80, decay_start_step=3200
    )
    np.testing.assert_allclose(produced.lr_array(), expected, rtol=1e-5, atol=1e-10)


def test_decay_shapes_end_at_their_floor():
    base = dict(family="wsd", peak_lr=1e-3, steps=100, warmup_steps=0, decay_fraction=0.5)
    cosine = Schedule(**base, decay_shape="cosine", min_lr=1e-4).lr_array()
    assert cosine[49] == pytest.approx(1e-3) and cosine[-1] == pytest.approx(1e-4)
    exponential = Schedule(**base, decay_shape="exponential").lr_array()
    assert exponential[-1] == pytest.approx(EXPONENTIAL_FLOOR_RATIO * 1e-3)
    ratios = exponential[51:] / exponential[50:-1]
    np.testing.assert_allclose(ratios, ratios[0])  # geometric
    linear = Schedule(family="linear", peak_lr=1e-3, steps=10, min_lr=1e-4).lr_array()
    np.testing.assert_allclose(np.diff(linear), -9e-5)


def test_rewarmup_starts_from_given_lr():
    lr = Schedule(
        family="constant", peak_lr=2e-3, steps=100, warmup_steps=10, warmup_start_lr=1e-3
    ).lr_array()
    np.testing.assert_allclose(lr[:10], 1e-3 + 1e-4 * np.arange(1, 11))
    assert (lr[10:] == 2e-3).all()


def test_custom_schedule_is_verbatim():
    schedule = Schedule(family="custom", lr=(1e-3, 2e-3, 0.0))
    np.testing.assert_array_equal(schedule.lr_array(), [1e-3, 2e-3, 0.0])
    assert schedule.n_steps == 3 and schedule.peak == 2e-3


@pytest.mark.parametrize(
    "bad",
    [
        dict(family="wsd", peak_lr=-1e-3, steps=10),
        dict(family="wsd", peak_lr=1e-3, steps=0),
        dict(family="wsd", peak_lr=1e-3, steps=10, warmup_steps=10),
        dict(family="wsd", peak_lr=1e-3, steps=10, warmup_steps=2, warmup_fraction=0.1),
        dict(family="cosine", peak_lr=1e-3, steps=10, min_lr=1e-3),
        dict(family="cosine", peak_lr=1e-3, steps=10, decay_fraction=0.2),
        dict(family="custom", lr=(0.0, 0.0)),
        dict(family="custom", lr=(1e-3, float("nan"))),
        dict(family="constant", steps=10),
        dict(family="wsd", peak_lr=1e-3, steps=10, surprise=1),
    ],
)
def test_invalid_schedules_are_rejected(bad):
    with pytest.raises(ValidationError):
        Schedule(**bad)


# ------------------------------------------------------------------------ step family


def test_step_schedule_reproduces_the_two_stage_runs_of_pt_mpl25():
    """pt-mpl25's wsdcon_9: 3e-4, then 9e-5 from its 0-based step 8000 (update 8001) on."""
    schedule = Schedule(
        family="step",
        peak_lr=3e-4,
        steps=16000,
        warmup_steps=2160,
        milestones=(8000,),
        step_factor=0.3,
    )
    lr = schedule.lr_array()
    assert lr.size == 16000 and lr[2159] == pytest.approx(3e-4)
    assert lr[7999] == pytest.approx(3e-4) and lr[8000] == pytest.approx(9e-5)
    assert lr[-1] == pytest.approx(9e-5) and lr[0] == pytest.approx(3e-4 / 2160)
    assert schedule.describe().endswith("x0.3 after step 8000")


def test_step_schedule_multiplies_at_every_milestone_like_multisteplr():
    schedule = Schedule(family="step", peak_lr=1.0, steps=10, milestones=(3, 6), step_factor=0.5)
    # torch MultiStepLR(milestones=[3, 6], gamma=0.5) stepped once per update gives update
    # s the factor of scheduler step s - 1: 1, 1, 1, 0.5, 0.5, 0.5, 0.25, ...
    np.testing.assert_allclose(
        schedule.lr_array(), [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"milestones": (200,)}, "must increase strictly"),
        ({"milestones": (50, 40)}, "must increase strictly"),
        ({"milestones": (5,)}, "after the warmup"),
        ({"milestones": ()}, "needs 'milestones' and 'step_factor'"),
        ({"milestones": (50,), "step_factor": None}, "needs 'milestones' and 'step_factor'"),
        ({"milestones": (50,), "min_lr": 0.1}, "'min_lr' does not apply to family 'step'"),
        ({"milestones": (50,), "step_factor": 1.5}, "step_factor"),
    ],
)
def test_bad_step_schedules_are_refused(keys, message):
    values = {"family": "step", "peak_lr": 1.0, "steps": 100, "warmup_steps": 10}
    values.update({"step_factor": 0.5, **keys})
    with pytest.raises(ValidationError, match=message):
        Schedule(**{k: v for k, v in values.items() if v is not None})


@pytest.mark.parametrize("family", ["constant", "custom"])
def test_milestones_belong_to_the_step_family(family):
    values = {"lr": (1.0, 0.5)} if family == "custom" else {"peak_lr": 1.0, "steps": 10}
    with pytest.raises(ValidationError, match="apply to family 'step' only"):
        Schedule(family=family, milestones=(3,), step_factor=0.5, **values)
