"""Non-negative least squares (the screens' seeds): SciPy's optimum, and the KKT conditions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls as scipy_nnls

from cptopt.fitting.nnls import nnls


def test_a_textbook_problem():
    """SciPy's documented example: the second equation pulls x0 to 1.5, x1 is 1."""
    design = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    x, residual = nnls(design, np.array([2.0, 1.0, 1.0]))
    np.testing.assert_allclose(x, [1.5, 1.0], rtol=1e-14)
    assert residual == pytest.approx(np.sqrt(0.5), rel=1e-14)


def test_a_target_no_positive_combination_reaches_gives_zero():
    design = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    x, residual = nnls(design, np.array([-1.0, -1.0, -1.0]))
    assert np.all(x == 0.0)  # exact: no column was ever made passive
    assert residual == pytest.approx(np.sqrt(3.0), rel=1e-14)


def _problems(seed: int, count: int):
    """Random problems shaped like the screens' (up to 140 x 8), with columns scaled over
    orders of magnitude and, in some, two columns repeated with the opposite sign (a free
    coefficient split into a +/- pair, as the screens do)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        rows, columns = int(rng.integers(3, 140)), int(rng.integers(1, 9))
        design = rng.normal(size=(rows, columns)) * np.exp(rng.normal(size=columns) * 2)
        if rng.random() < 0.3:
            design = np.hstack([design, -design[:, :2]])
        target = rng.normal(size=rows)
        if rng.random() < 0.5:  # a target near the cone, so that many columns are used
            target += design @ np.abs(rng.normal(size=design.shape[1]))
        yield design, target


def test_reaches_scipys_optimum():
    for design, target in _problems(0, 400):
        x, residual = nnls(design, target)
        _, residual_ref = scipy_nnls(design, target)
        assert np.all(x >= 0)
        # the same minimum (the minimiser itself is not unique when columns repeat)
        assert residual == pytest.approx(residual_ref, abs=1e-12 * np.linalg.norm(target))
        assert residual == pytest.approx(np.linalg.norm(design @ x - target), rel=1e-12)


def test_meets_the_kkt_conditions():
    """Optimality without a reference: x >= 0, the gradient of the squared residual's half
    vanishes on the columns in use and points outward (<= 0) on the others."""
    for design, target in _problems(1, 400):
        x, _ = nnls(design, target)
        gradient = design.T @ (target - design @ x)
        scale = np.linalg.norm(design, axis=0) * np.linalg.norm(target) + 1e-300
        used = x > 0
        assert np.all(np.abs(gradient[used]) <= 1e-9 * scale[used])
        assert np.all(gradient[~used] <= 1e-9 * scale[~used])


def test_an_iteration_cap_that_is_too_small_raises():
    design = np.eye(3)
    with pytest.raises(RuntimeError, match="maximum number of iterations"):
        nnls(design, np.ones(3), max_iter=1)
    x, _ = nnls(design, np.ones(3), max_iter=3)
    np.testing.assert_allclose(x, 1.0, rtol=1e-14)
