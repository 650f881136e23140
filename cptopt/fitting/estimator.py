"""Fit the CPT law to pilot runs (App. C of the paper, with a sturdier optimiser).

Objective: Huber loss (``delta`` ~1e-3) of the log residuals ``log(pred) - log(observed)``,
pooled over every pilot run and the PT-phase points where they are logged.

Optimiser: bounded trust-region least squares (``scipy.optimize.least_squares``, method
``trf``, ``loss="huber"``), which minimises exactly that Huber objective and, unlike
L-BFGS-B on the summed loss, uses the residuals' Jacobian. Starts: many random draws of
the shape parameters, each completed by the bounded linear least-squares solution for the
linear ones (variable projection); the best few are polished. Deterministic for a seed.

Uncertainty: each pilot is left out in turn and the law refitted (warm-started). The
leave-one-pilot-out (LOPO) fits give (i) the cross-validated error used to select law
variants and (ii) jackknife standard errors of parameters and of every prediction.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from cptopt.exceptions import FitError, InputError
from cptopt.law.areas import Areas, cpt_point_areas
from cptopt.law.forms import CptLaw, make_law
from cptopt.pilots.runs import VALIDATION_SETS, PilotSet

#: A parameter is "at a bound" when within this share of its range from it.
BOUND_TOLERANCE = 1e-4
#: PT-phase points are pooled from this share of the (first) checkpoint's PT step on.
#: DECISION: early PT (loss still far above the power-law regime, e.g. a plateau before a
#: drop) is not what Tissue's law describes; pooling it pinned L0 at 0 and raised the
#: leave-one-pilot-out CV error in every variant tried on the bundled pilots.
PT_POINTS_FROM = 0.25
#: Relative change of the Huber cost at which an optimisation stops. Starts that converge
#: agree to ~1e-7 in cost here, far below what moves a prediction.
FTOL = 1e-7
#: Evaluation budget of the probe that ranks starts before the best are polished.
PROBE_NFEV = 40
#: Evaluation budget of a warm-started refit (leave-one-out folds, neighbouring lambdas).
WARM_MAX_NFEV = 60
#: Evaluation budget of a leave-one-out refit while choosing among variants.
SELECTION_MAX_NFEV = 25
#: Evaluation budget of the polished start of each variant while choosing among variants
#: (slowly converging forms stop early; the winner is then polished to convergence).
SELECTION_POLISH_NFEV = 150
#: At most this many cross-validation folds; with more pilots, folds group pilots.
MAX_FOLDS = 10


@dataclass(frozen=True)
class FitData:
    """Pooled observations of one validation set: areas, losses, and their origin.

    ``run_index[i]`` is the pilot index of point ``i`` (-1 for PT-phase points);
    ``step[i]`` its step (CPT step, or PT step for PT-phase points).
    """

    areas: Areas
    loss: np.ndarray
    run_index: np.ndarray
    step: np.ndarray

    def take(self, mask: np.ndarray) -> FitData:
        return FitData(
            self.areas.take(mask), self.loss[mask], self.run_index[mask], self.step[mask]
        )


def collect_points(
    pilots: PilotSet, validation_set: str, lam: float | None, history: bool = False
) -> FitData:
    """Pool every pilot's curve of ``validation_set`` (and PT-phase points, if logged).

    ``lam`` None: no S2 (a law without the m-recursion); ``history``: record the drop
    history of every point (laws with the multi-power annealing).
    """
    parts: list[Areas] = []
    losses, run_index, steps = [], [], []
    pt_areas = pilots.pretrain.areas(lam) if pilots.pretrain.known else None
    for index, run in enumerate(pilots.runs):
        curve = run.curve(validation_set)
        if curve is None:
            continue
        state = pilots.pretrain.checkpoint_state(run.checkpoint, lam)
        parts.append(
            cpt_point_areas(run.cpt_lr, curve.steps, lam, state, run.replay_ratio, history=history)
        )
        losses.append(curve.values)
        run_index.append(np.full(len(curve), index))
        steps.append(curve.steps)
    pt_curve = pilots.pretrain.curve(validation_set)
    if pt_areas is not None and pt_curve is not None and pilots.use_pretrain_points:
        first_checkpoint = min(pilots.pretrain.checkpoints.values(), default=pt_areas.s1.size)
        start = max(pilots.pretrain.warmup_steps + 1, PT_POINTS_FROM * first_checkpoint)
        keep = (pt_curve.steps >= start) & (pt_curve.steps <= pt_areas.s1.size)
        pt_steps = pt_curve.steps[keep]
        s1, s2 = pt_areas.at_steps(pt_steps)
        zeros = np.zeros(pt_steps.size)
        pt_history = pt_areas.history_at(pt_steps) if history else None
        parts.append(Areas(s1, s2, zeros, zeros, np.ones(pt_steps.size), history=pt_history))
        losses.append(pt_curve.values[keep])
        run_index.append(np.full(pt_steps.size, -1))
        steps.append(pt_steps)
    if not parts:
        raise InputError(f"no pilot logs a {validation_set} loss")
    return FitData(
        Areas.concatenate(parts),
        np.concatenate(losses),
        np.concatenate(run_index),
        np.concatenate(steps),
    )


# ----------------------------------------------------------------------------- optimiser


class _Coordinates:
    """Optimiser coordinates: log for scale parameters (``is_log``), bounded TRF solves."""

    is_log: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    def to_values(self, internal: np.ndarray) -> np.ndarray:
        values = np.array(internal, dtype=float)
        values[..., self.is_log] = np.exp(values[..., self.is_log])
        return values

    def to_internal(self, values: np.ndarray) -> np.ndarray:
        return np.where(self.is_log, np.log(np.maximum(values, 1e-300)), values)

    def solve(self, x0: np.ndarray, max_nfev: int | None = None) -> tuple[np.ndarray, float, int]:
        """Bounded TRF with the Huber loss from ``x0``: (internal x, cost, evaluations)."""
        from scipy.optimize import least_squares  # ~0.4 s to import: only when fitting

        x0 = np.clip(x0, self.lower + 1e-10, self.upper - 1e-10)
        result = least_squares(
            self.residuals,  # type: ignore[attr-defined]
            x0,
            jac=self.jacobian,  # type: ignore[attr-defined]
            bounds=(self.lower, self.upper),
            method="trf",
            loss="huber",
            f_scale=self.delta,  # type: ignore[attr-defined]
            x_scale="jac",
            ftol=FTOL,
            max_nfev=max_nfev,
        )
        return result.x, float(result.cost), int(result.nfev)


@dataclass
class _Problem(_Coordinates):
    """One least-squares problem: a law form and the data, in the optimiser's coordinates."""

    law: CptLaw
    data: FitData
    delta: float
    is_log: np.ndarray = field(init=False)
    lower: np.ndarray = field(init=False)
    upper: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        specs = self.law.specs
        self.is_log = np.array([s.log for s in specs])
        self.lower = np.array([np.log(s.lower) if s.log else s.lower for s in specs])
        self.upper = np.array([np.log(s.upper) if s.log else s.upper for s in specs])
        self.log_loss = np.log(self.data.loss)

    def residuals(self, internal: np.ndarray) -> np.ndarray:
        predicted = self.law.evaluate(self.to_values(internal), self.data.areas)
        return np.log(np.maximum(predicted, 1e-12)) - self.log_loss

    def jacobian(self, internal: np.ndarray) -> np.ndarray:
        """d residual / d internal parameter, shape ``(n_points, P)`` (analytic)."""
        values = self.to_values(internal)
        predicted, jac = self.law.jacobian(values, self.data.areas)
        jac = jac * np.where(self.is_log, values, 1.0)
        return jac / np.maximum(predicted, 1e-12)[:, None]

    def cost(self, internal: np.ndarray) -> float:
        """Huber objective (the same scale as ``least_squares``' ``cost``)."""
        z = (self.residuals(internal) / self.delta) ** 2
        rho = np.where(z <= 1, z, 2 * np.sqrt(z) - 1)
        return 0.5 * self.delta**2 * float(rho.sum())

    def screen(self, rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, float]]:
        """``count`` random shapes completed by linear least squares: (values, cost)."""
        return [_linear_completion(self, shape) for shape in _random_shapes(self.law, rng, count)]


@dataclass
class _JointProblem(_Coordinates):
    """Both validation sets in one least-squares problem, the ``shared`` parameters tied.

    The joint vector is the general law's parameters followed by the domain law's own ones;
    the domain law's tied parameters take the general law's values. Residuals are stacked,
    so the objective is the sum of the two sets' Huber costs, as for separate fits.
    """

    general: _Problem
    domain: _Problem
    shared: tuple[str, ...]

    def __post_init__(self) -> None:
        g_names, d_names = self.general.law.names, self.domain.law.names
        self.delta = self.general.delta
        self.d_own = np.array([i for i, n in enumerate(d_names) if n not in self.shared])
        self.d_tied = np.array([i for i, n in enumerate(d_names) if n in self.shared])
        self.g_tied = np.array([g_names.index(d_names[i]) for i in self.d_tied])
        self.n_general = len(g_names)
        self.lower = np.concatenate([self.general.lower, self.domain.lower[self.d_own]])
        self.upper = np.concatenate([self.general.upper, self.domain.upper[self.d_own]])
        self.is_log = np.concatenate([self.general.is_log, self.domain.is_log[self.d_own]])

    def split(self, joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joint vector -> (general, domain) vectors (any coordinates)."""
        joint = np.asarray(joint, dtype=float)
        general = joint[: self.n_general]
        domain = np.empty(len(self.domain.law.names))
        domain[self.d_own] = joint[self.n_general :]
        domain[self.d_tied] = general[self.g_tied]
        return general, domain

    def join(self, general: np.ndarray, domain: np.ndarray) -> np.ndarray:
        """(general, domain) vectors -> joint vector (the domain's tied values are dropped)."""
        return np.concatenate([np.asarray(general, float), np.asarray(domain, float)[self.d_own]])

    def residuals(self, internal: np.ndarray) -> np.ndarray:
        general, domain = self.split(internal)
        return np.concatenate([self.general.residuals(general), self.domain.residuals(domain)])

    def jacobian(self, internal: np.ndarray) -> np.ndarray:
        general, domain = self.split(internal)
        jac_g, jac_d = self.general.jacobian(general), self.domain.jacobian(domain)
        jac = np.zeros((jac_g.shape[0] + jac_d.shape[0], self.lower.size))
        jac[: jac_g.shape[0], : self.n_general] = jac_g
        jac[jac_g.shape[0] :, self.n_general :] = jac_d[:, self.d_own]
        jac[jac_g.shape[0] :, self.g_tied] += jac_d[:, self.d_tied]
        return jac

    def screen(self, rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, float]]:
        """Random shapes for both sets (tied ones drawn once), each set completed linearly."""
        out = []
        general_shapes = _random_shapes(self.general.law, rng, count)
        domain_shapes = _random_shapes(self.domain.law, rng, count)
        for g_shape, d_shape in zip(general_shapes, domain_shapes, strict=True):
            d_shape.update({name: g_shape[name] for name in self.shared})
            g_values, g_cost = _linear_completion(self.general, g_shape)
            d_values, d_cost = _linear_completion(self.domain, d_shape)
            out.append((self.join(g_values, d_values), g_cost + d_cost))
        return out


def _linear_completion(
    problem: _Problem, shape_values: dict[str, float]
) -> tuple[np.ndarray, float]:
    """Best linear parameters for fixed shape parameters (relative least squares).

    Linear coefficients are either >= 0 or free (lower bound < 0): non-negative least
    squares (fast, exact) with each free column split into a +/- pair. Upper bounds are
    far from any fitted value and are applied by clipping; this only seeds the real fit.
    """
    from scipy.optimize import nnls

    law = problem.law
    shape = {name: np.asarray([value]) for name, value in shape_values.items()}
    weights = 1.0 / problem.data.loss
    basis = law.basis(shape, problem.data.areas) * weights[:, None]
    specs = {s.name: s for s in law.specs}
    free = np.array([specs[name].lower < 0 for name in law.linear_names])
    design = np.hstack([basis, -basis[:, free]])
    target = problem.data.loss * weights
    if not np.isfinite(design).all():
        return np.full(len(law.names), np.nan), np.inf
    try:
        solution, residual_norm = nnls(design, target)
    except RuntimeError:  # nnls did not converge: treat this draw as a bad start
        return np.full(len(law.names), np.nan), np.inf
    linear = solution[: basis.shape[1]].copy()
    linear[free] -= solution[basis.shape[1] :]
    upper = np.array([specs[name].upper for name in law.linear_names])
    lower = np.array([specs[name].lower for name in law.linear_names])
    linear = np.clip(linear, lower, upper)
    values = np.empty(len(law.names))
    for name, value in shape_values.items():
        values[law.names.index(name)] = value
    values[[law.names.index(name) for name in law.linear_names]] = linear
    return values, 0.5 * float(residual_norm) ** 2


def _random_shapes(law: CptLaw, rng: np.random.Generator, count: int) -> list[dict[str, float]]:
    draws = []
    for _ in range(count):
        shape = {}
        for spec in law.specs:
            if spec.linear:
                continue
            if spec.log:
                shape[spec.name] = float(
                    np.exp(rng.uniform(np.log(spec.start_low), np.log(spec.start_high)))
                )
            else:
                shape[spec.name] = float(rng.uniform(spec.start_low, spec.start_high))
        draws.append(shape)
    return draws


@dataclass(frozen=True)
class SingleFit:
    """The best parameters of one law on one data set, and how they were found."""

    values: np.ndarray
    cost: float
    nfev: int
    start_costs: tuple[float, ...]


def _solve_each(
    problem: _Problem | _JointProblem, starts: list[np.ndarray], max_nfev: int | None
) -> tuple[list[tuple[float, np.ndarray]], int]:
    """Optimise from each start; ``(cost, x)`` of those that finished, best first, and nfev."""
    results, nfev = [], 0
    for x0 in starts:
        try:
            x, cost, used = problem.solve(x0, max_nfev=max_nfev)
        except (ValueError, np.linalg.LinAlgError):
            continue
        nfev += used
        if np.isfinite(cost):
            results.append((cost, x))
    results.sort(key=lambda item: item[0])
    return results, nfev


def optimise(
    law: CptLaw,
    data: FitData,
    *,
    delta: float,
    rng: np.random.Generator,
    n_starts: int,
    n_screen: int,
    warm_start: np.ndarray | None = None,
    max_nfev: int | None = None,
    n_polish: int = 1,
) -> SingleFit:
    """Multi-start fit of ``law`` to ``data``; see :func:`optimise_problem`."""
    return optimise_problem(
        _Problem(law, data, delta),
        rng=rng,
        n_starts=n_starts,
        n_screen=n_screen,
        warm_start=warm_start,
        max_nfev=max_nfev,
        n_polish=n_polish,
        what=f"the {law.validation_set} law",
    )


def optimise_problem(
    problem: _Problem | _JointProblem,
    *,
    rng: np.random.Generator,
    n_starts: int,
    n_screen: int,
    warm_start: np.ndarray | None = None,
    max_nfev: int | None = None,
    n_polish: int = 1,
    what: str = "the law",
) -> SingleFit:
    """Multi-start fit of one problem; see the module docstring.

    Candidates: ``warm_start`` (if given) and the best of ``n_screen`` random shapes completed
    by linear least squares, ``n_starts`` in all. With more candidates than ``n_polish``,
    each is first probed with ``PROBE_NFEV`` evaluations; the ``n_polish`` best are then
    optimised to convergence (or to ``max_nfev`` evaluations, if given).
    """
    candidates: list[np.ndarray] = []
    if warm_start is not None:
        candidates.append(problem.to_internal(warm_start))
    if n_starts > len(candidates) and n_screen > 0:
        screened = [item for item in problem.screen(rng, n_screen) if np.isfinite(item[1])]
        screened.sort(key=lambda item: item[1])
        for values, _ in screened[: n_starts - len(candidates)]:
            candidates.append(problem.to_internal(values))
    probe_nfev = 0
    if len(candidates) > n_polish:
        probed, probe_nfev = _solve_each(problem, candidates, PROBE_NFEV)
        candidates = [x for _, x in probed[:n_polish]]
    results, nfev = _solve_each(problem, candidates, max_nfev)
    nfev += probe_nfev
    if not results:
        raise FitError(f"every start failed to fit {what}")
    return SingleFit(
        problem.to_values(results[0][1]), results[0][0], nfev, tuple(c for c, _ in results)
    )


def relative_residuals(law: CptLaw, values: np.ndarray, data: FitData) -> np.ndarray:
    """``pred / observed - 1`` at every point."""
    return law.evaluate(values, data.areas) / data.loss - 1.0


def at_bound(law: CptLaw, values: np.ndarray) -> list[str]:
    """Names of parameters within ``BOUND_TOLERANCE`` of a finite, non-sign bound."""
    names = []
    for spec, value in zip(law.specs, values, strict=True):
        low, high = (
            (np.log(spec.lower), np.log(spec.upper)) if spec.log else (spec.lower, spec.upper)
        )
        internal = np.log(value) if spec.log else value
        width = high - low
        # A linear coefficient sitting at 0 means "term switched off", which is a sign
        # constraint doing its job; still worth reporting, so only lower==0 linear is kept.
        if internal - low <= BOUND_TOLERANCE * width or high - internal <= BOUND_TOLERANCE * width:
            names.append(spec.name)
    return names


def make_law_for(
    form: str, validation_set: str, pilots: PilotSet, replay_terms: bool, annealing: str = "s2"
) -> CptLaw:
    """The law form for this pilot set (black-box mode follows the PT history)."""
    return make_law(form, validation_set, replay_terms, pilots.pretrain.known, annealing)


def check_enough_points(law: CptLaw, data: FitData) -> None:
    """Raise when there are fewer observations than free parameters."""
    if data.loss.size <= len(law.names):
        raise InputError(
            f"{law.validation_set} loss: {data.loss.size} points for {len(law.names)} "
            "parameters; log more evaluation points or add pilots"
        )


# ----------------------------------------------------------------------------- estimator


def _jackknife_se(replicas: np.ndarray) -> np.ndarray:
    """Jackknife standard error over leave-one-out replicas (axis 0)."""
    n = replicas.shape[0]
    return np.sqrt((n - 1) / n * ((replicas - replicas.mean(axis=0)) ** 2).sum(axis=0))


def _robust_sd(values: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def cv_folds(run_ids: list[int], max_folds: int = MAX_FOLDS) -> list[list[int]]:
    """Leave-one-pilot-out folds, grouped round-robin when there are more than ``max_folds``."""
    if len(run_ids) <= max_folds:
        return [[run_id] for run_id in run_ids]
    return [run_ids[start::max_folds] for start in range(max_folds)]


@dataclass
class SetResult:
    """Everything computed for one validation set under one law variant."""

    law: CptLaw
    data: FitData
    best: SingleFit
    replicas: list[np.ndarray]
    held_out: dict[int, np.ndarray]  # run index -> relative residuals of its left-out fit

    @property
    def cv_error(self) -> float | None:
        """Mean over pilots of the mean |relative error| of its curve when left out."""
        if not self.held_out:
            return None
        return float(np.mean([np.abs(errors).mean() for errors in self.held_out.values()]))

    def cv_per_run(self) -> dict[int, float]:
        """Mean |relative error| of each pilot's curve when it is left out."""
        return {run: float(np.abs(errors).mean()) for run, errors in self.held_out.items()}

    def cv_rms(self, runs: list[int] | None = None) -> float | None:
        """Root mean square of the log errors of the left-out points (of ``runs``, or all)."""
        held = [errors for run, errors in self.held_out.items() if runs is None or run in runs]
        if not held:
            return None
        errors = np.log1p(np.concatenate(held))
        return float(np.sqrt(np.mean(errors**2)))


def fit_validation_set(
    law: CptLaw,
    data: FitData,
    *,
    delta: float,
    rng: np.random.Generator,
    n_starts: int,
    n_screen: int,
    jackknife: bool,
    warm_start: np.ndarray | None = None,
    n_polish: int = 2,
    refit_budget: int = 60,
    polish_budget: int | None = None,
) -> SetResult:
    """Fit one validation set, then refit leaving each pilot (fold) out, warm-started."""
    check_enough_points(law, data)
    best = optimise(
        law,
        data,
        delta=delta,
        rng=rng,
        n_starts=n_starts,
        n_screen=n_screen,
        warm_start=warm_start,
        n_polish=n_polish,
        max_nfev=polish_budget,
    )
    replicas: list[np.ndarray] = []
    held_out: dict[int, np.ndarray] = {}
    run_ids = sorted({int(i) for i in data.run_index if i >= 0})
    if jackknife and len(run_ids) >= 3:
        for fold in cv_folds(run_ids):
            left_out = np.isin(data.run_index, fold)
            refit = optimise(
                law,
                data.take(~left_out),
                delta=delta,
                rng=rng,
                n_starts=1,
                n_screen=0,
                warm_start=best.values,
                max_nfev=refit_budget,
            )
            replicas.append(refit.values)
            for run_id in fold:
                held = (data.run_index == run_id) & (data.step > 0)
                if held.any():
                    held_out[run_id] = relative_residuals(law, refit.values, data.take(held))
    return SetResult(law, data, best, replicas, held_out)


def fit_tied(
    laws: dict[str, CptLaw],
    datas: dict[str, FitData],
    shared: tuple[str, ...],
    *,
    delta: float,
    rng: np.random.Generator,
    n_starts: int,
    n_screen: int,
    jackknife: bool,
    warm_start: dict[str, np.ndarray] | None = None,
    n_polish: int = 2,
    refit_budget: int = 60,
    polish_budget: int | None = None,
) -> dict[str, SetResult]:
    """:func:`fit_validation_set` for both sets at once, the ``shared`` parameters tied.

    Leave-one-pilot-out refits leave the pilot out of both sets.
    """
    for name in VALIDATION_SETS:
        check_enough_points(laws[name], datas[name])

    def problem_for(masks: dict[str, np.ndarray] | None) -> _JointProblem:
        parts = {
            name: _Problem(
                laws[name], datas[name] if masks is None else datas[name].take(masks[name]), delta
            )
            for name in VALIDATION_SETS
        }
        return _JointProblem(parts["general"], parts["domain"], shared)

    problem = problem_for(None)
    start = None
    if warm_start is not None:
        start = problem.join(warm_start["general"], warm_start["domain"])
    best = optimise_problem(
        problem,
        rng=rng,
        n_starts=n_starts,
        n_screen=n_screen,
        warm_start=start,
        n_polish=n_polish,
        max_nfev=polish_budget,
        what="the tied general and domain laws",
    )
    replicas: dict[str, list[np.ndarray]] = {name: [] for name in VALIDATION_SETS}
    held_out: dict[str, dict[int, np.ndarray]] = {name: {} for name in VALIDATION_SETS}
    run_ids = sorted({int(i) for d in datas.values() for i in d.run_index if i >= 0})
    if jackknife and len(run_ids) >= 3:
        for fold in cv_folds(run_ids):
            masks = {name: ~np.isin(datas[name].run_index, fold) for name in VALIDATION_SETS}
            refit = optimise_problem(
                problem_for(masks),
                rng=rng,
                n_starts=1,
                n_screen=0,
                warm_start=best.values,
                max_nfev=refit_budget,
            )
            for name, values in zip(VALIDATION_SETS, problem.split(refit.values), strict=True):
                replicas[name].append(values)
                data = datas[name]
                for run_id in fold:
                    held = (data.run_index == run_id) & (data.step > 0)
                    if held.any():
                        residuals = relative_residuals(laws[name], values, data.take(held))
                        held_out[name][run_id] = residuals
    out = {}
    parts = {"general": problem.general, "domain": problem.domain}
    for name, values in zip(VALIDATION_SETS, problem.split(best.values), strict=True):
        single = SingleFit(
            values, parts[name].cost(parts[name].to_internal(values)), best.nfev, best.start_costs
        )
        out[name] = SetResult(laws[name], datas[name], single, replicas[name], held_out[name])
    return out


@dataclass(frozen=True)
class _TiedJob:
    """Both validation sets' fit under one tied variant: a picklable unit of work."""

    pilots: PilotSet
    replay_terms: bool
    form: str
    annealing: str
    shared: tuple[str, ...]
    seed: int
    huber_delta: float
    n_starts: int
    n_screen: int
    warm_start: dict[str, np.ndarray] | None
    n_polish: int
    refit_budget: int
    polish_budget: int | None = None

    def __call__(self) -> dict[str, SetResult]:
        from threadpoolctl import threadpool_limits

        laws = {
            name: make_law_for(self.form, name, self.pilots, self.replay_terms, self.annealing)
            for name in VALIDATION_SETS
        }
        datas = {
            name: collect_points(self.pilots, name, None, history=laws[name].needs_history)
            for name in VALIDATION_SETS
        }
        rng = np.random.default_rng([self.seed, len(VALIDATION_SETS)])
        with threadpool_limits(limits=1):
            return fit_tied(
                laws,
                datas,
                self.shared,
                delta=self.huber_delta,
                rng=rng,
                n_starts=self.n_starts,
                n_screen=self.n_screen,
                jackknife=True,
                warm_start=self.warm_start,
                n_polish=self.n_polish,
                refit_budget=self.refit_budget,
                polish_budget=self.polish_budget,
            )


@dataclass(frozen=True)
class _SetJob:
    """One validation set's fit under one variant: a picklable unit of work."""

    pilots: PilotSet
    replay_terms: bool
    form: str
    lam: float | None
    annealing: str
    validation_set: str
    seed: int
    huber_delta: float
    n_starts: int
    n_screen: int
    jackknife: bool
    warm_start: np.ndarray | None
    n_polish: int
    refit_budget: int
    polish_budget: int | None = None

    def __call__(self) -> SetResult:
        from threadpoolctl import threadpool_limits

        law = make_law_for(
            self.form, self.validation_set, self.pilots, self.replay_terms, self.annealing
        )
        data = collect_points(self.pilots, self.validation_set, self.lam, history=law.needs_history)
        rng = np.random.default_rng([self.seed, VALIDATION_SETS.index(self.validation_set)])
        with threadpool_limits(limits=1):
            return fit_validation_set(
                law,
                data,
                delta=self.huber_delta,
                rng=rng,
                n_starts=self.n_starts,
                n_screen=self.n_screen,
                jackknife=self.jackknife,
                warm_start=self.warm_start,
                n_polish=self.n_polish,
                refit_budget=self.refit_budget,
                polish_budget=self.polish_budget,
            )


@contextmanager
def _process_pool(n_jobs: int | None) -> Iterator[ProcessPoolExecutor | None]:
    """Two forked workers when asked for (or by default on >= 2 cores), else None."""
    if n_jobs is None:
        n_jobs = min(2, os.cpu_count() or 1)
    if n_jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    with ProcessPoolExecutor(
        max_workers=min(n_jobs, 2), mp_context=multiprocessing.get_context("fork")
    ) as pool:
        yield pool


@dataclass(frozen=True)
class Variant:
    """A law variant that model selection can choose: replay form and annealing memory.

    ``annealing`` "s2" uses the m-recursion with factor ``lam``; "mpl" the multi-power
    memory (``lam`` None).
    """

    form: str
    lam: float | None
    annealing: str = "s2"
    tied: bool = False

    @property
    def shared(self) -> tuple[str, ...]:
        """Parameters the general and domain laws share (tied variants only)."""
        return TIED_PARAMETERS if self.tied else ()


#: Tied variants share the multi-power memory between the general and the domain law: how
#: fast an LR drop's credit arrives is a property of the optimiser and the schedule.
TIED_PARAMETERS = ("rate", "gamma", "zeta")
#: Variants ``--law auto`` compares by leave-one-pilot-out CV error on the pilots.
AUTO_FORMS = ("paper", "exp", "share", "mix")
AUTO_LAMBDAS = (0.98, 0.99, 0.995, 0.999)
AUTO_ANNEALINGS = ("s2", "mpl")


class LawFitter:
    """Fits the CPT law to a :class:`~cptopt.runs.PilotSet` (scikit-learn style).

    The constructor only stores settings; :meth:`fit` validates the pilots, fits both
    validation sets and sets ``law_`` (a :class:`~cptopt.lawfile.FittedLaw`).

    Parameters
    ----------
    form : replay form, ``"paper"`` (Eq. 4 / Eq. 8), ``"exp"``, ``"share"``, ``"mix"`` (see
        :mod:`cptopt.law`), or ``"auto"``: every form of ``AUTO_FORMS`` is a candidate.
    lam : annealing-memory factor of the m-recursion (paper: 0.999), or ``"auto"`` to choose
        it by CV from ``AUTO_LAMBDAS``. A number implies ``annealing="s2"``.
    annealing : ``"s2"`` (the paper's m-recursion), ``"mpl"`` (multi-power memory, no
        lambda) or ``"auto"`` (both are candidates).
    tie : share the multi-power memory (``TIED_PARAMETERS``) between the general and the
        domain law: ``True``, ``False`` (default), or ``"auto"`` (when the memory chosen is
        ``mpl``, the tied variant is a candidate of its own, kept if its CV is within the
        noise of the untied one; about 0.7 s more). Off by default: on the bundled pilots the
        two sets' memories differ (general gamma ~0, domain ~0.4) and the tied law's CV is
        no better (unannealed 1.48 vs 1.45 %, both checkpoints 1.12 vs 1.03 %).
    huber_delta : Huber threshold on log residuals (paper: 1e-3).
    n_starts : polished starts per fit; ``n_screen`` random shapes are screened for them.
    seed : seed of the random starts (same seed, same law).
    jackknife : refit leaving each pilot out (CV error and uncertainties); needs >= 3 pilots.
    n_jobs : processes for the general and domain fits (default: 2 if the machine has 2
        cores and processes can be forked, else 1). The result does not depend on it.

    With several candidates, the variant is chosen by leave-one-pilot-out CV on the pilots
    (:meth:`_select`); the report's selection table lists every candidate.
    """

    def __init__(
        self,
        form: str = "auto",
        lam: float | str = "auto",
        annealing: str = "auto",
        tie: bool | str = False,
        huber_delta: float = 1e-3,
        n_starts: int = 3,
        n_screen: int = 48,
        seed: int = 0,
        jackknife: bool = True,
        n_jobs: int | None = None,
    ) -> None:
        self.form = form
        self.lam = lam
        self.annealing = annealing
        self.tie = tie
        self.huber_delta = huber_delta
        self.n_starts = n_starts
        self.n_screen = n_screen
        self.seed = seed
        self.jackknife = jackknife
        self.n_jobs = n_jobs

    def _variants(self) -> list[Variant]:
        forms = AUTO_FORMS if self.form == "auto" else (self.form,)
        for form in forms:
            make_law(form, "general", True, True)  # raises on an unknown form name
        if self.tie not in ("auto", True, False):
            raise InputError(f"tie == {self.tie!r}, must be True, False or 'auto'")
        if self.tie is True and self.annealing == "s2":
            raise InputError("tie: only the multi-power memory is tied; use annealing 'mpl'")
        if self.annealing not in ("auto", *AUTO_ANNEALINGS):
            choices = ", ".join(("auto", *AUTO_ANNEALINGS))
            raise InputError(f"annealing == {self.annealing!r}, must be one of {choices}")
        if self.lam == "auto":
            lams: tuple[float, ...] = AUTO_LAMBDAS
            annealings = AUTO_ANNEALINGS if self.annealing == "auto" else (self.annealing,)
        else:
            try:
                lam = float(self.lam)
            except (TypeError, ValueError):
                raise InputError(
                    f"lam == {self.lam!r}, must be a number in (0, 1) or 'auto'"
                ) from None
            if not 0 < lam < 1:
                raise InputError(f"lam == {lam}, must be in (0, 1)")
            if self.annealing == "mpl":
                raise InputError("lam is the S2 memory: it cannot be set with annealing 'mpl'")
            lams, annealings = (lam,), ("s2",)
        if self.tie is True:
            if annealings == ("s2",):
                raise InputError("tie: only the multi-power memory is tied; drop lam")
            annealings = ("mpl",)  # tying asks for the multi-power memory
        variants = []
        for form in forms:
            if "s2" in annealings:
                variants += [Variant(form, lam) for lam in lams]
            if "mpl" in annealings:
                variants.append(Variant(form, None, "mpl"))
        return variants

    def _fit_variant(
        self,
        pilots: PilotSet,
        replay_terms: bool,
        variant: Variant,
        warm: dict[tuple[str, str, str], np.ndarray],
        *,
        budget: int,
        jackknife: bool,
        n_polish: int = 2,
        pool: ProcessPoolExecutor | None = None,
        n_starts: int | None = None,
    ) -> dict[str, SetResult]:
        """Fit both validation sets under one variant (warm-started from ``warm`` if present).

        ``warm`` is keyed by (form, annealing, validation set). The two sets are independent
        problems: with a process pool they run side by side. Each set seeds its own
        generator, so the result does not depend on the pool. A tied variant is one joint
        problem (:func:`fit_tied`).
        """
        if variant.tied:
            start = {
                name: warm.get((variant.form, variant.annealing, name))
                for name in ("general", "domain")
            }
            # The untied optimum (tied values from the general law) is an excellent start.
            warm_ok = all(value is not None for value in start.values())
            job = _TiedJob(
                pilots=pilots,
                replay_terms=replay_terms,
                form=variant.form,
                annealing=variant.annealing,
                shared=variant.shared,
                seed=self.seed,
                huber_delta=self.huber_delta,
                n_starts=n_starts or ((1 if n_polish == 1 else 2) if warm_ok else self.n_starts),
                n_screen=self.n_screen,
                warm_start=start if warm_ok else None,
                n_polish=n_polish,
                refit_budget=budget,
                polish_budget=SELECTION_POLISH_NFEV if n_polish == 1 else None,
            )
            return pool.submit(job).result() if pool else job()
        jobs = {}
        for validation_set in ("general", "domain"):
            key = (variant.form, variant.annealing, validation_set)
            job = _SetJob(
                pilots=pilots,
                replay_terms=replay_terms,
                form=variant.form,
                lam=variant.lam,
                annealing=variant.annealing,
                validation_set=validation_set,
                seed=self.seed,
                huber_delta=self.huber_delta,
                # A neighbouring variant's optimum is an excellent start; while selecting it
                # is the only one, in the final fit a fresh start checks it.
                n_starts=n_starts
                or (self.n_starts if key not in warm else 1 if n_polish == 1 else 2),
                n_screen=self.n_screen,
                jackknife=jackknife,
                warm_start=warm.get(key),
                n_polish=n_polish,
                refit_budget=budget,
                polish_budget=SELECTION_POLISH_NFEV if n_polish == 1 else None,
            )
            jobs[validation_set] = pool.submit(job) if pool else job
        per_set = {
            name: job.result() if isinstance(job, Future) else job() for name, job in jobs.items()
        }
        for validation_set, result in per_set.items():
            warm[(variant.form, variant.annealing, validation_set)] = result.best.values
        return per_set

    def _select(
        self,
        pilots: PilotSet,
        replay_terms: bool,
        variants: list[Variant],
        pool: ProcessPoolExecutor | None,
    ) -> tuple[Variant, list[dict], dict[str, SetResult]]:
        """Choose a variant by leave-one-pilot-out CV error, in two (or three) stages.

        Stage 1 chooses the annealing memory (each lambda of S2, and the multi-power form)
        with the ``exp`` replay form: the memory is a property of the optimiser and the
        schedule, not of the replay form. It is judged on the folds that test it: pilots
        whose replay ratio another pilot shares (:func:`memory_folds`). Leaving out the only
        pilot at a replay ratio makes the fold an extrapolation in replay, whose error is the
        replay form's and would drown the memory's (on the bundled pilots it is 3-5x the
        other folds' error for every memory). Stage 2 compares the replay forms with that memory
        by the one-standard-error rule on parameter count: a form with more parameters must
        beat a smaller one by more than the paired standard error; among equal counts the
        lowest CV wins. With ``tie="auto"`` and the multi-power memory, stage 3 compares the
        chosen form with its memory tied between the two sets, by the same rule. Selection
        fits use a small refit budget; the winner is refitted with the full budget and two
        polished starts.
        """
        forms = list(dict.fromkeys(v.form for v in variants))
        memories = list(dict.fromkeys((v.annealing, v.lam) for v in variants))
        reference = "exp" if "exp" in forms else forms[0]
        warm: dict[tuple[str, str, str], np.ndarray] = {}
        results: dict[Variant, dict[str, SetResult]] = {}
        # S2 from the longest memory down, each warm-started from its neighbour.
        ordered = sorted(memories, key=lambda m: (m[0] != "s2", -(m[1] or 0.0)))
        for annealing, lam in ordered:
            variant = Variant(reference, lam, annealing)
            results[variant] = self._fit_variant(
                pilots,
                replay_terms,
                variant,
                warm,
                budget=SELECTION_MAX_NFEV,
                n_polish=1,
                jackknife=True,
                pool=pool,
            )
        folds = memory_folds(pilots)
        stage_one = [row for row in _selection_table(results, folds) if row["form"] == reference]
        best_memory = min(stage_one, key=lambda row: row["cv_memory"])
        memory = (best_memory["annealing"], best_memory["lam"])
        reference_fit = results[Variant(reference, memory[1], memory[0])]
        for form in forms:
            variant = Variant(form, memory[1], memory[0])
            if variant not in results:
                for name, result in reference_fit.items():
                    target = make_law_for(form, name, pilots, replay_terms, variant.annealing)
                    warm[(form, variant.annealing, name)] = translate_start(
                        result.law, result.best.values, target
                    )
                results[variant] = self._fit_variant(
                    pilots,
                    replay_terms,
                    variant,
                    warm,
                    budget=SELECTION_MAX_NFEV,
                    n_polish=1,
                    jackknife=True,
                    pool=pool,
                    n_starts=2,  # the translated optimum, and one fresh start as a guard
                )
        table = _selection_table(results, folds)
        best = one_standard_error_choice(
            [row for row in table if (row["annealing"], row["lam"]) == memory],
            preference=lambda row: (row["n_params"], row["cv_mean"]),
        )
        if self.tie == "auto" and memory[0] == "mpl":
            # Stage 3: the chosen form with the memory tied between the two sets.
            untied = Variant(best["form"], best["lam"], best["annealing"])
            tied = Variant(untied.form, untied.lam, untied.annealing, tied=True)
            results[tied] = self._fit_variant(
                pilots,
                replay_terms,
                tied,
                warm,
                budget=SELECTION_MAX_NFEV,
                n_polish=1,
                jackknife=True,
                pool=pool,
            )
            table = _selection_table(results, folds)
            pair = [row for row in table if (row["form"], row["annealing"]) == (untied.form, "mpl")]
            best = one_standard_error_choice(
                pair, preference=lambda row: (row["n_params"], row["cv_mean"])
            )
        best["chosen"] = True
        chosen = Variant(
            best["form"], best["lam"], best["annealing"], best["tied"] or self.tie is True
        )
        # Warm starts by (form, annealing, set): the chosen variant's own optimum, or, for a
        # tied variant fitted only now (tie=True), the untied one.
        fitted = results.get(chosen) or results[Variant(chosen.form, chosen.lam, chosen.annealing)]
        warm_keys = {
            (chosen.form, chosen.annealing, name): value.best.values
            for name, value in fitted.items()
        }
        final = self._fit_variant(
            pilots,
            replay_terms,
            chosen,
            warm_keys,
            budget=WARM_MAX_NFEV,
            n_polish=2,
            jackknife=True,
            pool=pool,
        )
        return chosen, table, final

    def fit(self, pilots: PilotSet) -> LawFitter:
        """Fit both validation sets (choosing the variant by CV if asked); returns ``self``."""
        from threadpoolctl import threadpool_limits

        from cptopt.law.fitted import FittedLaw

        variants = self._variants()
        replay_ratios = sorted({run.replay_ratio for run in pilots.runs})
        replay_terms = len(replay_ratios) >= 2
        notes = list(dict.fromkeys(note for run in pilots.runs for note in run.notes))
        if not replay_terms:
            notes.append(
                f"all pilots use replay ratio {replay_ratios[0]:g}: the replay terms are not "
                "identifiable, so the law predicts that ratio only (replay is fixed)"
            )
        elif len(replay_ratios) == 2:
            notes.append("only 2 distinct replay ratios: the replay terms are weakly identified")
        selecting = len(variants) > 1
        logged = [
            sum(run.curve(name) is not None for run in pilots.runs)
            for name in ("general", "domain")
        ]
        if selecting and min(logged) < 3:
            raise InputError(
                "choosing the law variant by cross-validation needs >= 3 pilots logging each "
                f"loss, got {min(logged)}; pass an explicit --law, --annealing and --lam"
            )
        # Small arrays: multi-threaded BLAS only adds overhead (and contention) here.
        with threadpool_limits(limits=1), _process_pool(self.n_jobs) as pool:
            if selecting:
                chosen, selection, final = self._select(pilots, replay_terms, variants, pool)
            else:
                chosen, selection = variants[0], []
                if self.tie is True:
                    chosen = Variant(chosen.form, chosen.lam, chosen.annealing, tied=True)
                final = self._fit_variant(
                    pilots,
                    replay_terms,
                    chosen,
                    {},
                    budget=WARM_MAX_NFEV,
                    jackknife=self.jackknife,
                    pool=pool,
                )
        sets = {
            name: _set_fit(result, pilots, self.jackknife or selecting)
            for name, result in final.items()
        }
        self.law_ = FittedLaw(
            form=chosen.form,
            annealing=chosen.annealing,
            lam=chosen.lam,
            tied=list(chosen.shared),
            huber_delta=self.huber_delta,
            seed=self.seed,
            replay_terms=replay_terms,
            notes=notes,
            pretrain=_pretrain_record(pilots),
            coverage=_coverage(pilots),
            general=sets["general"],
            domain=sets["domain"],
            inputs=_inputs(pilots),
            selection=selection,
        )
        return self


def translate_start(source: CptLaw, values: np.ndarray, target: CptLaw) -> np.ndarray:
    """A start for ``target`` from another form's optimum on the same data.

    Coefficients with the same name mean the same thing in every form, except the replay
    rates: ``a1 = 0`` is every form's constant annealing credit, and ``a2`` is copied only
    between the forms whose shift multiplier is ``exp(-a2 r)``; otherwise it starts at the
    middle of its start range.
    """
    named = dict(zip(source.names, np.asarray(values, dtype=float).tolist(), strict=True))
    same_shift = {source.replay_form, target.replay_form} <= {"exp", "share"}
    start = []
    for spec in target.specs:
        if spec.name == "a1":
            value = 0.0
        elif spec.name == "kappa":
            value = 1.0  # Eq. 4: every CPT step counts fully
        elif spec.name == "a2":
            value = (
                named["a2"]
                if same_shift and "a2" in named
                else (spec.start_low + spec.start_high) / 2
            )
        else:
            value = named.get(spec.name, (spec.start_low + spec.start_high) / 2)
        start.append(min(max(value, spec.lower), spec.upper))
    return np.array(start)


def memory_folds(pilots: PilotSet) -> list[int]:
    """Pilots (by index) whose replay ratio at least one other pilot shares.

    Their leave-one-out folds interpolate in replay, so they test the annealing memory
    rather than the replay form. Empty when fewer than 2 pilots qualify: then every fold
    counts.
    """
    ratios = [run.replay_ratio for run in pilots.runs]
    shared = [i for i, ratio in enumerate(ratios) if ratios.count(ratio) >= 2]
    return shared if len(shared) >= 2 else []


def _selection_table(
    results: dict[Variant, dict[str, SetResult]], memory_runs: list[int]
) -> list[dict]:
    """One row per variant tried: CV errors, parameter count, per-pilot CV errors.

    ``cv_memory`` is the CV error over the ``memory_runs`` folds only (all folds if empty).
    """
    table = []
    for variant, per_set in results.items():
        cv_general = per_set["general"].cv_error
        cv_domain = per_set["domain"].cv_error
        n_params = sum(len(result.law.names) for result in per_set.values())
        n_params -= len(variant.shared)
        per_run: dict[int, list[float]] = {}
        for result in per_set.values():
            for run, error in result.cv_per_run().items():
                per_run.setdefault(run, []).append(error)
        cv_mean = float(np.mean([v for v in (cv_general, cv_domain) if v is not None]))
        in_memory = [np.mean(per_run[run]) for run in memory_runs if run in per_run]
        table.append(
            {
                "form": variant.form,
                "annealing": variant.annealing,
                "lam": variant.lam,
                "tied": variant.tied,
                "n_params": n_params,
                "cv_general": cv_general,
                "cv_domain": cv_domain,
                "cv_mean": cv_mean,
                "cv_memory": float(np.mean(in_memory)) if in_memory else cv_mean,
                "cv_per_pilot": {str(run): float(np.mean(v)) for run, v in sorted(per_run.items())},
                "chosen": False,
            }
        )
    return table


def one_standard_error_choice(rows: list[dict], preference) -> dict:
    """The most preferred row whose CV is within one paired standard error of the best.

    CV errors on a handful of pilots are noisy, so a variant with more parameters must beat
    a smaller one by more than the noise of the comparison: the one-standard-error rule
    (Breiman et al. 1984; Hastie et al., ESL 7.10), with the standard error of the
    per-pilot differences to the best row (paired: the same pilots are left out).
    ``preference(row)`` sorts rows from most to least preferred.
    """
    best = min(rows, key=lambda row: row["cv_mean"])
    pilots = sorted(best["cv_per_pilot"])
    eligible = []
    for row in rows:
        shared = [p for p in pilots if p in row["cv_per_pilot"]]
        diffs = np.array([row["cv_per_pilot"][p] - best["cv_per_pilot"][p] for p in shared])
        se = float(diffs.std(ddof=1) / np.sqrt(diffs.size)) if diffs.size > 1 else 0.0
        row["cv_gap_se"] = se
        if row is best or (diffs.size > 0 and diffs.mean() <= se):
            eligible.append(row)
    return min(eligible, key=preference)


def _set_fit(result: SetResult, pilots: PilotSet, with_jackknife: bool):
    from cptopt.law.fitted import RunFit, SetFit
    from cptopt.law.forms import Parameter

    law, data, best = result.law, result.data, result.best
    residuals = relative_residuals(law, best.values, data)
    cpt_points = (data.run_index >= 0) & (data.step > 0)
    replica_array = np.array(result.replicas) if result.replicas and with_jackknife else None
    stderr = _jackknife_se(replica_array) if replica_array is not None else None
    run_fits = []
    for index in sorted({int(i) for i in data.run_index if i >= 0}):
        mask = (data.run_index == index) & (data.step > 0)
        if not mask.any():
            continue
        errors = residuals[mask]
        held = result.held_out.get(index)
        run_fits.append(
            RunFit(
                name=pilots.runs[index].name,
                n_points=int(mask.sum()),
                mean_abs_error=float(np.abs(errors).mean()),
                max_abs_error=float(np.abs(errors).max()),
                final_error=float(errors[-1]),
                cv_mean_abs_error=None if held is None else float(np.abs(held).mean()),
                cv_final_error=None if held is None else float(held[-1]),
            )
        )
    bound_names = at_bound(law, best.values)
    parameters, weak = [], []
    for i, spec in enumerate(law.specs):
        se = None if stderr is None else float(stderr[i])
        value = float(best.values[i])
        if se is not None and (value == 0 or se > abs(value)):
            weak.append(spec.name)
        parameters.append(
            Parameter(
                name=spec.name,
                value=value,
                min=spec.lower,
                max=spec.upper,
                stderr=se,
                at_bound=spec.name in bound_names,
                description=spec.description,
            )
        )
    named = dict(zip(law.names, best.values.tolist(), strict=True))
    total = float(((data.loss - data.loss.mean()) ** 2).sum())
    predicted = law.evaluate(best.values, data.areas)
    r2 = 1.0 - float(((predicted - data.loss) ** 2).sum()) / total if total > 0 else float("nan")
    costs = sorted(best.start_costs)
    agree = len(costs) < 2 or costs[1] - costs[0] <= 1e-5 * max(costs[0], 1e-12)
    return SetFit(
        validation_set=law.validation_set,
        parameter_names=law.names,
        values=best.values.tolist(),
        parameters=parameters,
        derived=law.derived(named),
        jackknife=[] if replica_array is None else replica_array.tolist(),
        noise=_robust_sd(np.log1p(residuals[cpt_points])) if cpt_points.any() else 0.0,
        n_points=int(data.loss.size),
        n_pretrain_points=int((data.run_index < 0).sum()),
        r2=r2,
        mean_abs_error=float(np.abs(residuals[cpt_points]).mean()) if cpt_points.any() else 0.0,
        huber_cost=best.cost,
        cv_error=result.cv_error,
        # The interval scale: held-out error where a prediction stays inside the pilots'
        # replay range (as a decision's candidates do); leaving out the only pilot at a
        # replay ratio measures replay extrapolation, which the jackknife spread covers.
        cv_rms=result.cv_rms(memory_folds(pilots) or None),
        runs=run_fits,
        at_bound=bound_names,
        weakly_identified=weak,
        starts_agree=bool(agree),
    )


def _pretrain_record(pilots: PilotSet):
    from cptopt.law.fitted import PretrainRecord

    history = pilots.pretrain
    return PretrainRecord(
        known=history.known,
        warmup_steps=history.warmup_steps,
        checkpoints=dict(history.checkpoints),
        final_lr=history.final_lr,
        lr=None if history.lr is None else history.lr.tolist(),
    )


def _coverage(pilots: PilotSet):
    from cptopt.law.fitted import Coverage

    peaks = [run.peak_lr for run in pilots.runs]
    steps = [run.steps for run in pilots.runs]
    return Coverage(
        peak_lr_min=min(peaks),
        peak_lr_max=max(peaks),
        replay_ratios=sorted({run.replay_ratio for run in pilots.runs}),
        steps_min=min(steps),
        steps_max=max(steps),
        tokens_per_step=sorted({run.tokens_per_step for run in pilots.runs if run.tokens_per_step}),
        checkpoints=list(dict.fromkeys(run.checkpoint for run in pilots.runs)),
    )


def _inputs(pilots: PilotSet):
    from cptopt.law.fitted import InputRecord

    records = [
        InputRecord(name=run.name, source=run.source, sha256=run.sha256) for run in pilots.runs
    ]
    if pilots.pretrain.source:
        records.append(
            InputRecord(
                name="pretrain", source=pilots.pretrain.source, sha256=pilots.pretrain.sha256
            )
        )
    return records
