"""Least squares with non-negative coefficients: ``min ||A x - b||`` subject to ``x >= 0``,
some coefficients optionally free of sign.

The screens seed each fit's linear coefficients with it (``optimise._linear_completion``).
It is Lawson and Hanson's active-set algorithm ("Solving Least Squares Problems", SIAM,
1995, ch. 23), the one ``scipy.optimize.nnls`` implements, written here so that a fit
never imports ``scipy.optimize`` (its import alone took 0.15-0.2 s of every ``cptopt
fit``). Two choices suit the screens' problems, a few columns and up to a few thousand
rows solved 48 times per screen:

- the iterations work on the columns' Gram matrix, the columns scaled to unit norm first
  (a k x k solve per step instead of a least-squares solve over every row); the residual
  returned is computed from the design itself;
- coefficients free of sign are in the solution from the start and never made zero,
  instead of being split into a +/- pair of non-negative ones (two opposite columns make
  the Gram matrix singular).
"""

from __future__ import annotations

import numpy as np

EPS = np.finfo(float).eps


def nnls(
    design: np.ndarray,
    target: np.ndarray,
    free: np.ndarray | None = None,
    max_iter: int | None = None,
) -> tuple[np.ndarray, float]:
    """``(x, ||design @ x - target||)``: the least-squares ``x`` with ``x >= 0`` except where
    ``free`` (a boolean mask over the columns) is True.

    ``max_iter`` (default ``3 * n``, as SciPy's) bounds the columns added one at a time;
    past it a ``RuntimeError`` says that the problem did not converge. That can happen when
    the passive columns are dependent (more columns than rows; about 1 in 3,000 random
    problems of 3-140 rows and 1-8 columns, none of the screens' tall ones); the screens
    treat it as a bad start, as they treated SciPy's.
    """
    rows, n = design.shape
    free = np.zeros(n, dtype=bool) if free is None else np.asarray(free, dtype=bool)
    max_iter = 3 * n if max_iter is None else max_iter
    norms = np.sqrt(np.einsum("ij,ij->j", design, design))
    norms[norms == 0] = 1.0  # a zero column stays at zero: its gradient is zero
    scaled = design / norms
    gram, correlation = scaled.T @ scaled, scaled.T @ target
    # Round-off in a gradient is about eps * rows * |target| (unit columns): never add a column
    # on less.
    tolerance = 10 * EPS * max(rows, n) * (np.linalg.norm(target) + np.finfo(float).tiny)
    x = np.zeros(n)
    passive = free.copy()
    if passive.any():
        x = _feasible_solution(gram, correlation, x, passive, free)
    refused = np.zeros(n, dtype=bool)
    for _ in range(max_iter + 1):
        gradient = correlation - gram @ x
        candidates = ~passive & ~refused & (gradient > tolerance)
        if not candidates.any():
            break
        column = np.flatnonzero(candidates)[np.argmax(gradient[candidates])]
        passive[column] = True
        x = _feasible_solution(gram, correlation, x, passive, free)
        # A column whose coefficient comes straight back to zero (its gradient was round-off)
        # would be chosen again at once: Lawson and Hanson's safeguard skips it until another
        # column changes the solution.
        refused[:] = False
        refused[column] = not passive[column]
    else:
        raise RuntimeError("nnls: maximum number of iterations reached")
    solution = x / norms
    return solution, float(np.linalg.norm(design @ solution - target))


def _solve(gram: np.ndarray, correlation: np.ndarray, passive: np.ndarray) -> np.ndarray:
    """Least squares on the ``passive`` columns, from their normal equations."""
    columns = np.flatnonzero(passive)
    sub_gram, sub_correlation = gram[columns[:, None], columns], correlation[columns]
    try:
        return np.linalg.solve(sub_gram, sub_correlation)
    except np.linalg.LinAlgError:  # dependent columns: the minimum-norm solution
        return np.linalg.lstsq(sub_gram, sub_correlation, rcond=None)[0]


def _feasible_solution(
    gram: np.ndarray,
    correlation: np.ndarray,
    x: np.ndarray,
    passive: np.ndarray,
    free: np.ndarray,
) -> np.ndarray:
    """The inner loop: the unconstrained solution on the passive columns, walked back
    towards ``x`` (and the non-free columns it zeroes made active) until it is feasible.
    Each pass makes at least one column active, so there are at most as many passes as
    columns."""
    for _ in range(passive.size + 1):
        trial = np.zeros(x.size)
        trial[passive] = _solve(gram, correlation, passive)
        negative = passive & ~free & (trial <= 0)
        if not negative.any():
            return trial
        # The longest step from x towards trial that keeps every bounded coefficient >= 0.
        # (A new column whose trial coefficient is exactly 0 gives 0/0: a step of 0 drops it.)
        drop = x[negative] - trial[negative]
        step = np.min(np.divide(x[negative], drop, out=np.zeros_like(drop), where=drop > 0))
        x = x + step * (trial - x)
        passive &= free | (x > EPS * np.abs(x).max(initial=1.0))
        x[~passive] = 0.0
    raise RuntimeError("nnls: the inner loop did not end")
