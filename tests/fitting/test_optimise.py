"""The optimiser's problems: analytic Jacobians against finite differences."""

from __future__ import annotations

import numpy as np

from cptopt.fitting.jobs import TIED_PARAMETERS
from cptopt.fitting.optimise import JointProblem, Problem
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
        np.testing.assert_allclose(jac[:, column], numeric, rtol=1e-5, atol=1e-8)


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
