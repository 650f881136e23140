"""Intervals of an averaged law carry its members' disagreement (issue 21, item 2): the
between-member variance of the model average is added to the calibrated spread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cptopt import Schedule, load_law, predict
from cptopt.law.averaged import AveragedLaw
from cptopt.law.uncertainty import jackknife_variance, z_value
from cptopt.prediction import length_extrapolation_sd, member_variance

LAWS = Path(__file__).resolve().parent / "fixtures" / "laws"
PILOT_LIKE = Schedule(family="wsd", peak_lr=2e-3, steps=1000, warmup_steps=20)
THREE_X_LR = Schedule(family="wsd", peak_lr=6e-3, steps=1000, warmup_steps=20)


def _parts(law, schedule: Schedule, replay_ratio: float, name: str) -> tuple[float, float]:
    """(within, between): the final step's calibrated spread without the members' term
    (plus the length term) and the members' variance, recomputed from the law's records."""
    run = law.scenario.planned(schedule, replay_ratio)
    areas = law.scenario.inputs(run, np.array([0, run.steps]), law.needs)
    fit, form = law.set_fit(name), law.form_for(name)
    curves = form.evaluate(np.array([fit.values, *fit.jackknife]), areas)[:, -1]
    spread = jackknife_variance(np.log(curves[1:]))
    within = fit.interval_scale**2 * (spread + fit.noise**2)
    within += float(np.square(length_extrapolation_sd(law, name, np.array([run.steps]))[0]))
    between = float(np.atleast_1d(member_variance(form, fit.values, areas))[-1])
    return float(within), between


def _half_width_squared(forecast) -> float:
    return (np.log(forecast.final_upper / forecast.final) / z_value(0.9)) ** 2


def test_an_averaged_law_adds_its_members_disagreement(fitted_law):
    assert isinstance(fitted_law.form_for("general"), AveragedLaw)  # the default fit's
    for schedule in (PILOT_LIKE, THREE_X_LR):
        prediction = predict(fitted_law, schedule, 0.25)
        for name in ("general", "domain"):
            within, between = _parts(fitted_law, schedule, 0.25, name)
            # the interval is exactly the documented formula (rtol: float rounding)
            assert _half_width_squared(prediction.forecasts()[name]) == pytest.approx(
                within + between, rel=1e-9
            )
    # the members were fitted to the pilots: they agree there and part beyond their LRs
    _, near = _parts(fitted_law, PILOT_LIKE, 0.25, "general")
    _, far = _parts(fitted_law, THREE_X_LR, 0.25, "general")
    assert far > 4 * near > 0


def test_a_single_form_law_file_predicts_the_intervals_it_did():
    """A law file of an earlier version (one form per set, no members) loads and gets no
    between-member term: its intervals are the calibrated spread alone."""
    law = load_law(LAWS / "v4-cpt-unannealed.json")
    assert not isinstance(law.form_for("domain"), AveragedLaw)
    prediction = predict(law, THREE_X_LR, 0.25)
    for name in ("general", "domain"):
        within, between = _parts(law, THREE_X_LR, 0.25, name)
        assert between == 0.0  # exactly: no members to disagree
        assert _half_width_squared(prediction.forecasts()[name]) == pytest.approx(
            within, rel=1e-9
        )  # rtol: float rounding


def test_the_term_needs_no_field_in_the_law_file(fitted_law, law_file):
    """It is computed from the stored members and weights: a saved law predicts the same."""
    again = predict(load_law(law_file), THREE_X_LR, 0.25)
    before = predict(fitted_law, THREE_X_LR, 0.25)
    for name in ("general", "domain"):
        # rtol: JSON keeps every float, so only evaluation order could differ
        assert again.forecasts()[name].final_upper == pytest.approx(
            before.forecasts()[name].final_upper, rel=1e-12
        )
