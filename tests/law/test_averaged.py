"""Averaged laws: the weighted average of member forms, each with its own parameters."""

from __future__ import annotations

import numpy as np
import pytest

from cptopt.law.areas import cpt_point_areas, unknown_checkpoint
from cptopt.law.averaged import AveragedLaw, build_law
from cptopt.law.forms import make_law
from cptopt.law.uncertainty import between_member_variance


def _areas(seed: int = 0):
    """Points of a few runs with their per-step LRs (for members with an LR power)."""
    from cptopt.law.areas import Areas

    rng = np.random.default_rng(seed)
    parts = []
    for replay in (0.0, 0.1, 0.5):
        lr = rng.uniform(3e-4, 2e-3, 80)
        lr[:5] = np.linspace(0.0, lr[5], 5)
        steps = np.array([0, 10, 40, 80])
        parts.append(
            cpt_point_areas(lr, steps, 0.99, unknown_checkpoint(), replay, lr_reference=2e-3)
        )
    return Areas.concatenate(parts)


def test_build_law_reads_the_members_from_the_name():
    law = build_law("odds^q/relax", "general", True, False, "s2", domain_forward="frozen")
    assert isinstance(law, AveragedLaw) and law.name == "odds^q/relax"
    assert [(m.name, m.lr_power) for m in law.members] == [("odds", True), ("relax", False)]
    assert law.lr_power and law.needs_steps  # one member reads the per-step LRs
    assert law.names[0] == "odds^q.L0" and law.names[-2:] == ["weight.odds^q", "weight.relax"]
    assert len(law.names) == sum(len(m.names) for m in law.members) + 2
    plain = build_law("relax", "domain", True, True, "s2", lr_power=True)
    assert type(plain) is type(make_law("relax", "domain", True, True, "s2", lr_power=True))
    with pytest.raises(ValueError, match="at least two"):
        AveragedLaw("general", [plain])


def test_an_average_is_its_members_weighted():
    law = build_law("relax/relax^q", "domain", True, False, "s2")  # black-box: S1pt fitted
    assert isinstance(law, AveragedLaw)
    areas = _areas()
    rng = np.random.default_rng(1)
    parts = []
    for member in law.members:
        parts.append(np.array([rng.uniform(s.start_low, s.start_high) for s in member.specs]))
    weights = np.array([0.3, 0.7])
    values = law.join(parts, weights)
    expected = sum(
        w * m.evaluate(p, areas) for w, m, p in zip(weights, law.members, parts, strict=True)
    )
    np.testing.assert_allclose(law.evaluate(values, areas), expected, rtol=1e-12)
    stacked = law.evaluate(np.stack([values, values]), areas)  # (K, P) as the search passes
    np.testing.assert_allclose(stacked[1], expected, rtol=1e-12)
    split, split_weights = law.split_members(values)
    np.testing.assert_array_equal(split_weights, weights)
    assert all(np.array_equal(a, b) for a, b in zip(split, parts, strict=True))


@pytest.mark.parametrize("name", ["relax/relax^q", "odds^q/relax^q"])
@pytest.mark.parametrize("validation_set", ["general", "domain"])
def test_averaged_jacobian_matches_finite_differences(name, validation_set, jacobian_check):
    law = build_law(name, validation_set, True, False, "s2", domain_forward="frozen")
    jacobian_check(law, _areas(2), np.random.default_rng(3))


def test_an_average_has_no_linear_basis():
    """Its members are fitted alone (cptopt.fitting.averaging), never as one problem."""
    law = build_law("relax/relax^q", "domain", True, True, "s2")
    with pytest.raises(TypeError, match="members are fitted alone"):
        law.basis({}, _areas())


def test_between_member_variance_is_zero_for_identical_members():
    predictions = np.tile(np.array([2.5, 2.1, 1.9]), (3, 1))
    weights = np.array([0.2, 0.5, 0.3])
    # identical members: only the rounding of sum(w) * mu differs from mu (~1e-16 relative)
    np.testing.assert_allclose(between_member_variance(predictions, weights), 0.0, atol=1e-24)


def test_between_member_variance_grows_with_the_disagreement():
    weights = np.array([0.3, 0.7])
    gaps = np.array([0.0, 1e-3, 1e-2, 0.05, 0.2])
    predictions = np.stack([2.0 * np.exp(gaps / 2), 2.0 * np.exp(-gaps / 2)])
    variance = between_member_variance(predictions, weights)
    assert np.all(np.diff(variance) > 0)
    # two members whose logs differ by g: w1 w2 g^2 to first order (1 % for g <= 1e-2)
    small = gaps[1:3]
    np.testing.assert_allclose(variance[1:3], 0.3 * 0.7 * small**2, rtol=1e-2)


def test_member_predictions_are_what_the_average_weighs():
    law = build_law("relax/relax^q", "domain", True, False, "s2")
    assert isinstance(law, AveragedLaw)
    rng = np.random.default_rng(4)
    parts = [
        np.array([rng.uniform(s.start_low, s.start_high) for s in m.specs]) for m in law.members
    ]
    values = law.join(parts, np.array([0.4, 0.6]))
    areas = _areas(5)
    predictions, weights = law.member_predictions(values, areas)
    np.testing.assert_array_equal(weights, [0.4, 0.6])
    # the weighted members are the average (rtol: float rounding of one weighted sum)
    np.testing.assert_allclose(weights @ predictions, law.evaluate(values, areas), rtol=1e-12)
