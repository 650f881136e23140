"""Bounded trust-region reflective least squares with the Huber loss: the optimiser's solver.

This is ``scipy.optimize.least_squares(method="trf", loss="huber", x_scale="jac",
tr_solver="exact")`` for finite bounds and an analytic Jacobian, written out step for step
after SciPy's ``_lsq/trf.py`` and ``_lsq/common.py`` (BSD-3-Clause, Copyright (c) 2001-2002
Enthought, Inc. and 2003-2024 SciPy Developers; Branch, Coleman and Li, SIAM J. Sci.
Comput. 21(1), 1999). It computes the same iterates with the same floating-point
operations, including SciPy's LAPACK ``gesdd`` for the SVD, so a fit gives bit for bit what
``least_squares`` gives (``tests/fitting/test_trf.py``). What it leaves out is the general
machinery around the algorithm (argument checks, function wrappers with memoisation,
sparse and LinearOperator Jacobians, other losses and solvers): on the fit's small problems
that machinery took about a fifth of a 25-evaluation refit. Nor does it evaluate the
Jacobian at the final point, which SciPy does and never uses.

One addition of cptopt's own: ``solve``'s optional ``stop``, a caller's stopping rule told
the cost at ``x0`` and after every accepted step; when it says True the solve ends at that
point. Without it (None) the iterates are SciPy's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from math import copysign

import numpy as np

EPS = np.finfo(float).eps

Vector = np.ndarray
Residuals = Callable[[Vector], Vector]
Jacobian = Callable[[Vector], np.ndarray]


def thin_svd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The thin SVD SciPy's TRF takes of the augmented Jacobian: LAPACK ``gesdd``, here
    through numpy, so that a fit never imports SciPy (0.2-0.3 s of every command's start).
    Non-finite entries raise ``ValueError``, as ``scipy.linalg.svd``'s check does."""
    if not np.isfinite(a).all():
        raise ValueError("array must not contain infs or NaNs")
    return np.linalg.svd(a, full_matrices=False)


def _norm(v: Vector) -> float:
    """``np.linalg.norm`` of a contiguous float vector, the same operations (``sqrt(v . v)``)
    without its dispatch, which cost more than the product on the fit's short vectors."""
    return math.sqrt(v.dot(v))


def _strictly_feasible(x: Vector, lb: Vector, ub: Vector, rstep: float) -> Vector:
    """``x`` moved inside the (finite) bounds (``make_strictly_feasible``)."""
    x_new = x.copy()
    if rstep == 0:
        upper = x >= ub
        lower = (x <= lb) & ~upper
        x_new[lower] = np.nextafter(lb[lower], ub[lower])
        x_new[upper] = np.nextafter(ub[upper], lb[upper])
    else:
        lower_dist, upper_dist = x - lb, ub - x
        upper = upper_dist <= np.minimum(lower_dist, rstep * np.maximum(1, np.abs(ub)))
        lower = (lower_dist <= np.minimum(upper_dist, rstep * np.maximum(1, np.abs(lb)))) & ~upper
        x_new[lower] = lb[lower] + rstep * np.maximum(1, np.abs(lb[lower]))
        x_new[upper] = ub[upper] - rstep * np.maximum(1, np.abs(ub[upper]))
    tight = (x_new < lb) | (x_new > ub)
    x_new[tight] = 0.5 * (lb[tight] + ub[tight])
    return x_new


def _huber(f: Vector, f_scale: float) -> np.ndarray:
    """``rho`` (3, m) of the Huber loss at residuals ``f``, scaled by ``f_scale``."""
    z = (f / f_scale) ** 2
    inside = z <= 1
    outside = ~inside
    rho = np.empty((3, z.size))
    rho[0, inside] = z[inside]
    rho[0, outside] = 2 * z[outside] ** 0.5 - 1
    rho[1, inside] = 1
    rho[1, outside] = z[outside] ** -0.5
    rho[2, inside] = 0
    rho[2, outside] = -0.5 * z[outside] ** -1.5
    rho[0] *= f_scale**2
    rho[2] /= f_scale**2
    return rho


def _huber_cost(f: Vector, f_scale: float) -> float:
    z = (f / f_scale) ** 2
    inside = z <= 1
    rho = np.empty_like(z)
    rho[inside] = z[inside]
    rho[~inside] = 2 * z[~inside] ** 0.5 - 1
    return 0.5 * f_scale**2 * np.sum(rho)


def _robust_scaled(J: np.ndarray, f: Vector, rho: np.ndarray) -> tuple[np.ndarray, Vector]:
    """``J`` and ``f`` scaled in place for the robust loss (``scale_for_robust_loss_function``)."""
    J_scale = rho[1] + 2 * rho[2] * f**2
    J_scale[J_scale < EPS] = EPS
    J_scale **= 0.5
    f *= rho[1] / J_scale
    J *= J_scale[:, np.newaxis]
    return J, f


def _step_to_bound(x: Vector, s: Vector, lb: Vector, ub: Vector) -> tuple[float, np.ndarray]:
    non_zero = np.nonzero(s)
    s_non_zero = s[non_zero]
    steps = np.empty_like(x)
    steps.fill(np.inf)
    with np.errstate(over="ignore"):
        steps[non_zero] = np.maximum(
            (lb - x)[non_zero] / s_non_zero, (ub - x)[non_zero] / s_non_zero
        )
    min_step = np.min(steps)
    return min_step, np.equal(steps, min_step) * np.sign(s).astype(int)


def _intersect_trust_region(x: Vector, s: Vector, delta: float) -> tuple[float, float]:
    a = np.dot(s, s)
    if a == 0:
        raise ValueError("`s` is zero.")
    b = np.dot(x, s)
    c = np.dot(x, x) - delta**2
    if c > 0:
        raise ValueError("`x` is not within the trust region.")
    d = np.sqrt(b * b - a * c)
    q = -(b + copysign(d, b))
    t1, t2 = q / a, c / q
    return (t1, t2) if t1 < t2 else (t2, t1)


def _quadratic_1d(
    J: np.ndarray, g: Vector, s: Vector, diag: Vector, s0: Vector | None = None
) -> tuple[float, ...]:
    v = J.dot(s)
    a = np.dot(v, v)
    a += np.dot(s * diag, s)
    a *= 0.5
    b = np.dot(g, s)
    if s0 is None:
        return a, b
    u = J.dot(s0)
    b += np.dot(u, v)
    c = 0.5 * np.dot(u, u) + np.dot(g, s0)
    b += np.dot(s0 * diag, s)
    c += 0.5 * np.dot(s0 * diag, s0)
    return a, b, c


def _minimize_1d(a: float, b: float, lb: float, ub: float, c: float = 0) -> tuple[float, float]:
    t = [lb, ub]
    if a != 0:
        extremum = -0.5 * b / a
        if lb < extremum < ub:
            t.append(extremum)
    ts = np.asarray(t)
    y = ts * (a * ts + b) + c
    index = np.argmin(y)
    return ts[index], y[index]


def _quadratic(J: np.ndarray, g: Vector, s: Vector, diag: Vector) -> float:
    Js = J.dot(s)
    q = np.dot(Js, Js)
    q += np.dot(s * diag, s)
    return 0.5 * q + np.dot(s, g)


def _select_step(
    x: Vector,
    J_h: np.ndarray,
    diag_h: Vector,
    g_h: Vector,
    p: Vector,
    p_h: Vector,
    d: Vector,
    delta: float,
    lb: Vector,
    ub: Vector,
    theta: float,
) -> tuple[Vector, Vector, float]:
    """The trust-region step, its reflection off the bound it hits, or the scaled gradient,
    whichever models the lower cost (``select_step``)."""
    if np.all((x + p >= lb) & (x + p <= ub)):
        return p, p_h, -_quadratic(J_h, g_h, p_h, diag_h)
    p_stride, hits = _step_to_bound(x, p, lb, ub)
    r_h = np.copy(p_h)
    r_h[hits.astype(bool)] *= -1
    r = d * r_h
    p *= p_stride
    p_h *= p_stride
    x_on_bound = x + p
    _, to_tr = _intersect_trust_region(p_h, r_h, delta)
    to_bound, _ = _step_to_bound(x_on_bound, r, lb, ub)
    r_stride = min(to_bound, to_tr)
    if r_stride > 0:
        r_stride_l = (1 - theta) * p_stride / r_stride
        r_stride_u = theta * to_bound if r_stride == to_bound else to_tr
    else:
        r_stride_l, r_stride_u = 0, -1
    if r_stride_l <= r_stride_u:
        a, b, c = _quadratic_1d(J_h, g_h, r_h, diag_h, s0=p_h)
        r_stride, r_value = _minimize_1d(a, b, r_stride_l, r_stride_u, c=c)
        r_h *= r_stride
        r_h += p_h
        r = r_h * d
    else:
        r_value = np.inf
    p *= theta
    p_h *= theta
    p_value = _quadratic(J_h, g_h, p_h, diag_h)
    ag_h = -g_h
    ag = d * ag_h
    to_tr = delta / _norm(ag_h)
    to_bound, _ = _step_to_bound(x, ag, lb, ub)
    ag_stride = theta * to_bound if to_bound < to_tr else to_tr
    a, b = _quadratic_1d(J_h, g_h, ag_h, diag_h)
    ag_stride, ag_value = _minimize_1d(a, b, 0, ag_stride)
    ag_h *= ag_stride
    ag *= ag_stride
    if p_value < r_value and p_value < ag_value:
        return p, p_h, -p_value
    if r_value < p_value and r_value < ag_value:
        return r, r_h, -r_value
    return ag, ag_h, -ag_value


def _trust_region_step(
    n: int, m: int, uf: Vector, s: Vector, V: np.ndarray, delta: float, alpha: float
) -> tuple[Vector, float]:
    """The Levenberg-Marquardt step within radius ``delta`` from one SVD (More 1977;
    ``solve_lsq_trust_region``)."""

    def phi_and_derivative(alpha: float) -> tuple[float, float]:
        denom = s**2 + alpha
        p_norm = _norm(suf / denom)
        return p_norm - delta, -np.sum(suf**2 / denom**3) / p_norm

    suf = s * uf
    full_rank = s[-1] > EPS * m * s[0] if m >= n else False
    if full_rank:
        p = -V.dot(uf / s)
        if _norm(p) <= delta:
            return p, 0.0
    alpha_upper = _norm(suf) / delta
    alpha_lower = 0.0
    if full_rank:
        phi, phi_prime = phi_and_derivative(0.0)
        alpha_lower = -phi / phi_prime
    if not full_rank and alpha == 0:
        alpha = max(0.001 * alpha_upper, (alpha_lower * alpha_upper) ** 0.5)
    for _ in range(10):
        if alpha < alpha_lower or alpha > alpha_upper:
            alpha = max(0.001 * alpha_upper, (alpha_lower * alpha_upper) ** 0.5)
        phi, phi_prime = phi_and_derivative(alpha)
        if phi < 0:
            alpha_upper = alpha
        ratio = phi / phi_prime
        alpha_lower = max(alpha_lower, alpha - ratio)
        alpha -= (phi + delta) * ratio / delta
        if np.abs(phi) < 0.01 * delta:
            break
    p = -V.dot(suf / (s**2 + alpha))
    p *= delta / _norm(p)
    return p, alpha


def _scaling(x: Vector, g: Vector, lb: Vector, ub: Vector) -> tuple[Vector, Vector]:
    """The Coleman-Li scaling vector and its derivative, for finite bounds."""
    v = np.ones_like(x)
    dv = np.zeros_like(x)
    falling = g < 0
    v[falling] = ub[falling] - x[falling]
    dv[falling] = -1
    rising = g > 0
    v[rising] = x[rising] - lb[rising]
    dv[rising] = 1
    return v, dv


def _linearised(J: np.ndarray, f: Vector, f_scale: float) -> tuple[np.ndarray, Vector, Vector]:
    """The Jacobian and residuals scaled by the Huber loss's weights, and the gradient."""
    J, f = _robust_scaled(J, f, _huber(f, f_scale))
    return J, f, J.T.dot(f)


def _initial_scale(
    J: np.ndarray, x: Vector, g: Vector, lb: Vector, ub: Vector
) -> tuple[np.ndarray, float]:
    """The variables' first scale (inverse column norms of the Jacobian, 1 where a column is
    zero) and the first trust radius, as scipy's TRF sets them."""
    scale_inv = np.sum(J**2, axis=0) ** 0.5
    scale_inv[scale_inv == 0] = 1
    v, dv = _scaling(x, g, lb, ub)
    v[dv != 0] *= scale_inv[dv != 0]
    delta = _norm(x * scale_inv / v**0.5)
    return scale_inv, (1.0 if delta == 0 else delta)


def _new_radius(
    predicted: float, actual_reduction: float, step_h_norm: float, delta: float
) -> tuple[float, float]:
    """The step's reduction ratio and the next trust radius (scipy's rule: shrink to a
    quarter of the step below 0.25, double a step at the boundary above 0.75)."""
    if predicted > 0:
        ratio = actual_reduction / predicted
    elif predicted == actual_reduction == 0:  # a zero step: exact by construction
        ratio = 1.0
    else:
        ratio = 0.0
    if ratio < 0.25:
        return ratio, 0.25 * step_h_norm
    if ratio > 0.75 and step_h_norm > 0.95 * delta:
        return ratio, delta * 2.0
    return ratio, delta


def solve(
    fun: Residuals,
    jac: Jacobian,
    x0: Vector,
    lb: Vector,
    ub: Vector,
    f_scale: float,
    ftol: float,
    max_nfev: int | None,
    xtol: float = 1e-8,
    gtol: float = 1e-8,
    stop: Callable[[float], bool] | None = None,
) -> tuple[Vector, float, int]:
    """The Huber cost of ``fun`` minimised within the bounds from ``x0``: ``(x, cost, nfev)`` as
    ``least_squares`` gives them (``max_nfev`` None: 100 per variable), or once ``stop`` says so."""
    x = _strictly_feasible(np.asarray(x0, dtype=float), lb, ub, 1e-10)
    f = fun(x)
    if not np.all(np.isfinite(f)):
        raise ValueError("Residuals are not finite in the initial point.")
    J = jac(x)
    m, n = J.shape
    nfev = 1
    max_nfev = x.size * 100 if max_nfev is None else max_nfev
    cost = 0.5 * np.sum(_huber(f, f_scale)[0])
    J, f, g = _linearised(J, f, f_scale)
    scale_inv, delta = _initial_scale(J, x, g, lb, ub)
    scale = 1 / scale_inv
    f_augmented = np.zeros(m + n)
    J_augmented = np.empty((m + n, n))
    alpha = 0.0
    done = stop is not None and stop(float(cost))
    while True:
        v, dv = _scaling(x, g, lb, ub)
        g_norm = _norm_inf(g * v)
        if g_norm < gtol or done or nfev == max_nfev:
            break
        v[dv != 0] *= scale_inv[dv != 0]
        d = v**0.5 * scale
        diag_h = g * dv * scale
        g_h = d * g
        f_augmented[:m] = f
        J_augmented[:m] = J * d
        J_h = J_augmented[:m]
        J_augmented[m:] = np.diag(diag_h**0.5)
        U, s, Vt = thin_svd(J_augmented)
        V = Vt.T
        uf = U.T.dot(f_augmented)
        theta = max(0.995, 1 - g_norm)
        actual_reduction = -1.0
        while actual_reduction <= 0 and nfev < max_nfev:
            p_h, alpha = _trust_region_step(n, m, uf, s, V, delta, alpha)
            p = d * p_h
            step, step_h, predicted = _select_step(
                x, J_h, diag_h, g_h, p, p_h, d, delta, lb, ub, theta
            )
            x_new = _strictly_feasible(x + step, lb, ub, 0)
            f_new = fun(x_new)
            nfev += 1
            step_h_norm = _norm(step_h)
            if not np.all(np.isfinite(f_new)):
                delta = 0.25 * step_h_norm
                continue
            cost_new = _huber_cost(f_new, f_scale)
            actual_reduction = cost - cost_new
            ratio, delta_new = _new_radius(predicted, actual_reduction, step_h_norm, delta)
            ftol_met = actual_reduction < ftol * cost and ratio > 0.25
            if ftol_met or _norm(step) < xtol * (xtol + _norm(x)):
                done = True
                break
            alpha *= delta / delta_new
            delta = delta_new
        if actual_reduction > 0:
            x, f, cost = x_new, f_new, cost_new
            if (stop is not None and stop(float(cost))) or done or nfev == max_nfev:
                break  # SciPy evaluates the Jacobian here too, only to stop at the loop's top
            J, f, g = _linearised(jac(x), f, f_scale)
            scale_inv = np.maximum(np.sum(J**2, axis=0) ** 0.5, scale_inv)
            scale = 1 / scale_inv
    return x, float(cost), nfev


def _norm_inf(v: Vector) -> float:
    return float(np.abs(v).max())
