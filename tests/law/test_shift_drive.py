"""What drives the shift term: the LR area, its repetition discount, and a power of the LR;
and the frozen domain forward area."""

from __future__ import annotations

import numpy as np
import pytest

from cptopt.law.areas import (
    REPETITION_RSTAR,
    Areas,
    StepLRs,
    cpt_point_areas,
    repetition_weights,
    unknown_checkpoint,
)
from cptopt.law.forms import FORMS, make_law


def _run_areas(rng: np.random.Generator, n_runs: int = 3, reference: float = 2e-3) -> Areas:
    """Points of a few runs with varied per-step LRs, their steps recorded."""
    parts = []
    for _ in range(n_runs):
        lr = rng.uniform(2e-4, 3e-3, int(rng.integers(50, 120)))
        lr[:5] = np.linspace(0.0, lr[5], 5)  # a warmup from 0
        steps = np.unique(rng.integers(0, lr.size + 1, 8))
        parts.append(
            cpt_point_areas(
                lr,
                steps,
                None,
                unknown_checkpoint(),
                float(rng.choice([0.0, 0.25, 0.5])),
                tokens_per_step=1000.0,
                domain_tokens=30_000.0,
                lr_reference=reference,
            )
        )
    areas = Areas.concatenate(parts)
    return Areas(
        np.full(len(areas), 5.0),
        np.zeros(len(areas)),
        areas.s1_cpt,
        areas.s2_cpt,
        areas.replay_ratio,
        np.ones(len(areas), bool),
        areas.s1_shift,
        steps=areas.steps,
    )


def test_power_sums_at_q_1_are_the_areas():
    areas = _run_areas(np.random.default_rng(0))
    assert areas.steps is not None
    plain, _ = areas.steps.power_sums(np.array(1.0), weighted=False)
    weighted, _ = areas.steps.power_sums(np.array(1.0), weighted=True)
    np.testing.assert_allclose(plain, areas.s1_cpt, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(weighted, areas.s1_shift, rtol=1e-12, atol=1e-15)
    assert (areas.s1_shift <= areas.s1_cpt + 1e-15).all()
    assert (areas.s1_shift < areas.s1_cpt).any()  # some steps repeat the 30k-token corpus


def test_power_sums_by_hand_and_derivative():
    lr = np.array([1e-3, 2e-3, 0.0, 4e-3])
    steps = StepLRs.of_run(lr, np.array([0, 2, 4]), None, reference=2e-3)
    q = 0.7
    value, derivative = steps.power_sums(np.array(q), weighted=False)
    by_hand = 2e-3 * np.array([0.0, 0.5**q + 1.0, 0.5**q + 1.0 + 2.0**q])
    np.testing.assert_allclose(value, by_hand, rtol=1e-14)
    bumped, _ = steps.power_sums(np.array(q + 1e-7), weighted=False)
    np.testing.assert_allclose(derivative, (bumped - value) / 1e-7, rtol=1e-5, atol=1e-12)
    # a batch of q values (jackknife replicas) evaluates at once
    batch, _ = steps.power_sums(np.array([[q], [1.0]]), weighted=False)
    np.testing.assert_allclose(batch[0], value, rtol=1e-14)


def test_scaled_unit_shapes_equal_the_run_itself():
    """The search's view (unit shape, scale = peak / reference) is the run's own sum."""
    shape = np.concatenate([np.linspace(0.1, 1.0, 10), np.ones(30), np.linspace(1.0, 0.0, 20)])
    peak, reference, q = 1.5e-3, 2e-3, 0.6
    run = StepLRs.of_run(peak * shape, np.array([shape.size]), None, reference)
    unit = StepLRs(
        shape,
        np.ones(shape.size),
        np.array([0]),
        np.array([shape.size]),
        np.array([peak / reference]),
        reference,
    )
    expected = run.power_sums(np.array(q), weighted=False)
    for got, want in zip(unit.power_sums(np.array(q), weighted=False), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_repetition_weights_follow_data_constrained_scaling():
    assert repetition_weights(100, 0.5, 1000, 1e6) is None  # 50k tokens of a 1M corpus
    assert repetition_weights(100, 0.5, None, 1e6) is None
    weights = repetition_weights(4000, 0.0, 1000, 1e6)
    assert weights is not None
    np.testing.assert_array_equal(weights[:1000], 1.0)  # first epoch: fresh
    # step 3000 repeats the corpus for the 2nd extra time: worth exp(-2 / R*)
    assert weights[2999] == pytest.approx(np.exp(-2.0 / REPETITION_RSTAR))


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("validation_set", ["general", "domain"])
@pytest.mark.parametrize("frozen", [False, True])
def test_lr_power_jacobian_matches_finite_differences(form, validation_set, frozen, jacobian_check):
    law = make_law(
        form,
        validation_set,
        replay_terms=True,
        checkpoint_known=True,
        annealing="s2",
        domain_forward="frozen" if frozen else "advance",
        lr_power=True,
    )
    assert "q" in law.names and law.needs_steps
    rng = np.random.default_rng(5)
    areas = _run_areas(rng)
    jacobian_check(law, areas, rng)


def test_lr_power_at_q_1_is_the_area_law():
    areas = _run_areas(np.random.default_rng(2))
    for validation_set in ("general", "domain"):
        area = make_law("odds", validation_set, True, True, "s2")
        power = make_law("odds", validation_set, True, True, "s2", lr_power=True)
        values = {spec.name: (spec.start_low + spec.start_high) / 2 for spec in area.specs}
        values.update(L0=2.0, A=0.5, C1=0.1, C2=0.2, Bbeta=-0.3, q=1.0)
        plain = area.evaluate(np.array([values[n] for n in area.names]), areas)
        powered = power.evaluate(np.array([values[n] for n in power.names]), areas)
        np.testing.assert_allclose(powered, plain, rtol=1e-12)


def test_frozen_domain_forward_keeps_the_checkpoint_value():
    law = make_law("exp", "domain", False, True, domain_forward="frozen")
    advance = make_law("exp", "domain", False, True)
    areas = Areas(np.full(2, 10.0), np.zeros(2), np.array([0.0, 5.0]), np.zeros(2), np.zeros(2))
    values = np.array([{"L0": 1.0, "A": 2.0, "alpha": 0.5}.get(n, 0.0) for n in law.names])
    values[law.names.index("E")], values[law.names.index("beta")] = 1.0, 0.5
    # no shift, no credit: flat (to rounding: the terms are summed in float)
    assert np.ptp(law.evaluate(values, areas)) == pytest.approx(0.0, abs=1e-12)
    assert np.ptp(advance.evaluate(values, areas)) > 0.0
    general = make_law("exp", "general", False, True, domain_forward="frozen")
    assert not general.frozen_forward  # frozen concerns the domain law only
    with pytest.raises(ValueError, match="domain_forward"):
        make_law("exp", "domain", False, True, domain_forward="sideways")


def test_lr_power_needs_the_steps():
    law = make_law("exp", "general", False, True, lr_power=True)
    areas = Areas(np.ones(1), np.zeros(1), np.ones(1), np.zeros(1), np.zeros(1))
    values = np.array([(s.start_low + s.start_high) / 2 for s in law.specs])
    with pytest.raises(ValueError, match="per-step LRs"):
        law.evaluate(values, areas)


def test_compact_steps_give_the_same_sums():
    areas = _run_areas(np.random.default_rng(7))
    assert areas.steps is not None
    constant = Areas.concatenate(
        [
            areas,
            cpt_point_areas(
                np.full(500, 1e-3),
                np.array([100, 400, 500]),
                None,
                unknown_checkpoint(),
                0.0,
                lr_reference=2e-3,
            ),
        ]
    ).steps
    assert constant is not None
    compact = constant.compact()
    assert compact.lr.size < constant.lr.size - 400  # the constant run: one entry per segment
    for q in (0.5, 1.0, 1.7):
        for weighted in (False, True):
            for got, want in zip(
                compact.power_sums(np.array(q), weighted),
                constant.power_sums(np.array(q), weighted),
                strict=True,
            ):
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    index = np.array([0, 3, 5])
    np.testing.assert_allclose(
        compact.take(index).power_sums(np.array(0.8), True)[0],
        constant.take(index).power_sums(np.array(0.8), True)[0],
        rtol=1e-12,
    )


def test_power_sums_kept_for_the_last_q_are_the_fresh_sums():
    """The loss then the Jacobian at one q: the second call reuses the first's sums, which
    must equal a fresh computation and must not be writable (a caller sharing them)."""
    areas = _run_areas(np.random.default_rng(3))
    assert areas.steps is not None
    first = areas.steps.power_sums(np.array([0.8]), weighted=True)
    again = areas.steps.power_sums(0.8, weighted=True)  # the Jacobian passes a float
    assert again[0] is first[0]
    assert not again[0].flags.writeable
    fresh = StepLRs(
        *(getattr(areas.steps, f) for f in ("lr", "weight", "start", "stop")),
        areas.steps.scale,
        areas.steps.reference,
        areas.steps.count,
    )
    expected = fresh.power_sums(np.array([0.8]), weighted=True)
    np.testing.assert_allclose(again[0], expected[0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(again[1], expected[1], rtol=1e-15, atol=0)
    other = areas.steps.power_sums(0.8, weighted=False)  # another key: recomputed
    assert other[0] is not first[0]
    assert (other[0] >= first[0] - 1e-15).all() and (other[0] > first[0]).any()


def test_compact_entries_are_the_distinct_segment_lr_pairs_in_order():
    """compact's one-sort grouping gives np.unique(axis=1)'s entries, in its order, with
    the same counts and summed worths (exactness is the contract: same sums later)."""
    rng = np.random.default_rng(11)
    lr = rng.choice([0.0, 1e-4, 2e-4, 5e-4], size=400)
    weight = rng.uniform(0.2, 1.0, size=400)
    stop = np.sort(rng.integers(1, 401, size=9))
    steps = StepLRs(lr, weight, np.zeros(9, dtype=np.int64), stop, np.ones(9), 1e-3)
    compact = steps.compact()
    bounds = np.unique(np.concatenate([steps.start, steps.stop, [0, lr.size]]))
    segment = np.searchsorted(bounds, np.arange(lr.size), side="right")
    unique, inverse = np.unique(np.stack([segment.astype(float), lr]), axis=1, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    np.testing.assert_array_equal(compact.lr, unique[1])
    np.testing.assert_array_equal(compact.count, np.bincount(inverse, minlength=unique.shape[1]))
    np.testing.assert_allclose(
        compact.weight, np.bincount(inverse, weights=weight), rtol=1e-15, atol=0
    )
    for q in (0.5, 1.3):
        np.testing.assert_allclose(
            compact.power_sums(np.array(q), True)[0],
            steps.power_sums(np.array(q), True)[0],
            rtol=1e-12,
        )


def test_runs_with_the_same_steps_share_their_entries_with_the_same_sums():
    """Candidate pilots that differ only in replay ratio run the same steps: concatenated
    with ``share_steps`` they are held once (fewer entries), and every point's power sums
    and drop-pair sums agree with the unshared ones to rounding."""
    rng = np.random.default_rng(3)
    lr = rng.uniform(2e-4, 3e-3, 400)
    steps = np.arange(0, 401, 50)

    def run(lr: np.ndarray, replay: float) -> Areas:
        state = unknown_checkpoint()
        return cpt_point_areas(lr, steps, None, state, replay, history=True, lr_reference=2e-3)

    parts = [run(lr, replay) for replay in (0.0, 0.25, 0.5)]
    parts.append(run(lr[::-1].copy(), 0.25))  # another schedule: kept apart
    plain = Areas.concatenate(parts)
    shared = Areas.concatenate(parts, share_steps=True)
    assert plain.steps is not None and shared.steps is not None
    assert shared.steps.lr.size == 2 * lr.size < plain.steps.lr.size == 4 * lr.size
    for q in (0.4, 1.0, 1.6):
        for weighted in (False, True):
            want = plain.steps.power_sums(np.array(q), weighted)
            got = shared.steps.power_sums(np.array(q), weighted)
            for a, b in zip(got, want, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
    history = shared.history.shared()  # as the next-pilot model evaluates candidates
    assert history.point.size < plain.history.point.size
    values = plain.history.drop * plain.history.area
    np.testing.assert_array_equal(  # the same sums, bit for bit
        history.phase_sums(history.drop * history.area)[1],
        plain.history.phase_sums(values)[1],
    )
