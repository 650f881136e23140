"""Non-negative least squares: ``min ||A x - b||`` subject to ``x >= 0``.

The screens seed each fit's linear coefficients with it (``optimise._linear_completion``).
It is Lawson and Hanson's active-set algorithm ("Solving Least Squares Problems", SIAM,
1995, ch. 23), the one ``scipy.optimize.nnls`` implements; written here with numpy's
least squares so that a fit never imports ``scipy.optimize``, whose import alone took
0.15-0.2 s of every ``cptopt fit``. The screens' problems are small (about 130 x 6), so
the few ``lstsq`` calls per problem cost tens of microseconds.
"""

from __future__ import annotations

import numpy as np


def nnls(design: np.ndarray, target: np.ndarray, max_iter: int | None = None) -> tuple:
    """``(x, ||design @ x - target||)`` with ``x >= 0`` minimising the residual's norm.

    ``max_iter`` (default ``3 * n``, as SciPy's) bounds the outer loop's column additions;
    past it a ``RuntimeError`` says that the problem did not converge.
    """
    _, n = design.shape
    max_iter = 3 * n if max_iter is None else max_iter
    # Relative to the problem's size, so that round-off in the gradient never adds a column.
    tolerance = 10 * np.finfo(float).eps * np.linalg.norm(design, 1) * max(design.shape)
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    gradient = design.T @ target
    refused = np.zeros(n, dtype=bool)
    for _ in range(max_iter + 1):
        candidates = ~passive & ~refused & (gradient > tolerance)
        if not candidates.any():
            break
        column = np.flatnonzero(candidates)[np.argmax(gradient[candidates])]
        passive[column] = True
        x = _feasible_solution(design, target, x, passive)
        # A column whose own coefficient comes back zero (its gradient was round-off, or it
        # is the negative of a passive one) would be chosen again at once: Lawson and
        # Hanson's safeguard skips it until another column changes the solution.
        refused[:] = ~passive & (np.arange(n) == column)
        gradient = design.T @ (target - design @ x)
    else:
        raise RuntimeError("nnls: maximum number of iterations reached")
    return x, float(np.linalg.norm(design @ x - target))


def _feasible_solution(
    design: np.ndarray, target: np.ndarray, x: np.ndarray, passive: np.ndarray
) -> np.ndarray:
    """The inner loop: the unconstrained solution on the passive columns, walked back
    towards ``x`` (and the columns it zeroes made active) until it is non-negative. Each
    pass makes at least one column active, so there are at most as many passes as columns."""
    for _ in range(passive.size + 1):
        trial = np.zeros_like(x)
        trial[passive] = np.linalg.lstsq(design[:, passive], target, rcond=None)[0]
        negative = passive & (trial <= 0)
        if not negative.any():
            return trial
        # The longest step from x towards trial that keeps every passive entry >= 0.
        step = np.min(x[negative] / (x[negative] - trial[negative]))
        x = x + step * (trial - x)
        passive &= x > np.finfo(float).eps * np.abs(x).max(initial=1.0)
        x[~passive] = 0.0
    raise RuntimeError("nnls: the inner loop did not end")
