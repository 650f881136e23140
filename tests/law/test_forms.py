"""The law against the published fit (cpt-law.md §2) and its analytic derivatives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cptopt.law.areas import Areas
from cptopt.law.forms import FORMS, make_law
from cptopt.testing import published_coefficients


def published_general(s1_pt, s1_cpt, s2_pt, s2_cpt):
    s1 = s1_pt + s1_cpt
    return (
        3.057
        + 0.490 * s1**-0.497
        + 0.366 * (1 - (28 * s1_cpt + 1) ** -0.189)
        - 0.299 * s2_pt
        - 0.298 * s2_cpt
    )


def published_domain(s1_pt, s1_cpt, s2_pt, s2_cpt):
    s1 = s1_pt + s1_cpt
    return (
        3.024
        + 0.412 * s1**-0.677
        - 0.666 * (1 - (5662 * s1_cpt + 1) ** -0.146)
        - 0.278 * s2_pt
        - 0.324 * s2_cpt
    )


POINTS = [
    (10.0, 0.0, 0.5, 0.0),
    (10.0, 2.0, 0.5, 0.3),
    (3.0, 0.01, 0.0, -0.1),
    (50.0, 20.0, 1.0, 2.0),
]


@pytest.mark.parametrize("point", POINTS)
def test_paper_form_reproduces_published_fit(point):
    coefficients = published_coefficients()
    s1_pt, s1_cpt, s2_pt, s2_cpt = (np.array([value]) for value in point)
    areas = Areas(s1_pt=s1_pt, s2_pt=s2_pt, s1_cpt=s1_cpt, s2_cpt=s2_cpt, replay_ratio=np.zeros(1))
    for name, reference in (("general", published_general), ("domain", published_domain)):
        law = make_law("paper", name, replay_terms=False, checkpoint_known=True)
        values = np.array([coefficients[name][p] for p in law.names])
        assert law.evaluate(values, areas)[0] == pytest.approx(reference(*point), rel=1e-12)


def test_hand_computed_value():
    # general, S1pt=10, S1cpt=2, S2pt=0.5, S2cpt=0.3, worked by hand from §2:
    # 3.057 + 0.490*12^-0.497 + 0.366*(1 - 57^-0.189) - 0.1495 - 0.0894
    # 12^-0.497 = exp(-0.497 * 2.484907) = 0.290835; 57^-0.189 = exp(-0.189 * 4.043051) = 0.465736
    by_hand = 3.057 + 0.490 * 0.290835 + 0.366 * (1 - 0.465736) - 0.1495 - 0.0894
    assert by_hand == pytest.approx(3.15615, abs=1e-5)
    assert published_general(10, 2, 0.5, 0.3) == pytest.approx(by_hand, abs=2e-6)
    coefficients = published_coefficients()["general"]
    law = make_law("paper", "general", replay_terms=False, checkpoint_known=True)
    areas = Areas(
        s1_pt=np.array([10.0]),
        s2_pt=np.array([0.5]),
        s1_cpt=np.array([2.0]),
        s2_cpt=np.array([0.3]),
        replay_ratio=np.zeros(1),
    )
    values = np.array([coefficients[p] for p in law.names])
    assert law.evaluate(values, areas)[0] == pytest.approx(by_hand, abs=2e-6)


def test_published_signs_general_rises_domain_falls():
    coefficients = published_coefficients()
    areas = Areas(np.full(2, 10.0), np.zeros(2), np.array([0.0, 1.0]), np.zeros(2), np.zeros(2))
    for name, direction in (("general", 1), ("domain", -1)):
        law = make_law("paper", name, replay_terms=False, checkpoint_known=True)
        values = np.array([coefficients[name][p] for p in law.names])
        before, after = law.evaluate(values, areas)
        assert np.sign(after - before) == direction
        assert np.sign(law.derived(dict(zip(law.names, values, strict=True)))["B"]) == direction


def test_shift_term_is_smooth_as_beta_vanishes():
    from cptopt.law.forms import _shift_g

    x = np.array([0.5, 10.0, 1e4])
    np.testing.assert_allclose(_shift_g(np.array(1e-10), x), np.log1p(x), rtol=1e-8)
    assert _shift_g(np.array(0.5), x)[1] == pytest.approx((1 - 11**-0.5) / 0.5)


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("validation_set", ["general", "domain"])
@pytest.mark.parametrize("known", [True, False])
def test_analytic_jacobian_matches_finite_differences(form, validation_set, known, jacobian_check):
    law = make_law(form, validation_set, replay_terms=True, checkpoint_known=known)
    rng = np.random.default_rng(3)
    n = 40
    areas = Areas(
        rng.uniform(1, 10, n),
        rng.uniform(0, 1, n),
        rng.uniform(0, 3, n),
        rng.uniform(-0.2, 1, n),
        rng.choice([0.0, 0.1, 0.5], n),
    )
    if not known:
        areas = Areas(
            areas.s1_pt * 0,
            areas.s2_pt * 0,
            areas.s1_cpt,
            areas.s2_cpt,
            areas.replay_ratio,
            np.zeros(n, dtype=bool),
        )
    jacobian_check(law, areas, rng)


def test_evaluate_is_vectorised_over_parameter_sets():
    law = make_law("exp", "general", replay_terms=True, checkpoint_known=True)
    areas = Areas(
        np.full(3, 5.0),
        np.full(3, 0.3),
        np.array([0, 1.0, 2.0]),
        np.array([0, 0.1, 0.5]),
        np.array([0.0, 0.25, 0.5]),
    )
    base = np.array([1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 50.0, 0.2, 1.0, 3.0])
    stacked = np.stack([base, base * 1.01])
    together = law.evaluate(stacked, areas)
    assert together.shape == (2, 3)
    np.testing.assert_allclose(together[1], law.evaluate(base * 1.01, areas))
    assert math.isfinite(float(together.sum()))


# ----------------------------------------------------------------- multi-power annealing


def mpl_areas(known: bool = True) -> Areas:
    """Points of three real-shaped runs, with their drop histories."""
    from cptopt.law.areas import cpt_point_areas, pretrain_areas, unknown_checkpoint
    from cptopt.schedules import Schedule

    pt = Schedule(family="wsd", peak_lr=2e-3, steps=600, warmup_steps=20, decay_start_step=400)
    history = pretrain_areas(pt.lr_array(), 20, None)
    runs = [
        (Schedule(family="cosine", peak_lr=2e-3, steps=300, warmup_steps=6), 600, 0.25),
        (Schedule(family="wsd", peak_lr=6e-4, steps=300, warmup_steps=6), 400, 0.0),
        (Schedule(family="constant", peak_lr=3e-3, steps=200, warmup_steps=4), 400, 0.5),
    ]
    parts = []
    for schedule, checkpoint, replay in runs:
        state = history.state_at(checkpoint) if known else unknown_checkpoint()
        steps = np.arange(0, schedule.n_steps + 1, 20)
        parts.append(cpt_point_areas(schedule.lr_array(), steps, None, state, replay, history=True))
    return Areas.concatenate(parts)


MPL_VALUES = {
    "L0": 1.5, "A": 1.6, "alpha": 1.0, "C1": 30.0, "C2": 40.0, "rate": 50.0, "gamma": 0.3,
    "zeta": 0.2, "E": 1000.0, "beta": 0.2, "a1": 0.5, "a2": 3.0, "kappa": 0.4, "S1pt": 5.0,
}  # fmt: skip


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("validation_set", ["general", "domain"])
@pytest.mark.parametrize("known", [True, False])
def test_mpl_jacobian_matches_finite_differences(form, validation_set, known):
    law = make_law(form, validation_set, True, known, annealing="mpl")
    assert law.needs_history and {"rate", "gamma", "zeta"} <= set(law.names)
    areas = mpl_areas(known)
    bbeta = 0.05 if validation_set == "general" else -0.1
    values = np.array([{**MPL_VALUES, "Bbeta": bbeta}[name] for name in law.names])
    assert_central_differences(law, values, areas)


def assert_central_differences(law, values: np.ndarray, areas: Areas, share: float = 1e-6):
    """The analytic Jacobian at ``values`` against central differences (steps ``share``
    of each value)."""
    prediction, jac = law.jacobian(values, areas)
    np.testing.assert_allclose(prediction, law.evaluate(values, areas), rtol=1e-12)
    for column in range(values.size):
        step = share * max(abs(values[column]), 1e-3)
        up, down = values.copy(), values.copy()
        up[column] += step
        down[column] -= step
        numeric = (law.evaluate(up, areas) - law.evaluate(down, areas)) / (2 * step)
        np.testing.assert_allclose(
            jac[:, column], numeric, rtol=1e-5, atol=1e-8, err_msg=law.names[column]
        )


def test_mpl_credit_by_hand_for_one_drop():
    """One LR drop, then constant: C2 * drop * g(zeta, rate * lr^-gamma * area since)."""
    from cptopt.law.areas import cpt_point_areas, unknown_checkpoint

    law = make_law("exp", "domain", False, False, annealing="mpl")
    lr = np.array([1e-3, 1e-3, 5e-4, 5e-4, 5e-4])  # drops 5e-4 at step 3
    areas = cpt_point_areas(lr, np.array([5]), None, unknown_checkpoint(1e-3), 0.0, history=True)
    named = {"rate": 100.0, "gamma": 0.5, "zeta": 0.3}
    shape = {name: np.array([value]) for name, value in named.items()}
    _, amount = law.annealing.amounts(shape, areas)
    x = 100.0 * (5e-4) ** -0.5 * (3 * 5e-4)
    assert float(amount[0]) == pytest.approx(5e-4 * (1 - (1 + x) ** -0.3) / 0.3, rel=1e-12)


def test_mpl_saturation_power_is_smooth_at_zero():
    """zeta -> 0 gives the log kernel: the reparametrised g has no 0/0 there."""
    from cptopt.law.forms import _shift_g

    x = np.array([1e-3, 0.5, 40.0])
    np.testing.assert_allclose(_shift_g(np.array(1e-9), x), np.log1p(x), rtol=1e-7)


def test_share_credit_is_continuous_in_a1_at_zero_replay():
    """The general credit at r = 0 tends to its a1 = 0 value: no jump as a1 leaves 0."""
    law = make_law("share", "general", True, True)
    replay = np.array([0.0, 0.1, 0.5])
    at_zero, _ = law.replay_multipliers({"a1": np.array(0.0), "a2": np.array(1.0)}, replay)
    tiny, _ = law.replay_multipliers({"a1": np.array(1e-9), "a2": np.array(1.0)}, replay)
    np.testing.assert_allclose(tiny, at_zero, rtol=1e-8)
    one, _ = law.replay_multipliers({"a1": np.array(1.0), "a2": np.array(1.0)}, replay)
    assert one[0] < 0.03 < one[1]  # a little replay restores most of the credit


def _shift_column(form: str, a2: float, beta: float, s1_cpt: np.ndarray, replay: np.ndarray):
    """The shift column of ``form``'s basis (``g(beta, E k X) v``, E = 10) at the points."""
    law = make_law(form, "general", True, True)
    n = s1_cpt.size
    areas = Areas(np.full(n, 5.0), np.zeros(n), s1_cpt, np.zeros(n), replay)
    shape = {"alpha": 0.5, "E": 10.0, "beta": beta, "a1": 0.0, "a2": a2, "C2": 0.0}
    columns = law.basis({k: np.array([v]) for k, v in shape.items() if k in law.names}, areas)
    return columns[:, law.linear_names.index("Bbeta")]


def test_relax_is_odds_at_zero_replay_and_at_saturation():
    """relax keeps odds's level 1 / (1 + a2 odds): the same law at r = 0, and the same level
    once the shift has saturated (beta > 0, X large); only the course in X differs."""
    s1 = np.array([0.05, 0.5, 5.0])
    for a2 in (0.5, 20.0):
        zero = np.zeros(3)
        np.testing.assert_allclose(
            _shift_column("relax", a2, 0.4, s1, zero), _shift_column("odds", a2, 0.4, s1, zero)
        )
    far = np.full(2, 1e12)
    replay = np.array([0.1, 0.5])
    np.testing.assert_allclose(
        _shift_column("relax", 20.0, 0.4, far, replay),
        _shift_column("odds", 20.0, 0.4, far, replay),
        rtol=1e-4,  # (1 + E k X)^-beta with E k X ~ 1e13: 1e-5 of the level still to go
    )


def test_relax_starts_with_the_domain_share_and_replay_sets_the_rate():
    """At the start (E X << 1) the shift grows as E X (1 - r) whatever a2 (the push of the
    domain share); with replay it saturates sooner than odds's (rate 1 - r + a2 r)."""
    tiny = np.full(3, 1e-9)
    replay = np.array([0.0, 0.25, 0.5])
    for a2 in (0.2, 1.0, 30.0):
        slope = _shift_column("relax", a2, 0.5, tiny, replay) / (10.0 * tiny)
        np.testing.assert_allclose(slope, 1.0 - replay, rtol=1e-5)  # first order in E X
    s1 = np.array([0.01, 1.0])  # a course: what share of the r = 0.25 level is reached
    level = 1.0 / 0.5 / (1.0 + 20.0 / 3.0)  # g -> 1 / beta, times v(0.25)
    relax = _shift_column("relax", 20.0, 0.5, s1, np.full(2, 0.25)) / level
    odds = _shift_column("odds", 20.0, 0.5, s1, np.full(2, 0.25)) / level
    assert (relax > odds).all() and relax[-1] > 0.8 > odds[-1]  # 87 % vs 70 % at E X = 10


# ------------------------------------------------------------------- pre-training form


def pretrain_points(lam: float | None, history: bool) -> Areas:
    """Points after the warmup of the pre-training schedules of :mod:`cptopt.testing`."""
    from cptopt.law.areas import pretrain_areas
    from cptopt.testing import pretrain_schedules

    parts = []
    for schedule in pretrain_schedules():
        areas = pretrain_areas(schedule.lr_array(), schedule.n_warmup, lam)
        parts.append(areas.points(np.arange(600, schedule.n_steps + 1, 100), history))
    return Areas.concatenate(parts)


PRETRAIN_VALUES = {"L0": 3.0, "A": 0.5, "alpha": 0.5, "C1": 400.0, "rate": 0.004, "gamma": 1.0}


@pytest.mark.parametrize("annealing", ["s2", "mpl", "mpl1"])
def test_pretrain_jacobian_matches_finite_differences(annealing):
    law = make_law("pretrain", "general", False, True, annealing)
    lam = 0.995 if annealing == "s2" else None
    areas = pretrain_points(lam, law.needs_history)
    values = np.array([{**PRETRAIN_VALUES, "C1": 2.0, "zeta": 0.6}[n] for n in law.names])
    if annealing != "s2":
        values[law.names.index("C1")] = 400.0
    assert_central_differences(law, values, areas, share=1e-4)  # small rates: rounding


def test_pretrain_form_is_the_laws_pretraining_part():
    """L0 + A * S1^-alpha - C1 * annealing: Eq. 4 with no CPT phase, its own coefficients."""
    assert make_law("pretrain", "general", False, True, "s2").names == ["L0", "A", "alpha", "C1"]
    mpl1 = make_law("pretrain", "general", False, True, "mpl1")
    assert mpl1.names == ["L0", "A", "alpha", "C1", "rate", "gamma"]
    assert mpl1.derived({**PRETRAIN_VALUES}) == {"B (multi-power law)": 400.0}
    areas = pretrain_points(0.99, False)
    cpt = make_law("paper", "general", False, True)  # the CPT law at S1cpt = S2cpt = 0
    values = {"L0": 3.0, "A": 0.5, "alpha": 0.5, "C1": 2.0, "C2": 1.0, "Bbeta": 0.3}
    full = np.array([{**values, "E": 10.0, "beta": 0.2}[n] for n in cpt.names])
    pretrain = make_law("pretrain", "general", False, True)
    np.testing.assert_allclose(
        pretrain.evaluate(np.array([values[n] for n in pretrain.names]), areas),
        cpt.evaluate(full, areas),
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match="no replay terms"):
        make_law("pretrain", "general", True, True)


def test_mpl1_is_the_multi_power_memory_at_zeta_one():
    """One drop, then constant: C1 * drop * x / (1 + x), x = rate * lr^-gamma * area since."""
    from cptopt.law.areas import pretrain_areas

    lr = np.array([1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4])  # warmup 1; a drop of 5e-4 at step 4
    areas = pretrain_areas(lr, 1, None).points(np.array([6]), history=True)
    law = make_law("pretrain", "general", False, True, "mpl1")
    mpl = make_law("pretrain", "general", False, True, "mpl")
    shape = {"alpha": np.array([0.5]), "rate": np.array([100.0]), "gamma": np.array([0.5])}
    amount, _ = law.annealing.amounts(shape, areas)
    x = 100.0 * (5e-4) ** -0.5 * (3 * 5e-4)
    assert float(amount[0]) == pytest.approx(5e-4 * x / (1 + x), rel=1e-12)
    general, _ = mpl.annealing.amounts({**shape, "zeta": np.array([1.0])}, areas)
    assert float(general[0]) == pytest.approx(float(amount[0]), rel=1e-12)


def test_mpl_kernel_kept_between_loss_and_jacobian_changes_nothing():
    """The multi-power memory keeps the last point's kernel (the optimiser asks for the loss
    and then the Jacobian there): every answer equals a fresh law's, whichever came first,
    at that point and at the next (exactness is the contract: the same arrays)."""
    areas = mpl_areas()
    law = make_law("exp", "general", True, True, "mpl")
    rng = np.random.default_rng(5)
    points = [
        np.array([rng.uniform(s.start_low or 0.1, s.start_high or 1.0) for s in law.specs])
        for _ in range(3)
    ]
    for values in points:
        fresh = make_law("exp", "general", True, True, "mpl")
        loss = law.evaluate(values, areas)
        prediction, jac = law.jacobian(values, areas)
        fresh_prediction, fresh_jac = fresh.jacobian(values, areas)
        assert np.array_equal(loss, fresh.evaluate(values, areas))
        assert np.array_equal(prediction, fresh_prediction) and np.array_equal(jac, fresh_jac)
    import pickle

    assert "_last_kernel" not in pickle.loads(pickle.dumps(law)).annealing.__dict__


@pytest.mark.parametrize("gamma", [0.0, 0.3])
def test_mpl_one_vector_in_place_kernel_matches_the_batch_formula(gamma):
    """A single parameter vector's amounts are computed in place (no temporaries); they
    are the batch path's plain formula for that vector, to rounding (1e-13), at gamma 0
    (the skipped exp) and above."""
    areas = mpl_areas()
    law = make_law("exp", "general", True, True, "mpl")
    shape = {"rate": 50.0, "gamma": gamma, "zeta": 0.2}
    single = law.annealing.amounts({k: np.array([v]) for k, v in shape.items()}, areas)
    batch = law.annealing.amounts({k: np.array([[v], [2 * v]]) for k, v in shape.items()}, areas)
    for one, many in zip(single, batch, strict=True):
        assert np.abs(one).max() > 0  # the memory credits something
        np.testing.assert_allclose(one, many[0], rtol=1e-13, atol=0)
