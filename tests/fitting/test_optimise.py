"""The optimiser's problems: analytic Jacobians against finite differences."""

from __future__ import annotations

import numpy as np

from cptopt.fitting.jobs import TIED_PARAMETERS
from cptopt.fitting.optimise import JointProblem, Problem, Stall, relative_residuals
from cptopt.law.forms import make_law
from cptopt.law.scenario import InputNeeds, scenario_of
from cptopt.testing import REFERENCE_TIED, synthetic_pilots


def _assert_jacobian(problem, x):
    jac = problem.jacobian(x)
    for column in range(x.size):
        step = 1e-6 * max(abs(x[column]), 1e-3)
        up, down = x.copy(), x.copy()
        up[column] += step
        down[column] -= step
        numeric = (problem.residuals(up) - problem.residuals(down)) / (2 * step)
        np.testing.assert_allclose(
            jac[:, column], numeric, rtol=1e-5, atol=1e-8, err_msg=f"column {column}"
        )


def test_tied_jacobian_matches_finite_differences():
    pilots = synthetic_pilots("exp", REFERENCE_TIED, annealing="mpl", checkpoint_step=3600)
    parts = []
    for name in ("general", "domain"):
        law = make_law("exp", name, True, True, "mpl")
        data = scenario_of(pilots).fit_data(name, InputNeeds(None, history=True))
        parts.append(Problem(law, data, 1e-3))
    problem = JointProblem(parts[0], parts[1], TIED_PARAMETERS)
    general = np.array([REFERENCE_TIED["general"][n] for n in parts[0].law.names])
    domain = np.array([REFERENCE_TIED["domain"][n] for n in parts[1].law.names])
    x = problem.to_internal(problem.join(general, domain))
    assert x.size == general.size + domain.size - len(TIED_PARAMETERS)
    np.testing.assert_allclose(parts[1].to_values(problem.split(x)[1]), domain, rtol=1e-12)
    _assert_jacobian(problem, x)


def _cpt_problem(unannealed_manifest, name="general"):
    """A real problem (the bundled code pilots) and a plausible point: its best screened start."""
    from cptopt import load_manifest

    pilots = load_manifest(unannealed_manifest)
    law = make_law("odds", name, True, True, "mpl", domain_forward="frozen")
    data = scenario_of(pilots).fit_data(name, InputNeeds(None, True), "checkpoint")
    problem = Problem(law, data, 1e-3)
    screened = problem.screen(np.random.default_rng(0), 16)
    return problem, min(screened, key=lambda item: item[1])[0]


def test_forward_scale_is_carried_as_its_level_at_the_typical_area(unannealed_manifest):
    problem, values = _cpt_problem(unannealed_manifest)
    a_index, alpha_index = problem.law.names.index("A"), problem.law.names.index("alpha")
    areas = problem.data.areas
    s_ref = np.exp(np.mean(np.log(areas.s1_pt + areas.s1_cpt)))
    assert 1.0 < s_ref < 20.0  # the bundled pilots' forward areas
    internal = problem.to_internal(values)
    np.testing.assert_allclose(
        internal[a_index], values[a_index] * s_ref ** -values[alpha_index], rtol=1e-12
    )
    np.testing.assert_allclose(problem.to_values(internal), values, rtol=1e-12)
    _assert_jacobian(problem, internal)
    # every A within its bounds, at every alpha within its bounds, has its level in the box
    corner = values.copy()
    for a_value in (0.0, 1e3):
        for alpha in (0.01, 3.0):
            corner[a_index], corner[alpha_index] = a_value, alpha
            level = problem.to_internal(corner)[a_index]
            assert problem.lower[a_index] <= level <= problem.upper[a_index]


def test_a_level_past_the_scale_bound_holds_a_at_it(unannealed_manifest):
    problem, values = _cpt_problem(unannealed_manifest, "domain")
    a_index, alpha_index = problem.law.names.index("A"), problem.law.names.index("alpha")
    internal = problem.to_internal(values)
    internal[alpha_index] = 2.5
    internal[a_index] = 0.9 * problem.upper[a_index]
    assert problem.to_values(internal)[a_index] == 1e3  # clipped: exactly the bound
    jac = problem.jacobian(internal)
    # exactness is the contract: the held column is set to zero, not computed
    assert np.all(jac[:, a_index] == 0.0)  # the level no longer moves the law
    _assert_jacobian(problem, internal)


def test_a_stall_is_a_cost_that_fell_less_than_ftol_over_its_window():
    stall = Stall(steps=3, ftol=1e-3)
    # the window fills at the fourth cost; it stalls when the last three steps together
    # took off less than 1e-3 of the cost (here 2.5e-4 of it)
    costs = [10.0, 5.0, 2.0, 1.0, 0.9999, 0.9998, 0.99975]
    assert [stall(cost) for cost in costs] == [False] * 6 + [True]
    assert not Stall(steps=3, ftol=1e-3)(1.0)  # a solve's first cost never stalls


def _refits(problem: Problem, full: np.ndarray, stall: bool) -> tuple[list[float], int]:
    """Each pilot left out in turn, refitted from the full optimum: the left-out pilot's
    mean |relative error| under the refit, and the evaluations in all."""
    errors, evaluations = [], 0
    for run in np.unique(problem.data.run_index[problem.data.run_index >= 0]):
        kept = problem.data.run_index != run
        refit = Problem(problem.law, problem.data.take(kept), problem.delta)
        x, _, nfev = refit.solve(refit.to_internal(full), max_nfev=3000, stall=stall)
        held = (problem.data.run_index == run) & (problem.data.step > 0)
        held_out = relative_residuals(refit.law, refit.to_values(x), problem.data.take(held))
        errors.append(float(np.abs(held_out).mean()))
        evaluations += nfev
    return errors, evaluations


def test_a_refit_stopped_by_its_stall_scores_the_left_out_pilot_as_converged(
    unannealed_manifest,
):
    # What a refit gives is the left-out pilot's error (and a jackknife replica); once the
    # cost stalls it hardly moves, so the refit may stop there instead of converging.
    # The general law of --form auto's member relax^q, whose refits here crawl on (387
    # evaluations to converge, 335 to stall, the errors 0.04 points apart at most).
    from cptopt import load_manifest

    pilots = load_manifest(unannealed_manifest)
    law = make_law("relax", "general", True, True, "mpl", domain_forward="frozen", lr_power=True)
    data = scenario_of(pilots).fit_data("general", InputNeeds(None, True, True), "all")
    problem = Problem(law, data, 1e-3)
    values = min(problem.screen(np.random.default_rng(0), 16), key=lambda item: item[1])[0]
    x, _, _ = problem.solve(problem.to_internal(values))
    full = problem.to_values(x)
    stalled, stalled_nfev = _refits(problem, full, stall=True)
    converged, converged_nfev = _refits(problem, full, stall=False)
    np.testing.assert_allclose(stalled, converged, atol=1e-3)  # 0.1 points of error
    assert stalled_nfev < converged_nfev


def test_only_the_selection_fits_and_the_refits_stop_at_a_stall():
    from cptopt.fitting.jobs import FINAL, FINAL_SELECTED, SELECTING

    # the candidates' fits only rank variants (their budget caps them anyway); the final
    # fit is the law, so its starts keep SciPy's rule (refits stall at every effort)
    assert SELECTING.stall
    assert not FINAL.stall and not FINAL_SELECTED.stall
