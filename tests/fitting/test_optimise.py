"""The optimiser's problems: analytic Jacobians against finite differences."""

from __future__ import annotations

import numpy as np

from cptopt.fitting.data import collect_points
from cptopt.fitting.jobs import TIED_PARAMETERS
from cptopt.fitting.optimise import JointProblem, Problem
from cptopt.law.forms import make_law
from cptopt.testing import synthetic_pilots

TRUE = {
    "general": {
        "L0": 1.2,
        "A": 0.45,
        "alpha": 0.5,
        "C1": 0.25,
        "C2": 0.2,
        "Bbeta": 0.02,
        "E": 30.0,
        "beta": 0.3,
        "a1": 0.5,
        "a2": 4.0,
    },
    "domain": {
        "L0": 0.9,
        "A": 0.9,
        "alpha": 0.6,
        "C1": 0.2,
        "C2": 0.3,
        "Bbeta": -0.12,
        "E": 300.0,
        "beta": 0.2,
        "a1": -0.5,
        "a2": 1.0,
    },
}


TRUE_MPL = {
    "general": {
        **{k: v for k, v in TRUE["general"].items() if k not in ("C1", "C2")},
        "C1": 20.0,
        "C2": 30.0,
        "rate": 300.0,
        "gamma": 0.2,
        "zeta": 0.3,
    },
    "domain": {
        **{k: v for k, v in TRUE["domain"].items() if k not in ("C1", "C2")},
        "C1": 15.0,
        "C2": 20.0,
        "rate": 40.0,
        "gamma": 0.6,
        "zeta": 0.2,
    },
}


TRUE_TIED = {
    "general": dict(TRUE_MPL["general"]),
    "domain": {**TRUE_MPL["domain"], "rate": 300.0, "gamma": 0.2, "zeta": 0.3},
}


def _assert_jacobian(problem, x):
    jac = problem.jacobian(x)
    for column in range(x.size):
        step = 1e-6 * max(abs(x[column]), 1e-3)
        up, down = x.copy(), x.copy()
        up[column] += step
        down[column] -= step
        numeric = (problem.residuals(up) - problem.residuals(down)) / (2 * step)
        np.testing.assert_allclose(jac[:, column], numeric, rtol=1e-5, atol=1e-8)


def test_tied_jacobian_matches_finite_differences():
    pilots = synthetic_pilots("exp", TRUE_TIED, annealing="mpl", checkpoint_step=3600)
    parts = []
    for name in ("general", "domain"):
        law = make_law("exp", name, True, True, "mpl")
        parts.append(Problem(law, collect_points(pilots, name, None, history=True), 1e-3))
    problem = JointProblem(parts[0], parts[1], TIED_PARAMETERS)
    general = np.array([TRUE_TIED["general"][n] for n in parts[0].law.names])
    domain = np.array([TRUE_TIED["domain"][n] for n in parts[1].law.names])
    x = problem.to_internal(problem.join(general, domain))
    assert x.size == general.size + domain.size - len(TIED_PARAMETERS)
    np.testing.assert_allclose(parts[1].to_values(problem.split(x)[1]), domain, rtol=1e-12)
    _assert_jacobian(problem, x)
