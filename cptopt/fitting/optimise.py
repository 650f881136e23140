"""The optimiser: multi-start bounded least squares on the Huber loss of log residuals.

Objective: Huber loss (``delta`` ~1e-3) of the log residuals ``log(pred) - log(observed)``,
pooled over the points of :class:`~cptopt.fitting.data.FitData`.

Method: bounded trust-region least squares (SciPy's ``least_squares`` with ``trf`` and
``loss="huber"``, step for step: :mod:`cptopt.fitting.trf`), which minimises exactly that
Huber objective with the residuals' analytic Jacobian, in coordinates that keep it well
conditioned (:class:`Coordinates`: scale parameters on a log scale, the forward power law's
scale as its level at the data's typical area, :class:`Level`). Starts: random draws of the shape
parameters, each completed by the bounded linear least-squares solution for the linear ones
(variable projection); the best few are probed, and the best of those polished.
Deterministic for a seed.

A :class:`Problem` is one law on one data set; a :class:`JointProblem` is both validation
sets at once with some parameters tied (shared) between them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from cptopt.exceptions import FitError, InputError
from cptopt.fitting.data import FitData
from cptopt.fitting.nnls import nnls
from cptopt.fitting.trf import solve
from cptopt.law.forms import LawForm

#: A parameter is "at a bound" when within this share of its range from it.
BOUND_TOLERANCE = 1e-4
#: Relative change of the Huber cost at which an optimisation stops. Starts that converge
#: agree to ~1e-7 in cost here, far below what moves a prediction.
FTOL = 1e-7
#: A solve that may stall (:class:`Stall`: a refit, say) ends once its cost fell by less than
#: this share over its last STALL_STEPS accepted steps.
STALL_FTOL = 1e-5
STALL_STEPS = 3
#: Evaluation budget of the probe that ranks starts before the best are polished.
PROBE_NFEV = 40


#: A power law's scale and exponent, refitted as a level: the optimiser moves
#: ``A * S_ref^-alpha`` (the term's size at the data's typical area) instead of ``A``.
LEVEL_PAIRS = (("A", "alpha"),)


@dataclass(frozen=True)
class Level:
    """One power law's scale carried as its level at a reference area (``log_reference``):
    ``A = level * exp(log_reference * alpha)``. ``A * S^-alpha`` with ``S`` near ``S_ref``
    barely changes when ``alpha`` grows and ``A`` grows as ``S_ref^alpha``; in (A, alpha) that
    is a curved valley the trust region crawls along for hundreds of steps, in (level,
    alpha) a straight one. ``scale_bounds``: ``A``'s own bounds, applied after the map."""

    scale: int
    exponent: int
    log_reference: float
    scale_bounds: tuple[float, float]

    def internal_bounds(self, exponent_bounds: tuple[float, float]) -> tuple[float, float]:
        """The level's bounds: every ``A`` within its own at some exponent in range."""
        low, high = self.scale_bounds
        factor = np.exp(-self.log_reference * np.asarray(exponent_bounds))
        return low * float(factor.min()), high * float(factor.max())


class Coordinates:
    """Optimiser coordinates: log for scale parameters (``is_log``), a power law's scale as
    its level (:class:`Level`), bounded TRF solves."""

    is_log: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    levels: tuple[Level, ...] = ()

    def to_values(self, internal: np.ndarray) -> np.ndarray:
        values = np.array(internal, dtype=float)
        values[..., self.is_log] = np.exp(values[..., self.is_log])
        for level in self.levels:
            scale = values[..., level.scale] * np.exp(
                level.log_reference * values[..., level.exponent]
            )
            # np.minimum/np.maximum: np.clip's dispatch cost more than the map on one vector
            low, high = level.scale_bounds
            values[..., level.scale] = np.minimum(np.maximum(scale, low), high)
        return values

    def to_internal(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        internal = np.where(self.is_log, np.log(np.maximum(values, 1e-300)), values)
        for level in self.levels:
            internal[..., level.scale] = values[..., level.scale] * np.exp(
                -level.log_reference * values[..., level.exponent]
            )
        return internal

    def chain(self, jac: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``d/d values`` columns -> ``d/d internal`` (the log and level maps' chain rule)."""
        jac = jac * np.where(self.is_log, values, 1.0)
        for level in self.levels:
            if values[level.scale] >= level.scale_bounds[1]:
                jac[:, level.scale] = 0.0  # held at A's upper bound by to_values
                continue
            d_scale = jac[:, level.scale].copy()
            jac[:, level.scale] = d_scale * np.exp(level.log_reference * values[level.exponent])
            jac[:, level.exponent] += d_scale * values[level.scale] * level.log_reference
        return jac

    def solve(
        self, x0: np.ndarray, max_nfev: int | None = None, stall: bool = False
    ) -> tuple[np.ndarray, float, int]:
        """Bounded TRF with the Huber loss from ``x0``: (internal x, cost, evaluations);
        :func:`cptopt.fitting.trf.solve`, SciPy's ``least_squares`` step for step, and
        with ``stall`` also ended by :class:`Stall`."""
        x0 = np.clip(x0, self.lower + 1e-10, self.upper - 1e-10)
        return solve(
            self.residuals,  # type: ignore[attr-defined]
            self.jacobian,  # type: ignore[attr-defined]
            x0,
            self.lower,
            self.upper,
            self.delta,  # type: ignore[attr-defined]
            FTOL,
            max_nfev,
            stop=Stall() if stall else None,
        )


class Stall:
    """A solve's stopping rule for when near its optimum is enough (a leave-one-pilot-out
    refit, the length check, the selection's candidates): stop once the cost fell by less
    than a relative ``ftol`` over the last ``steps`` accepted steps. Warm-started from the
    full fit, a refit can crawl on for tens of evaluations with steps that each take a few
    millionths of the cost off (more than ``FTOL``, or with a poor model fit, so SciPy's
    rule does not fire) until its budget ends it. The full fit keeps SciPy's rule: it is
    the law. On the bundled pilots' refits (102 of them, run to convergence) stopping at
    the stall left each left-out pilot's error within 0.15 points of the converged one's."""

    def __init__(self, steps: int = STALL_STEPS, ftol: float = STALL_FTOL) -> None:
        self.ftol = ftol
        self.costs: deque[float] = deque(maxlen=steps + 1)

    def __call__(self, cost: float) -> bool:
        self.costs.append(cost)
        full = len(self.costs) == self.costs.maxlen
        return full and self.costs[0] - cost < self.ftol * cost


@dataclass
class Problem(Coordinates):
    """One least-squares problem: a law form and the data, in the optimiser's coordinates
    (``level_scales=False``: without the levels, only the log scales, as a plain baseline
    optimiser would see the parameters)."""

    law: LawForm
    data: FitData
    delta: float
    level_scales: bool = True
    is_log: np.ndarray = field(init=False)
    lower: np.ndarray = field(init=False)
    upper: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        specs = self.law.specs
        self.is_log = np.array([s.log for s in specs])
        self.lower = np.array([np.log(s.lower) if s.log else s.lower for s in specs])
        self.upper = np.array([np.log(s.upper) if s.log else s.upper for s in specs])
        self.levels = _levels(self.law, self.data) if self.level_scales else ()
        for level in self.levels:
            exponent = (self.lower[level.exponent], self.upper[level.exponent])
            self.lower[level.scale], self.upper[level.scale] = level.internal_bounds(exponent)
        self.log_loss = np.log(self.data.loss)

    def residuals(self, internal: np.ndarray) -> np.ndarray:
        predicted = self.law.evaluate(self.to_values(internal), self.data.areas)
        return np.log(np.maximum(predicted, 1e-12)) - self.log_loss

    def jacobian(self, internal: np.ndarray) -> np.ndarray:
        """d residual / d internal parameter, shape ``(n_points, P)`` (analytic)."""
        values = self.to_values(internal)
        predicted, jac = self.law.jacobian(values, self.data.areas)
        return self.chain(jac, values) / np.maximum(predicted, 1e-12)[:, None]

    def cost(self, internal: np.ndarray) -> float:
        """Huber objective (the same scale as ``least_squares``' ``cost``)."""
        z = (self.residuals(internal) / self.delta) ** 2
        rho = np.where(z <= 1, z, 2 * np.sqrt(z) - 1)
        return 0.5 * self.delta**2 * float(rho.sum())

    def draw(self, rng: np.random.Generator, count: int) -> list[dict[str, float]]:
        """``count`` random shapes (the screen's draws, in its order)."""
        return _random_shapes(self.law, rng, count)

    def complete(self, shapes: list[dict[str, float]]) -> list[tuple[np.ndarray, float]]:
        """Each shape completed by linear least squares: (values, cost)."""
        return [_linear_completion(self, shape) for shape in shapes]

    def screen(self, rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, float]]:
        """``count`` random shapes completed by linear least squares: (values, cost)."""
        return self.complete(self.draw(rng, count))


@dataclass
class JointProblem(Coordinates):
    """Both validation sets in one least-squares problem, the ``shared`` parameters tied.

    The joint vector is the general law's parameters followed by the domain law's own ones;
    the domain law's tied parameters take the general law's values. Residuals are stacked,
    so the objective is the sum of the two sets' Huber costs, as for separate fits.
    """

    general: Problem
    domain: Problem
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
        self.levels = self.general.levels + tuple(
            replace(
                level,
                scale=self._joint_index(level.scale),
                exponent=self._joint_index(level.exponent),
            )
            for level in self.domain.levels
        )

    def _joint_index(self, domain_index: int) -> int:
        """Where a domain parameter sits in the joint vector (a tied one: the general's)."""
        own = list(self.d_own)
        if domain_index in own:
            return self.n_general + own.index(domain_index)
        return int(self.g_tied[list(self.d_tied).index(domain_index)])

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

    def draw(self, rng: np.random.Generator, count: int) -> list[tuple[dict, dict]]:
        """``count`` random shape pairs (general, domain), the general ones drawn first."""
        general_shapes = _random_shapes(self.general.law, rng, count)
        domain_shapes = _random_shapes(self.domain.law, rng, count)
        return list(zip(general_shapes, domain_shapes, strict=True))

    def screen(self, rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, float]]:
        """Random shapes for both sets (tied ones drawn once), each set completed linearly."""
        return self.complete(self.draw(rng, count))

    def complete(self, shapes: list[tuple[dict, dict]]) -> list[tuple[np.ndarray, float]]:
        """Each shape pair completed linearly, set by set (tied values the general's)."""
        out = []
        for g_shape, d_shape in shapes:
            d_shape = dict(d_shape)
            d_shape.update({name: g_shape[name] for name in self.shared})
            g_values, g_cost = _linear_completion(self.general, g_shape)
            d_values, d_cost = _linear_completion(self.domain, d_shape)
            out.append((self.join(g_values, d_values), g_cost + d_cost))
        return out


def _levels(law: LawForm, data: FitData) -> tuple[Level, ...]:
    """The law's power laws to carry as levels at the data's typical forward area (the
    geometric mean of ``S1pt + S1cpt``); none when the PT area is a fitted parameter."""
    names = law.names
    areas = data.areas
    if not getattr(law, "checkpoint_known", True) or len(areas) == 0:
        return ()
    total = np.asarray(areas.s1_pt) + np.asarray(areas.s1_cpt)
    if not np.all(np.isfinite(total)) or np.any(total <= 0):
        return ()
    log_reference = float(np.mean(np.log(total)))
    specs = {spec.name: spec for spec in law.specs}
    return tuple(
        Level(
            names.index(scale),
            names.index(exponent),
            log_reference,
            (specs[scale].lower, specs[scale].upper),
        )
        for scale, exponent in LEVEL_PAIRS
        if scale in specs and exponent in specs and not specs[exponent].log
    )


def _linear_completion(
    problem: Problem, shape_values: dict[str, float]
) -> tuple[np.ndarray, float]:
    """Best linear parameters for fixed shape parameters (relative least squares).

    Linear coefficients are either >= 0 or free (lower bound < 0): non-negative least
    squares (fast, exact) with the free ones unconstrained. Upper bounds are far from any
    fitted value and are applied by clipping; this only seeds the real fit.
    """
    law = problem.law
    shape = {name: np.asarray([value]) for name, value in shape_values.items()}
    weights = 1.0 / problem.data.loss
    design = law.basis(shape, problem.data.areas) * weights[:, None]
    specs = {s.name: s for s in law.specs}
    free = np.array([specs[name].lower < 0 for name in law.linear_names])
    target = problem.data.loss * weights
    if not np.isfinite(design).all():
        return np.full(len(law.names), np.nan), np.inf
    try:
        linear, residual_norm = nnls(design, target, free)
    except RuntimeError:  # nnls did not converge: treat this draw as a bad start
        return np.full(len(law.names), np.nan), np.inf
    upper = np.array([specs[name].upper for name in law.linear_names])
    lower = np.array([specs[name].lower for name in law.linear_names])
    linear = np.clip(linear, lower, upper)
    values = np.empty(len(law.names))
    for name, value in shape_values.items():
        values[law.names.index(name)] = value
    values[[law.names.index(name) for name in law.linear_names]] = linear
    return values, 0.5 * float(residual_norm) ** 2


def _random_shapes(law: LawForm, rng: np.random.Generator, count: int) -> list[dict[str, float]]:
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

    @property
    def starts_agree(self) -> bool:
        """Whether the two best starts reached the same cost (to a relative 1e-5)."""
        costs = sorted(self.start_costs)
        return len(costs) < 2 or costs[1] - costs[0] <= 1e-5 * max(costs[0], 1e-12)


#: One start optimised: (cost, internal x, evaluations), None when it failed (an error).
Solved = tuple[float, np.ndarray, int] | None


def solve_start(
    problem: Problem | JointProblem, x0: np.ndarray, max_nfev: int | None, stall: bool = False
) -> Solved:
    """Optimise from one start (see :data:`Solved`; ``stall``: :class:`Stall` ends it too)."""
    try:
        x, cost, used = problem.solve(x0, max_nfev=max_nfev, stall=stall)
    except (ValueError, np.linalg.LinAlgError):
        return None
    return cost, x, used


def ranked(solved: list[Solved]) -> tuple[list[tuple[float, np.ndarray]], int]:
    """``(cost, x)`` of the starts that finished, best first, and their evaluations."""
    results, nfev = [], 0
    for item in solved:
        if item is None:
            continue
        cost, x, used = item
        nfev += used
        if np.isfinite(cost):
            results.append((cost, x))
    results.sort(key=lambda item: item[0])
    return results, nfev


@dataclass(frozen=True)
class Starts:
    """Where a fit starts and how far each start is optimised.

    Candidates are the warm start (if given) and the best of ``n_screen`` random shapes
    completed by linear least squares, ``n_starts`` in all. With more candidates than
    ``n_polish``, each is first probed with ``PROBE_NFEV`` evaluations; the ``n_polish``
    best are then optimised to convergence, or to ``max_nfev`` evaluations if given, or
    (``stall``) until their cost stalls (:class:`Stall`).
    """

    n_starts: int
    n_screen: int = 0
    n_polish: int = 1
    max_nfev: int | None = None
    stall: bool = False


def optimise(
    law: LawForm,
    data: FitData,
    *,
    delta: float,
    rng: np.random.Generator,
    starts: Starts,
    warm_start: np.ndarray | None = None,
) -> SingleFit:
    """Multi-start fit of ``law`` to ``data``; see :func:`optimise_problem`."""
    problem = Problem(law, data, delta)
    return optimise_problem(problem, rng, starts, warm_start, f"the {law.validation_set} law")


def optimise_problem(
    problem: Problem | JointProblem,
    rng: np.random.Generator | None,
    starts: Starts,
    warm_start: np.ndarray | None = None,
    what: str = "the law",
) -> SingleFit:
    """Multi-start fit of one problem (see :class:`Starts` and the module docstring).

    ``rng`` draws the random shapes; it may be None for a fit that draws none (a single
    start from ``warm_start``). The steps one by one (:func:`draw_shapes`,
    :func:`start_candidates`, :func:`probe_and_polish`): a runner may run the
    starts side by side (:mod:`cptopt.fitting.crossval`), with the same result.
    """
    shapes = draw_shapes(problem, rng, starts, warm_start)
    candidates = start_candidates(problem, shapes, starts.n_starts, warm_start)

    def solve_each(xs: list[np.ndarray], max_nfev: int | None) -> list[Solved]:
        return [solve_start(problem, x, max_nfev, starts.stall) for x in xs]

    return probe_and_polish(problem, candidates, starts, what, solve_each)


#: Solves a batch of starts, each with at most ``max_nfev`` evaluations, in their order.
SolveEach = Callable[[list[np.ndarray], int | None], list[Solved]]


def probe_and_polish(
    problem: Problem | JointProblem,
    candidates: list[np.ndarray],
    starts: Starts,
    what: str,
    solve_each: SolveEach,
) -> SingleFit:
    """The fit from its ``candidates``: each probed briefly when there are more than
    ``starts.n_polish``, the best polished; ``solve_each`` runs a batch (here, or as tasks
    side by side: :mod:`cptopt.fitting.crossval`), with the same result either way."""
    probe_nfev = 0
    if len(candidates) > starts.n_polish:
        probed, probe_nfev = ranked(solve_each(candidates, PROBE_NFEV))
        candidates = [x for _, x in probed[: starts.n_polish]]
    results, nfev = ranked(solve_each(candidates, starts.max_nfev))
    return best_fit(problem, results, nfev + probe_nfev, what)


def draw_shapes(
    problem: Problem | JointProblem,
    rng: np.random.Generator | None,
    starts: Starts,
    warm_start: np.ndarray | None,
) -> list | None:
    """The random shapes a fit screens (None when it needs none, beyond ``warm_start``)."""
    if starts.n_starts <= (warm_start is not None) or starts.n_screen <= 0:
        return None
    if rng is None:
        raise ValueError("random starts need a generator")
    return problem.draw(rng, starts.n_screen)


def start_candidates(
    problem: Problem | JointProblem,
    shapes: list | None,
    n_starts: int,
    warm_start: np.ndarray | None,
) -> list[np.ndarray]:
    """A fit's starts in internal coordinates: ``warm_start`` (if given), then the best
    ``shapes`` completed linearly (:meth:`Problem.complete`), ``n_starts`` in all."""
    candidates: list[np.ndarray] = []
    if warm_start is not None:
        candidates.append(problem.to_internal(warm_start))
    if shapes is not None:
        screened = [item for item in problem.complete(shapes) if np.isfinite(item[1])]
        screened.sort(key=lambda item: item[1])
        for values, _ in screened[: n_starts - len(candidates)]:
            candidates.append(problem.to_internal(values))
    return candidates


def best_fit(
    problem: Problem | JointProblem,
    results: list[tuple[float, np.ndarray]],
    nfev: int,
    what: str,
) -> SingleFit:
    """The fit from the polished starts' ``results`` (:func:`ranked`)."""
    if not results:
        raise FitError(f"every start failed to fit {what}")
    return SingleFit(
        problem.to_values(results[0][1]), results[0][0], nfev, tuple(c for c, _ in results)
    )


def relative_residuals(law: LawForm, values: np.ndarray, data: FitData) -> np.ndarray:
    """``pred / observed - 1`` at every point."""
    return law.evaluate(values, data.areas) / data.loss - 1.0


def at_bound(law: LawForm, values: np.ndarray) -> list[str]:
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


def check_enough_points(law: LawForm, data: FitData) -> None:
    """Raise when there are fewer observations than free parameters."""
    if data.loss.size <= len(law.names):
        raise InputError(
            f"{law.validation_set} loss: {data.loss.size} points for {len(law.names)} "
            "parameters; log more evaluation points or add pilots"
        )
