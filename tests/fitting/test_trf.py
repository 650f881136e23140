"""The solver: cptopt's TRF gives what SciPy's ``least_squares`` gives, bit for bit.

:mod:`cptopt.fitting.trf` is SciPy's algorithm written out without its general machinery;
the contract is that it computes the same iterates, so the comparison here is exact (the
same floating-point operations in the same order), on fits of both validation sets, a
tied joint problem, a shift driven by LR^q, and capped and uncapped budgets. The solver
takes its SVD from numpy (LAPACK ``gesdd``, as SciPy's), whose LAPACK build may round
differently from SciPy's: for the step-for-step comparison the solver is given SciPy's SVD,
and numpy's is checked against it separately, to a tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy.optimize import least_squares

from cptopt.fitting import trf
from cptopt.fitting.data import thin
from cptopt.fitting.optimise import FTOL, JointProblem, Problem
from cptopt.fitting.trf import solve
from cptopt.law.forms import make_law
from cptopt.law.scenario import InputNeeds, scenario_of


def _least_squares(problem: Problem | JointProblem, x0: np.ndarray, budget: int | None):
    """SciPy's ``least_squares`` with the settings cptopt's solver copies."""
    return least_squares(
        problem.residuals,
        np.clip(x0, problem.lower + 1e-10, problem.upper - 1e-10),
        jac=problem.jacobian,
        bounds=(problem.lower, problem.upper),
        method="trf",
        loss="huber",
        f_scale=problem.delta,
        x_scale="jac",
        ftol=FTOL,
        max_nfev=budget,
    )


def _scipy(problem: Problem | JointProblem, x0: np.ndarray, budget: int | None) -> tuple:
    result = _least_squares(problem, x0, budget)
    return result.x, float(result.cost), int(result.nfev)


def _problems(pilots, lr_power: bool) -> list[Problem | JointProblem]:
    scenario = scenario_of(pilots)
    parts = []
    for name in ("general", "domain"):
        law = make_law("odds", name, True, True, "mpl", domain_forward="frozen", lr_power=lr_power)
        data = scenario.fit_data(name, InputNeeds(None, True, lr_power), "all")
        parts.append(Problem(law, thin(data, 240), 1e-3))
    if lr_power:
        return parts
    return [*parts, JointProblem(parts[0], parts[1], ("rate", "gamma", "zeta"))]


#: The solver's own SVD (numpy's), kept before the fixture below swaps in SciPy's.
NUMPY_SVD = trf.thin_svd


def _scipy_svd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return scipy.linalg.svd(a, full_matrices=False)  # what SciPy's TRF calls


@pytest.fixture(autouse=True)
def scipys_svd(monkeypatch):
    """The solver with SciPy's own SVD: same algorithm, same LAPACK, so the same bits."""
    monkeypatch.setattr(trf, "thin_svd", _scipy_svd)


@pytest.fixture(scope="module")
def real_pilots(unannealed_manifest):
    from cptopt import load_manifest

    return load_manifest(unannealed_manifest)


@pytest.mark.parametrize("lr_power", [False, True])
def test_trf_is_least_squares_step_for_step(real_pilots, lr_power):
    compared = 0
    for problem in _problems(real_pilots, lr_power):
        screened = sorted(problem.screen(np.random.default_rng(3), 8), key=lambda item: item[1])
        for values, _ in screened[:2]:
            x0 = problem.to_internal(values)
            for budget in (25, None):
                x, cost, nfev = problem.solve(x0, budget)
                x_ref, cost_ref, nfev_ref = _scipy(problem, x0, budget)
                assert np.array_equal(x, x_ref)  # exactness is the contract
                assert cost == cost_ref and nfev == nfev_ref
                compared += 1
    assert compared == (8 if lr_power else 12)


def test_trf_skips_scipys_last_jacobian(real_pilots):
    """Stopped by ftol, xtol or the budget, SciPy evaluates one Jacobian at the final point
    that it never uses; cptopt's solver leaves it out (same iterates, checked above)."""
    problem = _problems(real_pilots, False)[0]
    calls = []

    class Counted(Problem):
        def jacobian(self, internal: np.ndarray) -> np.ndarray:
            calls.append(1)
            return super().jacobian(internal)

    counted = Counted(problem.law, problem.data, problem.delta)
    screened = sorted(counted.screen(np.random.default_rng(3), 8), key=lambda item: item[1])
    x0 = np.clip(counted.to_internal(screened[0][0]), counted.lower + 1e-10, counted.upper - 1e-10)
    for budget in (25, None):
        calls.clear()
        counted.solve(x0, budget)
        ours = len(calls)
        result = _least_squares(problem, x0, budget)
        assert result.status in (0, 2, 3)  # the budget, ftol or xtol: not gtol
        assert ours == result.njev - 1


def test_a_stop_hook_that_never_fires_changes_nothing(real_pilots):
    problem = _problems(real_pilots, False)[0]
    values, _ = min(problem.screen(np.random.default_rng(3), 8), key=lambda item: item[1])
    x0 = np.clip(problem.to_internal(values), problem.lower + 1e-10, problem.upper - 1e-10)
    seen: list[float] = []

    def never(cost: float) -> bool:
        seen.append(cost)
        return False

    args = (problem.residuals, problem.jacobian, x0, problem.lower, problem.upper, 1e-3, FTOL)
    x, cost, nfev = solve(*args, None)
    x_hooked, cost_hooked, nfev_hooked = solve(*args, None, stop=never)
    assert np.array_equal(x, x_hooked)  # exactness is the contract: the hook only watches
    assert cost == cost_hooked and nfev == nfev_hooked
    # it is told the start's cost, then each accepted step's, the last being the result's
    assert seen[0] == pytest.approx(problem.cost(x0), rel=1e-12)
    assert np.all(np.diff(seen) < 0)
    assert seen[-1] == cost
    assert 1 < len(seen) <= nfev


def test_a_stop_hook_ends_the_solve_at_the_step_it_fires(real_pilots):
    problem = _problems(real_pilots, False)[0]
    values, _ = min(problem.screen(np.random.default_rng(3), 8), key=lambda item: item[1])
    x0 = np.clip(problem.to_internal(values), problem.lower + 1e-10, problem.upper - 1e-10)
    args = (problem.residuals, problem.jacobian, x0, problem.lower, problem.upper, 1e-3, FTOL)
    _, converged_cost, converged_nfev = solve(*args, None)
    seen: list[float] = []

    def after_three_steps(cost: float) -> bool:
        seen.append(cost)
        return len(seen) == 4

    x, cost, nfev = solve(*args, None, stop=after_three_steps)
    assert len(seen) == 4 and cost == seen[-1]
    assert problem.cost(x) == pytest.approx(cost, rel=1e-12)  # the point it stopped at
    assert nfev < converged_nfev and cost >= converged_cost


def test_numpys_svd_is_scipys_to_rounding():
    """The SVD the solver uses without SciPy factors the fit's augmented Jacobians as SciPy's
    does, to rounding: the same singular values, and the same least-squares step built from
    the factors (which does not depend on the singular vectors' signs); NaN is refused as
    SciPy refuses it (the fit treats that as a failed start)."""
    rng = np.random.default_rng(7)
    for rows, columns in ((126 + 13, 13), (240 + 8, 8), (20, 6)):
        matrix = rng.normal(size=(rows, columns)) * np.exp(rng.normal(size=columns) * 3)
        target = rng.normal(size=rows)
        u, s, vt = NUMPY_SVD(matrix)
        u_ref, s_ref, vt_ref = _scipy_svd(matrix)
        np.testing.assert_allclose(s, s_ref, rtol=1e-12)
        np.testing.assert_allclose((u * s) @ vt, matrix, rtol=0, atol=1e-12 * s_ref[0])
        step = vt.T @ ((u.T @ target) / s)
        step_ref = vt_ref.T @ ((u_ref.T @ target) / s_ref)
        np.testing.assert_allclose(step, step_ref, rtol=1e-9, atol=1e-12 * np.abs(step_ref).max())
    with pytest.raises(ValueError, match="infs or NaNs"):
        NUMPY_SVD(np.full((4, 2), np.nan))
