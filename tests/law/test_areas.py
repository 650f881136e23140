"""Areas against a plain-loop transcription of cpt-law.md §1 (small cases)."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest

from cptopt.law.areas import (
    Areas,
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
    assert (points.replay_ratio == 0.1).all() and points.s1_pt[0] == pytest.approx(0.1)


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.98, 0.995, 0.999])
@pytest.mark.parametrize("n", [1, 9, 5_000, 120_000])
def test_closed_form_filter_matches_scipy_lfilter(lam, n):
    from scipy.signal import lfilter

    from cptopt.law.areas import first_order_filter

    drive = np.random.default_rng(n).normal(size=n) * 1e-3
    expected, _ = lfilter([1.0], [1.0, -lam], drive, zi=[lam * 0.4])
    got = first_order_filter(drive, lam, 0.4)
    assert np.max(np.abs(got - expected)) <= 1e-9 * np.max(np.abs(expected))


def test_filter_batches_along_the_last_axis():
    from cptopt.law.areas import first_order_filter

    drive = np.random.default_rng(1).normal(size=(3, 50))
    batched = first_order_filter(drive, 0.9, np.array([0.0, 1.0, 2.0]))
    for row in range(3):
        np.testing.assert_allclose(batched[row], first_order_filter(drive[row], 0.9, float(row)))


# --------------------------------------------------------------------- drop history (mpl)


def reference_drop_sums(pt_lr, pt_warmup, checkpoint, cpt_lr, steps, kernel):
    """Plain loops: sum over every earlier drop d_k of d_k * kernel(lr_k, area since k).

    Drops as for the m-recursion: from the end of the PT warmup, the PT->CPT boundary is
    one more drop (``eta_ckpt - eta_1``), CPT re-warmup steps are negative drops.
    """
    history = list(pt_lr[:checkpoint]) + list(cpt_lr)
    drops = [0.0] * len(history)
    for i in range(pt_warmup + 1, len(history)):
        drops[i] = history[i - 1] - history[i]
    if checkpoint == 0 and cpt_lr:
        drops[0] = 0.0  # black-box mode: no PT history (the caller adds the boundary drop)
    out_pt, out_cpt = [], []
    for step in steps:
        t = checkpoint + step
        pt_sum = cpt_sum = 0.0
        for k in range(t):
            if drops[k] == 0.0:
                continue
            area = sum(history[k:t])
            value = drops[k] * kernel(history[k], area)
            if k >= checkpoint:
                cpt_sum += value
            else:
                pt_sum += value
        out_pt.append(pt_sum)
        out_cpt.append(cpt_sum)
    return np.array(out_pt), np.array(out_cpt)


def kernel_sums(history, kernel):
    per_pair = history.drop * kernel(history.lr, history.area)
    return history.phase_sums(per_pair)


def power_kernel(lr, area, rate=40.0, gamma=0.4, zeta=0.3):
    x = rate * np.power(lr, -gamma) * area
    return (1 - (1 + x) ** -zeta) / zeta


@pytest.mark.parametrize(
    ("pt", "warmup", "checkpoint", "cpt"),
    [
        # unannealed checkpoint, re-warmup from 0, WSD decay
        ([0.5, 1.0] + [1.0] * 6, 2, 8, [0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.05, 0.2]),
        # annealed checkpoint (PT decayed to 0): the re-warmup gives negative drops
        ([0.5, 1.0] + [1.0] * 4 + [0.75, 0.5, 0.25, 0.1], 2, 10, [0.5, 1.0, 1.0, 0.7]),
        # checkpoint in the middle of the PT decay
        ([0.5, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.1], 2, 6, [0.3, 0.3, 0.15]),
    ],
)
def test_drop_history_is_the_plain_loop_sum_for_short_histories(pt, warmup, checkpoint, cpt):
    """Fewer than HISTORY_EXACT_AGE updates: every drop is its own pair, sums are exact."""
    state = pretrain_areas(np.array(pt), warmup, None).state_at(checkpoint)
    steps = np.arange(len(cpt) + 1)
    areas = cpt_point_areas(np.array(cpt), steps, None, state, 0.25, history=True)
    pt_sum, cpt_sum = kernel_sums(areas.history, power_kernel)
    ref_pt, ref_cpt = reference_drop_sums(pt, warmup, checkpoint, cpt, steps, power_kernel)
    np.testing.assert_allclose(pt_sum, ref_pt, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(cpt_sum, ref_cpt, rtol=1e-12, atol=1e-15)
    assert areas.s2_cpt.tolist() == [0.0] * steps.size  # lam None: no m-recursion


def test_drop_history_of_an_unknown_pt_history_starts_at_the_boundary():
    cpt = np.array([0.5, 1.0, 1.0, 0.5])
    state = unknown_checkpoint(final_lr=0.2)
    history = cpt_point_areas(cpt, np.array([0, 2, 4]), None, state, 0.0, history=True).history
    pt_sum, cpt_sum = kernel_sums(history, power_kernel)
    assert pt_sum.tolist() == [0.0, 0.0, 0.0]
    boundary = 0.2 - 0.5  # the PT's final LR to the first CPT LR: a rise
    expected_2 = boundary * power_kernel(0.5, 1.5) + (0.5 - 1.0) * power_kernel(1.0, 1.0)
    assert cpt_sum[1] == pytest.approx(expected_2, rel=1e-12)


def test_binned_history_of_long_runs_stays_within_1e4_of_the_exact_sum():
    """A 4,000-step PT (WSD, decay to 0) then a 2,000-step cosine CPT: bins vs every drop."""
    from cptopt.schedules import Schedule

    pt = Schedule(family="wsd", peak_lr=2e-3, steps=4000, warmup_steps=80, decay_start_step=3200)
    cpt = Schedule(family="cosine", peak_lr=2e-3, steps=2000, warmup_steps=40).lr_array()
    pt_lr = pt.lr_array()
    state = pretrain_areas(pt_lr, 80, None).state_at(4000)
    steps = np.array([0, 10, 40, 100, 500, 1000, 1500, 1990, 2000])
    history = cpt_point_areas(cpt, steps, None, state, 0.25, history=True).history
    full = np.concatenate([pt_lr, cpt])
    drops = np.zeros_like(full)
    drops[81:] = full[80:-1] - full[81:]
    cum = np.concatenate([[0.0], np.cumsum(full)])
    assert history.point.size < 0.2 * sum(int((drops[: 4000 + s] != 0).sum()) for s in steps)
    for rate, gamma, zeta in [(300.0, 0.0, 0.05), (36.0, 0.4, 0.05), (7.5, 0.46, 0.17)]:

        def kernel(lr, area, rate=rate, gamma=gamma, zeta=zeta):
            return power_kernel(lr, area, rate, gamma, zeta)

        binned = np.add(*kernel_sums(history, kernel))
        exact = []
        for s in steps:
            t = 4000 + s
            k = np.flatnonzero(drops[:t])
            exact.append(
                float((drops[k] * kernel(np.maximum(full[k], 2e-9), cum[t] - cum[k])).sum())
            )
        exact = np.array(exact)
        assert np.abs(binned - exact).max() <= 1e-4 * np.abs(exact).max()


def test_rounded_lr_logs_bin_like_the_smooth_schedule():
    """A long cosine PT logged with 4 significant digits is a staircase of zero and positive
    drops; the zeros must not split bins: as few pairs as the smooth schedule, same sums."""
    from cptopt.schedules import Schedule

    pt_lr = Schedule(family="cosine", peak_lr=3e-4, steps=200_000, warmup_steps=2000).lr_array()
    rounded = np.array([float(f"{value:.4g}") for value in pt_lr])
    cpt = Schedule(family="wsd", peak_lr=1e-4, steps=1000, warmup_steps=20).lr_array()
    steps = np.array([0, 250, 500, 1000])
    sums, sizes = [], []
    for lr in (pt_lr, rounded):
        state = pretrain_areas(lr, 2000, None).state_at(lr.size)
        history = cpt_point_areas(cpt, steps, None, state, 0.25, history=True).history
        sizes.append(history.point.size)
        sums.append(np.add(*kernel_sums(history, power_kernel)))
    assert sizes[1] <= 1.5 * sizes[0]
    np.testing.assert_allclose(sums[1], sums[0], rtol=1e-3)


def test_history_follows_take_and_concatenate():
    pt = np.array([0.5, 1.0, 1.0, 1.0, 0.5, 0.25])
    state = pretrain_areas(pt, 2, None).state_at(6)
    one = cpt_point_areas(np.array([0.5, 1.0, 0.5]), np.arange(4), None, state, 0.0, history=True)
    two = cpt_point_areas(np.array([1.0, 0.2]), np.arange(3), None, state, 0.5, history=True)
    both = Areas.concatenate([one, two])
    sums = np.add(*kernel_sums(both.history, power_kernel))
    separate = np.concatenate([np.add(*kernel_sums(a.history, power_kernel)) for a in (one, two)])
    np.testing.assert_allclose(sums, separate, rtol=1e-12)
    picked = both.take(np.array([1, 4, 6]))
    np.testing.assert_allclose(
        np.add(*kernel_sums(picked.history, power_kernel)), separate[[1, 4, 6]], rtol=1e-12
    )


# ------------------------------------------------ long PT histories: shared nodes (pt_nodes)

NODE_PARAMETERS = [(300.0, 0.0, 0.05), (36.0, 0.4, 0.05), (7.5, 0.46, 0.17), (1e4, 0.8, 0.5)]


def long_pt_state(steps=60_000, warmup=600):
    """A cosine PT longer than HISTORY_NODES_MIN_PT, decaying to a tenth of its peak."""
    from cptopt.law.drops import HISTORY_NODES_MIN_PT
    from cptopt.schedules import Schedule

    assert steps >= HISTORY_NODES_MIN_PT
    pt = Schedule(family="cosine", peak_lr=3e-4, steps=steps, warmup_steps=warmup, min_lr=3e-5)
    pt_lr = pt.lr_array()
    return pt_lr, pretrain_areas(pt_lr, warmup, None).state_at(steps)


def test_long_pt_history_reaches_cpt_points_through_nodes_within_1e4_of_the_exact_sum():
    """The CPT points of a run from a 60,000-step PT hold no PT pairs of their own; their
    PT sums, interpolated from the shared nodes, stay within 1e-4 of the sum over every
    drop, as the per-point bins do (and within 1e-8 of the nodes' own bins)."""
    from cptopt.law.drops import checkpoint_bins
    from cptopt.schedules import Schedule

    pt_lr, state = long_pt_state()
    cpt = Schedule(family="wsd", peak_lr=2e-4, steps=2000, warmup_steps=40).lr_array()
    steps = np.array([0, 1, 10, 40, 100, 500, 1000, 1500, 1990, 2000])
    history = cpt_point_areas(cpt, steps, None, state, 0.25, history=True).history
    assert history.n_nodes > 0
    assert (history.point[~history.cpt] >= steps.size).all()  # every PT pair is a node's
    full = np.concatenate([pt_lr, cpt])
    drops = np.zeros_like(full)
    drops[601:] = full[600:-1] - full[601:]
    drops[pt_lr.size] = pt_lr[-1] - cpt[0]  # the boundary drop
    cum = np.concatenate([[0.0], np.cumsum(full)])
    _, bins = checkpoint_bins(state.pt_lr, state.pt_drops)
    cpt_area = np.concatenate([[0.0], np.cumsum(cpt)])[steps]
    for rate, gamma, zeta in NODE_PARAMETERS:

        def kernel(lr, area, rate=rate, gamma=gamma, zeta=zeta):
            return power_kernel(lr, area, rate, gamma, zeta)

        pt_sum, cpt_sum = kernel_sums(history, kernel)
        own_bins = [(bins.drop * kernel(bins.lr, bins.area + c)).sum() for c in cpt_area]
        np.testing.assert_allclose(pt_sum, own_bins, rtol=1e-8)
        exact = []
        for s in steps:
            t = pt_lr.size + s
            k = np.flatnonzero(drops[:t])
            lr = np.maximum(full[k], 2e-10)  # the CPT phase's LR floor (LR_FLOOR_SHARE)
            exact.append(float((drops[k] * kernel(lr, cum[t] - cum[k])).sum()))
        binned = pt_sum + cpt_sum
        assert np.abs(binned - np.array(exact)).max() <= 1e-4 * np.abs(exact).max()


def test_runs_from_a_long_pt_history_bin_their_cpt_drops_in_two_pair_bins():
    """A 20,000-step cosine from a 60,000-step PT: its CPT drops are binned as the long
    history's (HISTORY_LONG_BINS, two pairs a bin), half the pairs the one-pair bins hold
    (25,491 vs 50,247), and the CPT sums stay within 1e-4 of the largest exact CPT sum over
    every drop (measured: <= 1.8e-5; the one-pair bins 5.4e-5)."""
    from cptopt.law.drops import drop_history, lr_drops
    from cptopt.schedules import Schedule

    _, state = long_pt_state()
    cpt = Schedule(family="cosine", peak_lr=2e-4, steps=20_000, warmup_steps=200).lr_array()
    steps = np.arange(0, 20_001, 100)
    history = cpt_point_areas(cpt, steps, None, state, 0.25, history=True).history
    own = history.take(np.arange(steps.size))
    one_pair = drop_history(cpt, lr_drops(cpt, state.lr_last), steps, cpt_from=0)
    assert own.cpt.sum() < 0.6 * one_pair.point.size
    drops = lr_drops(cpt, state.lr_last)
    cum = np.concatenate([[0.0], np.cumsum(cpt)])
    lr = np.maximum(cpt, 1e-6 * cpt.max())  # the CPT phase's LR floor (LR_FLOOR_SHARE)
    for rate, gamma, zeta in NODE_PARAMETERS:

        def kernel(lr, area, rate=rate, gamma=gamma, zeta=zeta):
            return power_kernel(lr, area, rate, gamma, zeta)

        _, cpt_sum = kernel_sums(own, kernel)
        exact = np.array([(drops[:s] * kernel(lr[:s], cum[s] - cum[:s])).sum() for s in steps])
        assert np.abs(cpt_sum - exact).max() <= 1e-4 * np.abs(exact).max()


def test_runs_from_one_checkpoint_share_their_nodes_and_follow_take():
    from cptopt.schedules import Schedule

    _, state = long_pt_state()
    runs = [
        Schedule(family="wsd", peak_lr=2e-4, steps=1000, warmup_steps=20).lr_array(),
        Schedule(family="cosine", peak_lr=1e-4, steps=600, warmup_steps=20).lr_array(),
    ]
    parts = [
        cpt_point_areas(lr, np.arange(0, lr.size + 1, 50), None, state, 0.25, history=True)
        for lr in runs
    ]
    both = Areas.concatenate(parts)
    keys = [key for part in parts for key in part.history.node_keys]
    assert both.history.n_nodes == len(set(keys)) < len(keys)  # shared nodes held once
    assert (both.history.point < both.history.n_points + both.history.n_nodes).all()
    sums = np.add(*kernel_sums(both.history, power_kernel))
    separate = np.concatenate([np.add(*kernel_sums(p.history, power_kernel)) for p in parts])
    np.testing.assert_allclose(sums, separate, rtol=1e-12)
    for history in (both.history, both.history.by_phase):
        picked = history.take(np.array([1, 4, 25, 30]))
        np.testing.assert_allclose(
            np.add(*kernel_sums(picked, power_kernel)), separate[[1, 4, 25, 30]], rtol=1e-12
        )
    indexed = replace(both.history, index=np.array([3, 3, 0]))  # as the search shares them
    np.testing.assert_allclose(
        np.add(*kernel_sums(indexed, power_kernel)), separate[[3, 3, 0]], rtol=1e-12
    )
    np.testing.assert_allclose(
        np.add(*kernel_sums(indexed.resolved(), power_kernel)), separate[[3, 3, 0]], rtol=1e-12
    )
    restored = pickle.loads(pickle.dumps(both.history))
    np.testing.assert_array_equal(np.add(*kernel_sums(restored, power_kernel)), sums)


def test_short_pt_histories_keep_each_points_own_bins():
    """Below HISTORY_NODES_MIN_PT (the bundled PT histories: 4,000 updates) nothing changes."""
    from cptopt.schedules import Schedule

    pt_lr = Schedule(family="wsd", peak_lr=2e-3, steps=4000, warmup_steps=80).lr_array()
    state = pretrain_areas(pt_lr, 80, None).state_at(4000)
    cpt = Schedule(family="cosine", peak_lr=2e-3, steps=1000, warmup_steps=40).lr_array()
    history = cpt_point_areas(cpt, np.arange(0, 1001, 100), None, state, 0.0, history=True)
    assert history.history.n_nodes == 0
    assert (~history.history.cpt).any()


def test_a_checkpoints_state_is_built_once_and_names_its_nodes_by_content():
    """Every run from a checkpoint gets the same state object, which hashes the PT updates
    once; the name is the content's, so a copy of the history names the same nodes."""
    from cptopt.law.drops import pt_digest

    pt_lr, state = long_pt_state()
    areas = pretrain_areas(pt_lr, 600, None)
    first = areas.state_at(pt_lr.size)
    assert areas.state_at(pt_lr.size) is first
    assert first.pt_key == state.pt_key == pt_digest(pt_lr, areas.drops)
    assert areas.state_at(pt_lr.size - 1).pt_key != first.pt_key


@pytest.mark.parametrize("long_pt", [True, False])
def test_points_of_runs_sharing_a_schedule_are_held_once_with_the_same_sums(long_pt):
    """A replay sweep's runs share their schedule, so their points see the same drops:
    ``shared`` keeps one copy of each such point (``index``), and every sum, of the whole
    set and of a subset (a CV fold), is the plain history's to rounding (1e-15: the same
    pairs in the same order, so in fact the same bits)."""
    from cptopt.schedules import Schedule

    if long_pt:
        _, state = long_pt_state()
    else:
        pt_lr = Schedule(family="wsd", peak_lr=2e-3, steps=4000, warmup_steps=80).lr_array()
        state = pretrain_areas(pt_lr, 80, None).state_at(4000)
    wsd = Schedule(family="wsd", peak_lr=2e-4, steps=1000, warmup_steps=20).lr_array()
    cosine = Schedule(family="cosine", peak_lr=1e-4, steps=600, warmup_steps=20).lr_array()
    runs = [(wsd, 0.25), (cosine, 0.25), (wsd, 0.5)]
    parts = [
        cpt_point_areas(lr, np.arange(0, lr.size + 1, 50), None, state, r, history=True)
        for lr, r in runs
    ]
    plain = Areas.concatenate(parts).history.by_phase
    shared = plain.shared()
    assert shared.index is not None and (plain.n_nodes > 0) == long_pt
    # the third run's points, and the checkpoint's (step 0) of the second
    assert shared.n_points == plain.n_points - parts[2].s1_pt.size - 1
    assert shared.point.size < plain.point.size
    for subset in (slice(None), np.arange(plain.n_points) % 3 != 1):
        a, b = plain.take(subset), shared.take(subset)
        assert b.point.size < a.point.size
        for got, want in zip(
            kernel_sums(b, power_kernel), kernel_sums(a, power_kernel), strict=True
        ):
            assert np.abs(want).max() > 0
            np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    assert parts[0].history.by_phase.shared().index is None  # one run: no two points alike


def test_points_alike_only_at_their_ends_are_not_shared():
    """Twin points are found from their ends and then compared pair by pair: a point whose
    middle pair differs keeps its own pairs, an exact copy is shared."""
    from cptopt.law.drops import DropHistory

    drop = np.array([1.0, 2.0, 3.0, 1.0, 2.5, 3.0, 1.0, 2.0, 3.0])
    history = DropHistory(
        point=np.repeat([0, 1, 2], 3),
        drop=drop,
        lr=np.full(9, 0.5),
        area=np.tile([3.0, 2.0, 1.0], 3),
        cpt=np.zeros(9, bool),
        n_points=3,
    )
    shared = history.shared()
    assert shared.n_points == 2 and shared.index.tolist() == [0, 1, 0]
    values = history.drop * history.area
    np.testing.assert_allclose(
        shared.phase_sums(shared.drop * shared.area)[0], history.phase_sums(values)[0], rtol=1e-15
    )


# ------------------------------------------- long PT histories: the PT-phase points' bins


@pytest.fixture(scope="module")
def pt_1m():
    """The PT history of benchmarks/scale.py's fit case: a 1M-step cosine, warmup 2,000,
    peak 3e-4 to 3e-5, its LRs logged with 6 significant digits."""
    steps, warmup, peak, floor = 1_000_000, 2_000, 3e-4, 3e-5
    s = np.arange(1, steps + 1, dtype=float)
    progress = np.clip((s - warmup) / (steps - warmup), 0.0, 1.0)
    decay = floor + (peak - floor) * 0.5 * (1 + np.cos(np.pi * progress))
    lr = np.char.mod("%.6g", np.where(s < warmup, peak * s / warmup, decay)).astype(float)
    return pretrain_areas(lr, warmup - 1, None)


def exact_pt_sums(areas, steps, kernel):
    """Sum over every drop before each point of ``drop * kernel(LR, area since)``."""
    from cptopt.law.drops import LR_FLOOR_SHARE

    cum = np.concatenate([[0.0], np.cumsum(areas.lr)])
    lr = np.maximum(areas.lr, LR_FLOOR_SHARE * areas.lr.max())
    nonzero = np.flatnonzero(areas.drops)
    sums = []
    for t in steps:
        k = nonzero[nonzero < t]
        sums.append(float((areas.drops[k] * kernel(lr[k], cum[t] - cum[k])).sum()))
    return np.array(sums)


def test_pt_points_of_a_1m_step_history_stay_within_1e4_of_the_exact_sums(pt_1m):
    """The 1M case's 751 PT-phase points (every 1,000 steps from 250,000) hold ~66 pairs
    each (two-pair bins, HISTORY_LONG_BINS; ~240 with the one-pair bins), and their sums
    stay within 1e-4 of the largest exact sum over every drop (measured on all 751 points:
    <= 4.4e-6; age ratio 2.0 instead of 1.5: ~51 pairs, 8.2e-6; the one-pair bins 2.0e-5),
    checked here on a spread of them and on points before 250,000."""
    steps = np.arange(250_000, 1_000_001, 1_000)
    history = pt_1m.history_at(steps)
    assert history.point.size < 70 * steps.size
    picked = np.r_[0, np.arange(1, steps.size, 50), steps.size - 1]
    early = np.array([2_100, 20_000, 120_000])
    for part, at in ((history.take(picked), steps[picked]), (pt_1m.history_at(early), early)):
        for rate, gamma, zeta in NODE_PARAMETERS:

            def kernel(lr, area, rate=rate, gamma=gamma, zeta=zeta):
                return power_kernel(lr, area, rate, gamma, zeta)

            binned, cpt_sum = kernel_sums(part, kernel)
            assert not cpt_sum.any()
            exact = exact_pt_sums(pt_1m, at, kernel)
            assert np.abs(binned - exact).max() <= 1e-4 * np.abs(exact).max()


def test_two_pair_bins_keep_each_points_drops_mean_area_and_spread():
    """Per point, the pairs of a long history carry the drops' total and drop-weighted mean
    area as every drop does (to rounding), and their spread (to the young bins', which the
    cumulative sums do not resolve and the pairs leave out)."""
    pt_lr, _ = long_pt_state()
    areas = pretrain_areas(pt_lr, 600, None)
    steps = np.array([700, 5_000, 30_000, 59_999, 60_000])
    history = areas.history_at(steps)
    cum = np.concatenate([[0.0], np.cumsum(pt_lr)])
    for j, t in enumerate(steps):
        mine = history.point == j
        drop, area = history.drop[mine], history.area[mine]
        exact_drop, exact_area = areas.drops[:t], cum[t] - cum[:t]
        assert drop.sum() == pytest.approx(exact_drop.sum(), rel=1e-12)
        mean = (drop * area).sum() / drop.sum()
        assert mean == pytest.approx((exact_drop * exact_area).sum() / exact_drop.sum(), rel=1e-9)
        second = (drop * (area - mean) ** 2).sum()
        assert second == pytest.approx((exact_drop * (exact_area - mean) ** 2).sum(), rel=1e-4)


def test_only_long_pt_histories_bin_their_pt_points_coarser():
    """Below HISTORY_NODES_MIN_PT (the bundled PT histories: 4,000 updates) the PT-phase
    points keep the one-pair bins, bit for bit; from it on, the two-pair ones."""
    from cptopt.law.drops import drop_history
    from cptopt.schedules import Schedule

    short = Schedule(family="wsd", peak_lr=2e-3, steps=4000, warmup_steps=80).lr_array()
    long_lr, _ = long_pt_state()
    for lr, warmup, long in ((short, 80, False), (long_lr, 600, True)):
        areas = pretrain_areas(lr, warmup, None)
        steps = np.arange(lr.size // 4, lr.size + 1, lr.size // 40)
        got = areas.history_at(steps)
        want = drop_history(areas.lr, areas.drops, steps, cpt_from=None, long=long)
        plain = drop_history(areas.lr, areas.drops, steps, cpt_from=None)
        for name in ("point", "drop", "lr", "area"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        assert (got.point.size < plain.point.size / 2) == long
