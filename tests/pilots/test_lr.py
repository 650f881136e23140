"""The per-update LR from the LR points a log holds (``cptopt.pilots.logs._lr``).

Schedules are generated here as the libraries run them (transformers' LambdaLR lambdas,
cptopt's own schedules); the real-library logs are tested in ``test_real_logs.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from cptopt.pilots.logs import Series, lr_per_step, torch_convention
from cptopt.schedules import Schedule


def s1_error(per_step: np.ndarray, truth: np.ndarray) -> float:
    return abs(per_step.sum() / truth.sum() - 1)


def _hf_lambda(kind: str, x: np.ndarray, warmup: int, total: int, **kw) -> np.ndarray:
    """transformers' schedule lambdas (optimization.py), vectorised, at scheduler step x."""
    ramp = x / max(1, warmup)
    progress = (x - warmup) / max(1, total - warmup)
    if kind == "constant_with_warmup":
        after = np.ones_like(x)
    elif kind == "linear":
        after = np.maximum(0.0, (total - x) / max(1, total - warmup))
    elif kind == "cosine":
        after = np.maximum(0.0, 0.5 * (1 + np.cos(np.pi * progress)))
    elif kind == "cosine_with_min_lr":
        rate = kw["min_lr_rate"]
        after = np.maximum(0.0, 0.5 * (1 + np.cos(np.pi * progress))) * (1 - rate) + rate
    elif kind == "inverse_sqrt":
        scale = warmup or 10_000
        after = 1 / np.sqrt(np.maximum(x + scale - warmup, 1) / scale)
    else:  # warmup_stable_decay, cosine decay
        decay, rate = kw["num_decay_steps"], kw.get("min_lr_ratio", 0.0)
        start = total - decay
        prog = (x - start) / decay
        value = 0.5 * (1 + np.cos(np.pi * np.clip(prog, 0, 1)))
        after = np.where(x < start, 1.0, (1 - rate) * value + rate)
    return np.where(x < warmup, ramp, after)


HF_CASES = [
    ("constant_with_warmup", 37, 500, {}),
    ("linear", 20, 400, {}),
    ("cosine", 0, 300, {}),
    ("cosine", 64, 1000, {}),
    ("cosine_with_min_lr", 25, 600, {"min_lr_rate": 0.1}),
    ("inverse_sqrt", 30, 500, {}),
    ("warmup_stable_decay", 20, 800, {"num_decay_steps": 160, "min_lr_ratio": 0.05}),
]


@pytest.mark.parametrize(("kind", "warmup", "total", "kw"), HF_CASES)
@pytest.mark.parametrize("every", [1, 10, 50])
def test_sparse_points_of_hf_schedules(kind, warmup, total, kw, every):
    """HF schedules run by LambdaLR (update s at step s - 1), logged every k updates."""
    true = 2e-3 * _hf_lambda(kind, np.arange(total, dtype=float), warmup, total, **kw)
    steps = np.arange(every, total + 1, every)
    estimate = lr_per_step(Series(steps, true[steps - 1]), total)
    error = s1_error(estimate.per_step, true)
    if estimate.s1_bound == 0:
        assert error < 1e-3, estimate.description
    else:
        assert error <= estimate.s1_bound + 1e-12, estimate.description
    if every == 1:
        assert estimate.source == "logged"
    if every == 10 or (every == 50 and warmup >= 50):
        assert estimate.source in ("logged", "matched"), estimate.description
    if estimate.source == "matched":
        assert "PyTorch/HF step convention" in estimate.description
        np.testing.assert_allclose(estimate.per_step, true, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule(family="wsd", peak_lr=1e-3, steps=1000, warmup_steps=20, decay_fraction=0.2),
        Schedule(family="cosine", peak_lr=1e-3, steps=700, warmup_steps=70, min_lr=1e-4),
        Schedule(family="linear", peak_lr=3e-4, steps=300, warmup_steps=0),
        Schedule(family="wsd", peak_lr=1e-3, steps=500, warmup_steps=10, decay_shape="cosine"),
        Schedule(family="wsd", peak_lr=1e-3, steps=600, warmup_steps=30, min_lr=1e-4),
    ],
)
def test_sparse_points_of_cptopt_schedules(schedule):
    true = schedule.lr_array()
    steps = np.concatenate(([1], np.arange(10, schedule.n_steps + 1, 10)))
    estimate = lr_per_step(Series(steps, true[steps - 1]), schedule.n_steps)
    assert estimate.source == "matched", estimate.description
    assert estimate.s1_bound == 0
    assert "cptopt step convention" in estimate.description
    np.testing.assert_allclose(estimate.per_step, true, atol=1e-9)


def test_one_minus_sqrt_decay_is_matched():
    """WSD with a 1-sqrt cooldown (Hagele et al. 2024), cptopt's step convention."""
    step = np.arange(1, 801, dtype=float)
    progress = np.clip((step - 600) / 200, 0, 1)
    true = 1e-3 * np.where(step <= 20, step / 20, 1 - np.sqrt(progress))
    steps = np.concatenate(([1], np.arange(10, 801, 10)))
    estimate = lr_per_step(Series(steps, true[steps - 1]), 800)
    assert estimate.source == "matched" and "WSD 1-sqrt decay" in estimate.description
    np.testing.assert_allclose(estimate.per_step, true, atol=1e-9)


def test_decay_ends_at_the_schedules_length_not_the_last_logged_step():
    """A run stopped early (HF max_steps 1000, logged to 400): the cosine ends at 1000."""
    true = 1e-3 * _hf_lambda("cosine", np.arange(1000, dtype=float), 10, 1000)
    steps = np.arange(10, 401, 10)
    points = Series(steps, true[steps - 1])
    estimate = lr_per_step(points, 400, schedule_steps=1000)
    assert estimate.source == "matched" and "over 1000 steps" in estimate.description
    np.testing.assert_allclose(estimate.per_step, true[:400], rtol=0, atol=1e-9)
    assert lr_per_step(points, 400).source == "interpolated"  # a cosine over 400 does not fit


def test_unknown_family_is_interpolated_with_a_covering_bound():
    """Exponential decay, step decay: no family fits; the envelope bound covers the error."""
    total = 600
    exponential = Schedule(
        family="wsd",
        peak_lr=1e-3,
        steps=total,
        warmup_steps=15,
        decay_shape="exponential",
        decay_fraction=0.5,
    ).lr_array()
    stepwise = np.where(np.arange(1, total + 1) <= 250, 1e-3, 3e-4)
    for true in (exponential, stepwise):
        steps = np.arange(25, total + 1, 25)
        estimate = lr_per_step(Series(steps, true[steps - 1]), total)
        assert estimate.source == "interpolated"
        assert "no known schedule family fits" in estimate.description
        assert s1_error(estimate.per_step, true) <= estimate.s1_bound
        np.testing.assert_allclose(estimate.per_step[steps - 1], true[steps - 1])


def test_warmup_between_points_gives_the_largest_s1_error_of_the_schedules_that_fit():
    """Constant after a warmup shorter than the logging interval: every warmup < 50 fits."""
    true = 3e-3 * _hf_lambda("constant_with_warmup", np.arange(200, dtype=float), 10, 200)
    steps = np.arange(50, 201, 50)
    estimate = lr_per_step(Series(steps, true[steps - 1]), 200)
    assert estimate.source == "interpolated" and "several schedules fit them" in (
        estimate.description
    )
    np.testing.assert_allclose(estimate.per_step, 3e-3)  # held flat before the first point
    longest = 3e-3 * _hf_lambda("constant_with_warmup", np.arange(200, dtype=float), 49, 200)
    assert estimate.s1_bound == pytest.approx(s1_error(estimate.per_step, longest), rel=0.02)


def test_points_at_step_0_and_every_update():
    """A point at step 0 (before any update) is not an update's LR; all updates: as logged."""
    values = np.linspace(1e-3, 0, 101)
    estimate = lr_per_step(Series(np.arange(101), values), 100)
    assert estimate.source == "logged" and estimate.s1_bound == 0
    np.testing.assert_array_equal(estimate.per_step, values[1:])


def test_torch_convention_shifts_by_one_update():
    per_step = np.array([0.1, 0.2, 0.3])
    np.testing.assert_array_equal(torch_convention(per_step, 0.0), [0.0, 0.1, 0.2])
