"""The anneal-depth gap: how far a pre-training schedule anneals away from its pilots."""

from __future__ import annotations

import numpy as np
import pytest

from cptopt.law.anneal_coverage import anneal_path, anneal_state, depth_gap
from cptopt.schedules import Schedule

COMMON = {"peak_lr": 3e-4, "warmup_steps": 100}
CONSTANT = Schedule(family="constant", steps=1000, **COMMON).lr_array()
TWO_STAGE = Schedule(
    family="step", steps=1000, milestones=(500,), step_factor=0.3, **COMMON
).lr_array()


def test_state_is_the_forward_area_and_the_share_of_the_peak_taken_away():
    s1, depth = anneal_state(TWO_STAGE, np.array([1, 500, 501, 1000]))
    np.testing.assert_allclose(s1, np.cumsum(TWO_STAGE)[[0, 499, 500, 999]], rtol=1e-12)
    np.testing.assert_allclose(depth, [1 - 3e-6 / 3e-4, 0.0, 0.7, 0.7], atol=1e-12)


def test_a_path_starts_after_the_warmup_ends_at_the_last_step_and_is_bounded():
    s1, depth = anneal_path(TWO_STAGE, 100, points=50)
    assert s1.size == 50 and np.all(np.diff(s1) > 0)
    assert s1[0] == pytest.approx(np.cumsum(TWO_STAGE)[100], rel=1e-12)  # step 101
    assert s1[-1] == pytest.approx(TWO_STAGE.sum(), rel=1e-12) and depth[-1] == pytest.approx(0.7)


def test_the_gap_is_the_depth_to_the_nearest_pilot_at_the_same_forward_area():
    paths = [anneal_path(CONSTANT, 100), anneal_path(TWO_STAGE, 100)]
    # a pilot's own points have no gap
    s1, depth = anneal_state(TWO_STAGE, np.array([300, 800]))
    np.testing.assert_allclose(depth_gap(s1, depth, paths), 0.0, atol=1e-12)
    # a drop to 0.1 x peak where the nearest pilot dropped to 0.3 x: 0.2 of the peak
    deeper = Schedule(
        family="step", steps=1000, milestones=(500,), step_factor=0.1, **COMMON
    ).lr_array()
    s1, depth = anneal_state(deeper, np.array([300, 700]))
    # at step 700 the deeper run has less area than the two-stage pilot at its step 700:
    # compared at equal area, the pilot is still at depth 0.7 (after its own drop)
    np.testing.assert_allclose(depth_gap(s1, depth, paths), [0.0, 0.2], atol=1e-9)
    # only a constant pilot: the whole depth is the gap
    np.testing.assert_allclose(depth_gap(s1, depth, paths[:1]), [0.0, 0.9], atol=1e-9)
    # beyond a pilot's end its last depth counts
    far = depth_gap(np.array([1e3]), np.array([0.7]), paths)
    assert far == pytest.approx([0.0], abs=1e-12)
    assert depth_gap(s1, depth, []).tolist() == [0.0, 0.0]
