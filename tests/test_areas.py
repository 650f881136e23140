"""Areas against a plain-loop transcription of cpt-law.md §1 (small cases)."""

from __future__ import annotations

import numpy as np
import pytest

from cptopt.areas import (
    annealing_momentum,
    cpt_areas,
    cpt_point_areas,
    pretrain_areas,
    unknown_checkpoint,
)


def reference_areas(pt_lr, pt_warmup, checkpoint, cpt_lr, lam):
    """Plain loops, as written in the doc: m starts at the end of PT warmup, no reset."""
    history = list(pt_lr[:checkpoint]) + list(cpt_lr)
    s1 = s2 = 0.0
    m = 0.0
    previous = None
    s1_list, s2_list = [], []
    for step, eta in enumerate(history, start=1):
        s1 += eta
        if step > pt_warmup:
            if previous is None:
                previous = eta  # eta_0 := first post-warmup LR
            m = lam * m + (previous - eta)
            previous = eta
            s2 += m
        s1_list.append(s1)
        s2_list.append(s2)
    return np.array(s1_list), np.array(s2_list)


def check(pt_lr, pt_warmup, checkpoint, cpt_lr, lam):
    s1_ref, s2_ref = reference_areas(pt_lr, pt_warmup, checkpoint, cpt_lr, lam)
    state = pretrain_areas(np.array(pt_lr), pt_warmup, lam).state_at(checkpoint)
    s1_cpt, s2_cpt = cpt_areas(np.array(cpt_lr), lam, state)
    assert state.s1_pt == pytest.approx(s1_ref[checkpoint - 1], rel=1e-12)
    assert state.s2_pt == pytest.approx(s2_ref[checkpoint - 1], rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(state.s1_pt + s1_cpt, s1_ref[checkpoint:], rtol=1e-12)
    np.testing.assert_allclose(state.s2_pt + s2_cpt, s2_ref[checkpoint:], rtol=1e-10, atol=1e-14)
    return s1_cpt, s2_cpt


def test_rewarmup_after_unannealed_checkpoint():
    pt = [0.5, 1.0] + [1.0] * 6 + [0.75, 0.5, 0.25, 0.0]
    cpt = [0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.0]
    check(pt, pt_warmup=2, checkpoint=8, cpt_lr=cpt, lam=0.9)


def test_carry_over_after_annealed_checkpoint_gives_stability_gap():
    pt = [0.5, 1.0] + [1.0] * 4 + [0.75, 0.5, 0.25, 0.0]
    cpt = [0.5, 1.0, 1.0, 1.0]
    _, s2_cpt = check(pt, pt_warmup=2, checkpoint=10, cpt_lr=cpt, lam=0.9)
    # The PT decay left m > 0; re-warming up from LR 0 drives it negative from step 2 on:
    # S2cpt then falls (the loss rises), unlike a run that stays at LR 0.
    assert s2_cpt[0] > 0
    assert (np.diff(s2_cpt) < 0).all()
    state = pretrain_areas(np.array(pt), 2, 0.9).state_at(10)
    _, s2_idle = cpt_areas(np.zeros(4), 0.9, state)
    assert (s2_cpt < s2_idle).all()


def test_momentum_matches_loop_with_prior_state():
    lr = np.array([0.3, 0.2, 0.4, 0.1])
    momentum = annealing_momentum(lr, 0.8, lr_before=0.5, momentum_before=0.7)
    expected, m, previous = [], 0.7, 0.5
    for eta in lr:
        m = 0.8 * m + previous - eta
        previous = eta
        expected.append(m)
    np.testing.assert_allclose(momentum, expected)


def test_unknown_history_starts_from_final_lr_with_zero_momentum():
    state = unknown_checkpoint(final_lr=0.2)
    cpt = np.array([0.1, 0.1, 0.3])
    s1, s2 = cpt_areas(cpt, 0.5, state)
    np.testing.assert_allclose(s1, [0.1, 0.2, 0.5])
    m1 = 0.2 - 0.1
    m2 = 0.5 * m1
    m3 = 0.5 * m2 + (0.1 - 0.3)
    np.testing.assert_allclose(s2, np.cumsum([m1, m2, m3]))
    points = cpt_point_areas(cpt, np.array([0, 3]), 0.5, state, 0.25)
    assert not points.checkpoint_known.any() and points.s1_pt.tolist() == [0.0, 0.0]


def test_a_drop_eventually_adds_drop_over_one_minus_lambda():
    lam, drop = 0.99, 1e-3
    lr = np.concatenate([[2e-3], np.full(20_000, 2e-3 - drop)])
    s2 = np.cumsum(annealing_momentum(lr, lam, lr_before=2e-3))
    assert s2[-1] == pytest.approx(drop / (1 - lam), rel=1e-6)


def test_point_areas_at_step_zero_are_the_checkpoint():
    pt = pretrain_areas(np.full(100, 1e-3), 0, 0.99)
    state = pt.state_at(100)
    points = cpt_point_areas(np.full(10, 1e-3), np.array([0, 5, 10]), 0.99, state, 0.1)
    assert points.s1_cpt[0] == 0 and points.s2_cpt[0] == 0
    assert points.s1_cpt[2] == pytest.approx(1e-2)
    assert (points.replay == 0.1).all() and points.s1_pt[0] == pytest.approx(0.1)


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.98, 0.995, 0.999])
@pytest.mark.parametrize("n", [1, 9, 5_000, 120_000])
def test_closed_form_filter_matches_scipy_lfilter(lam, n):
    from scipy.signal import lfilter

    from cptopt.areas import first_order_filter

    drive = np.random.default_rng(n).normal(size=n) * 1e-3
    expected, _ = lfilter([1.0], [1.0, -lam], drive, zi=[lam * 0.4])
    got = first_order_filter(drive, lam, 0.4)
    assert np.max(np.abs(got - expected)) <= 1e-9 * np.max(np.abs(expected))


def test_filter_batches_along_the_last_axis():
    from cptopt.areas import first_order_filter

    drive = np.random.default_rng(1).normal(size=(3, 50))
    batched = first_order_filter(drive, 0.9, np.array([0.0, 1.0, 2.0]))
    for row in range(3):
        np.testing.assert_allclose(batched[row], first_order_filter(drive[row], 0.9, float(row)))
