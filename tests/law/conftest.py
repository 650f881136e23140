"""Helpers shared by the law's tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from cptopt.law.areas import Areas
from cptopt.law.forms import LawForm


def check_jacobian(law: LawForm, areas: Areas, rng: np.random.Generator) -> None:
    """The analytic Jacobian of ``law`` at random values against finite differences."""
    values = []
    for spec in law.specs:
        low = max(spec.lower, spec.start_low if not spec.linear else -1.0)
        high = min(spec.upper, spec.start_high if not spec.linear else 2.0)
        values.append(rng.uniform(max(low, 0.05) if spec.log else low, high))
    values = np.array(values)
    prediction, jac = law.jacobian(values, areas)
    np.testing.assert_allclose(prediction, law.evaluate(values, areas), rtol=1e-12)
    for column in range(values.size):
        step = 1e-6 * max(abs(values[column]), 1e-3)
        bumped = values.copy()
        bumped[column] += step
        numeric = (law.evaluate(bumped, areas) - prediction) / step
        np.testing.assert_allclose(
            jac[:, column], numeric, rtol=1e-4, atol=1e-6, err_msg=law.names[column]
        )


@pytest.fixture
def jacobian_check() -> Callable[[LawForm, Areas, np.random.Generator], None]:
    return check_jacobian
