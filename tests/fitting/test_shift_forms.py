"""Issue #12 in the fit: the odds replay form and the LR-power shift recovered from curves the
law itself generated (which proves only that the code agrees with itself), the length check,
thinning, the interval scale and the per-set choices of the estimator."""

from __future__ import annotations

import numpy as np
import pytest

from cptopt.fitting import LawFitter
from cptopt.fitting.crossval import fit_validation_set, length_extrapolation_rms
from cptopt.fitting.data import FIT_POINTS, thin
from cptopt.fitting.optimise import Starts
from cptopt.law.areas import checkpoint_state, cpt_point_areas
from cptopt.law.forms import make_law
from cptopt.law.scenario import InputNeeds, scenario_of
from cptopt.pilots.logs import Series
from cptopt.pilots.runs import PilotSet, PretrainHistory, Run
from cptopt.schedules import Schedule
from cptopt.testing import eval_steps

TRUE = {
    "general": {
        "L0": 1.2,
        "A": 0.45,
        "alpha": 0.6,
        "C1": 0.2,
        "C2": 0.3,
        "rate": 0.4,
        "gamma": 0.5,
        "zeta": 0.4,
        "Bbeta": 0.08,
        "E": 300.0,
        "beta": 0.3,
        "q": 0.7,
        "a1": 0.5,
        "a2": 20.0,
    },
    "domain": {
        "L0": 0.8,
        "A": 0.6,
        "alpha": 0.5,
        "C1": 0.1,
        "C2": 0.4,
        "rate": 0.4,
        "gamma": 0.5,
        "zeta": 0.4,
        "Bbeta": -0.2,
        "E": 500.0,
        "beta": 0.4,
        "q": 1.3,
        "a1": 0.3,
        "a2": 2.0,
    },
}
CONFIGS = [
    (Schedule(family="constant", peak_lr=2e-3, steps=1000, warmup_steps=20), 0.25),
    (Schedule(family="cosine", peak_lr=2e-3, steps=1000, warmup_steps=20), 0.25),
    (Schedule(family="wsd", peak_lr=6e-4, steps=1000, warmup_steps=20), 0.25),
    (Schedule(family="wsd", peak_lr=2e-3, steps=1000, warmup_steps=20), 0.0),
    (Schedule(family="wsd", peak_lr=2e-3, steps=1000, warmup_steps=20), 0.5),
    (Schedule(family="wsd", peak_lr=1e-3, steps=1000, warmup_steps=20), 0.1),
]


def odds_power_pilots(noise: float = 0.0) -> PilotSet:
    """Pilots whose curves are the ``odds`` law with LR power, frozen domain forward."""
    pt = Schedule(family="wsd", peak_lr=2e-3, steps=4000, warmup_steps=80, decay_start_step=3200)
    pretrain = PretrainHistory(lr=pt.lr_array(), warmup_steps=80, checkpoints={"ckpt": 3600})
    state = checkpoint_state(pretrain, "ckpt", None)
    reference = max(schedule.peak for schedule, _ in CONFIGS)
    rng = np.random.default_rng(1)
    runs = []
    for index, (schedule, replay) in enumerate(CONFIGS):
        lr = schedule.lr_array()
        steps = eval_steps(lr.size)
        areas = cpt_point_areas(
            lr, steps, None, state, replay, history=True, lr_reference=reference
        )
        curves = {}
        for name in ("general", "domain"):
            law = make_law("odds", name, True, True, "mpl", domain_forward="frozen", lr_power=True)
            loss = law.evaluate(np.array([TRUE[name][p] for p in law.names]), areas)
            curves[name] = Series(steps, loss * np.exp(rng.normal(0.0, noise, loss.size)))
        runs.append(Run(f"r{index}", lr, curves["general"], curves["domain"], replay, "ckpt"))
    return PilotSet(tuple(runs), pretrain, use_pretrain_points=False)


#: What the multi-power law with an LR power reads from a run.
NEEDS = InputNeeds(None, history=True, steps=True)


@pytest.fixture(scope="module")
def pilots() -> PilotSet:
    return odds_power_pilots()


def test_recovers_the_odds_law_with_lr_power(pilots):
    assert scenario_of(pilots).lr_reference == 2e-3
    law = LawFitter(form="odds", lr_power=True, jackknife=False, n_starts=4).fit(pilots).law_
    assert law.domain_forward == "frozen" and law.needs_steps
    for name in ("general", "domain"):
        fitted = law.set_fit(name)
        assert fitted.form == "odds" and fitted.lr_power
        assert fitted.mean_abs_error < 1e-4
        values = dict(zip(fitted.parameter_names, fitted.values, strict=True))
        assert values["q"] == pytest.approx(TRUE[name]["q"], rel=0.05)
        assert values["a2"] == pytest.approx(TRUE[name]["a2"], rel=0.15)


def test_length_check_is_small_on_the_generating_law(pilots):
    law = make_law("odds", "general", True, True, "mpl", domain_forward="frozen", lr_power=True)
    data = scenario_of(pilots).fit_data("general", NEEDS)
    values = np.array([TRUE["general"][p] for p in law.names])
    rng = np.random.default_rng(0)
    rms = length_extrapolation_rms(law, data, values, 1e-3, rng, Starts(1, max_nfev=30))
    assert rms is not None and rms < 1e-4


def test_thin_keeps_each_curve_ends_and_every_pt_point(pilots):
    data = scenario_of(pilots).fit_data("domain", NEEDS)
    assert thin(data, FIT_POINTS).loss.size == data.loss.size  # few points: untouched
    thinned = thin(data, 60)
    assert thinned.loss.size < data.loss.size
    for run in range(len(pilots.runs)):
        before, after = data.step[data.run_index == run], thinned.step[thinned.run_index == run]
        assert after[0] == before[0] and after[-1] == before[-1] and after.size >= 6
    law = make_law("odds", "domain", True, True, "mpl", domain_forward="frozen", lr_power=True)
    values = np.array([TRUE["domain"][p] for p in law.names])
    pairs = set(zip(thinned.run_index.tolist(), thinned.step.tolist(), strict=True))
    points = zip(data.run_index.tolist(), data.step.tolist(), strict=True)
    kept = np.array([p in pairs for p in points])
    assert thinned.areas.steps.lr.size < data.areas.steps.lr.size  # compacted
    np.testing.assert_allclose(
        law.evaluate(values, thinned.areas), law.evaluate(values, data.areas)[kept], rtol=1e-12
    )


def test_interval_scale_calibrates_on_the_pilots():
    noisy = odds_power_pilots(noise=0.003)
    law = LawFitter(form="odds", lr_power=True, n_starts=2).fit(noisy).law_
    for name in ("general", "domain"):
        fitted = law.set_fit(name)
        assert fitted.interval_scale is not None and 0.3 < fitted.interval_scale < 3.0
        assert fitted.length_rms is not None and fitted.length_rms < 0.02


def test_fit_validation_set_with_lr_power_from_a_warm_start(pilots):
    law = make_law("odds", "domain", True, True, "mpl", domain_forward="frozen", lr_power=True)
    data = scenario_of(pilots).fit_data("domain", NEEDS)
    values = np.array([TRUE["domain"][p] for p in law.names])
    result = fit_validation_set(
        law,
        data,
        delta=1e-3,
        rng=np.random.default_rng(0),
        starts=Starts(1),
        refit_budget=10,
        jackknife=True,
        warm_start=values * 1.01,
        length_check=True,
    )
    assert result.cv_error is not None and result.cv_error < 1e-3
    assert result.length_rms is not None and result.length_rms < 1e-3
