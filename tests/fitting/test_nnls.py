"""Least squares with non-negative coefficients (the screens' seeds): SciPy's optimum and
the KKT conditions, with and without coefficients free of sign."""

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
    """Random problems shaped like the screens' (up to 140 x 8), columns scaled over orders
    of magnitude, some coefficients free of sign, targets near the cone or not."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        rows, columns = int(rng.integers(3, 140)), int(rng.integers(1, 9))
        design = rng.normal(size=(rows, columns)) * np.exp(rng.normal(size=columns) * 2)
        free = rng.random(columns) < 0.25
        target = rng.normal(size=rows)
        if rng.random() < 0.5:  # a target near the cone, so that many columns are used
            target += design @ np.abs(rng.normal(size=columns))
        yield design, target, free


def _scipy_optimum(design: np.ndarray, target: np.ndarray, free: np.ndarray) -> float:
    """SciPy's residual, a free coefficient split into a +/- pair of non-negative ones."""
    _, residual = scipy_nnls(np.hstack([design, -design[:, free]]), target)
    return residual


def test_reaches_scipys_optimum():
    for design, target, free in _problems(0, 400):
        x, residual = nnls(design, target, free)
        assert np.all(x[~free] >= 0)
        # the same minimum to rounding, and the residual is the returned x's own
        assert residual == pytest.approx(
            _scipy_optimum(design, target, free), abs=1e-9 * np.linalg.norm(target)
        )
        assert residual == pytest.approx(np.linalg.norm(design @ x - target), rel=1e-12)


def test_meets_the_kkt_conditions():
    """Optimality without a reference: bounded coefficients >= 0; the residual's gradient
    vanishes on the free ones and the ones in use, and points outward (<= 0) on the others."""
    for design, target, free in _problems(1, 400):
        x, _ = nnls(design, target, free)
        gradient = design.T @ (target - design @ x)
        scale = np.linalg.norm(design, axis=0) * np.linalg.norm(target) + 1e-300
        used = free | (x > 0)
        assert np.all(x[~free] >= 0)
        assert np.all(np.abs(gradient[used]) <= 1e-7 * scale[used])
        assert np.all(gradient[~used] <= 1e-7 * scale[~used])


def test_free_coefficients_take_either_sign():
    design = np.array([[1.0, 0.0], [0.0, 1.0]])
    x, residual = nnls(design, np.array([-2.0, -3.0]), free=np.array([True, False]))
    np.testing.assert_allclose(x, [-2.0, 0.0], rtol=1e-14, atol=0)
    assert residual == pytest.approx(3.0, rel=1e-14)


def test_an_iteration_cap_that_is_too_small_raises():
    design = np.eye(3)
    with pytest.raises(RuntimeError, match="maximum number of iterations"):
        nnls(design, np.ones(3), max_iter=1)
    x, _ = nnls(design, np.ones(3), max_iter=3)
    np.testing.assert_allclose(x, 1.0, rtol=1e-14)
