"""Leave-one-pilot-out cross-validation: the fit, then a refit per left-out pilot.

Each pilot (fold) is left out in turn and the law refitted, warm-started from the full fit.
The refits give (i) the cross-validated error that selects law variants and sets the
interval scale, and (ii) the jackknife replicas of every parameter and prediction
(:mod:`cptopt.law.uncertainty`).

The fit's screen and each of its starts (:class:`Screen`, :class:`Solve`), each refit and
the length check (:class:`Refit`, :class:`LengthCheck`) are tasks that a
:class:`~cptopt.fitting.workers.Runner` runs in this process or in its workers: a fit's
starts run side by side, then its refits. Only the fit draws random starts, from the
caller's generator, in the caller's thread before its tasks start (:func:`fit_steps`), so
the draws do not depend on the workers; a fit's steps then run in a thread of their own
(:meth:`~cptopt.fitting.workers.Runner.background`), and the caller goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cptopt.fitting.optimise import (
    JointProblem,
    Problem,
    SingleFit,
    Solved,
    Starts,
    check_enough_points,
    draw_shapes,
    optimise_problem,
    probe_and_polish,
    relative_residuals,
    solve_start,
    start_candidates,
)
from cptopt.fitting.workers import FitContext, Runner, SetData
from cptopt.law.forms import LawForm
from cptopt.law.scenario import CptScenario, FitData

#: The two sets a tied variant fits as one problem (CPT pilots).
VALIDATION_SETS = CptScenario.validation_sets

#: At most this many cross-validation folds; with more pilots, folds group pilots.
MAX_FOLDS = 10


def cv_folds(run_ids: list[int], max_folds: int = MAX_FOLDS) -> list[list[int]]:
    """Leave-one-pilot-out folds up to :data:`MAX_FOLDS` pilots (or ``max_folds``, if more);
    beyond, ``max_folds`` folds that group pilots round-robin."""
    if len(run_ids) <= max(max_folds, MAX_FOLDS):
        return [[run_id] for run_id in run_ids]
    return [run_ids[start::max_folds] for start in range(max_folds)]


@dataclass
class SetResult:
    """Everything computed for one validation set under one law variant."""

    law: LawForm
    data: FitData
    best: SingleFit
    replicas: list[np.ndarray]
    held_out: dict[int, np.ndarray]  # run index -> relative residuals of its left-out fit
    #: RMS log error at the pilots' ends of the law refitted on their first halves
    #: (:func:`length_extrapolation_rms`); None when not measured.
    length_rms: float | None = None
    #: An averaged law's members, each fitted alone (:mod:`cptopt.fitting.averaging`).
    members: list[SetResult] = field(default_factory=list)

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


def _held_out_errors(
    law: LawForm, values: np.ndarray, data: FitData, fold: list[int]
) -> dict[int, np.ndarray]:
    """Relative residuals of each left-out pilot's CPT points under the refit ``values``."""
    errors = {}
    for run_id in fold:
        held = (data.run_index == run_id) & (data.step > 0)
        if held.any():
            errors[run_id] = relative_residuals(law, values, data.take(held))
    return errors


def _run_ids(*datas: FitData) -> list[int]:
    return sorted({int(i) for data in datas for i in data.run_index if i >= 0})


@dataclass(frozen=True)
class Source:
    """The problem a task solves: one law on its data, or (two laws, ``shared`` names) both
    validation sets at once with the shared parameters tied. ``datas`` are recipes
    (:class:`~cptopt.fitting.workers.SetData`, rebuilt in each process) or the points."""

    laws: tuple[LawForm, ...]
    datas: tuple[SetData | FitData, ...]
    delta: float
    shared: tuple[str, ...] = ()

    def problem(self, context: FitContext, fold: tuple[int, ...] = ()) -> Problem | JointProblem:
        """The problem on every point, or on the points outside the pilots of ``fold``."""
        datas = [context.kept(d, fold) if fold else context.data(d) for d in self.datas]
        parts = [Problem(law, data, self.delta) for law, data in zip(self.laws, datas, strict=True)]
        return parts[0] if len(parts) == 1 else JointProblem(parts[0], parts[1], self.shared)

    def split(self, values: np.ndarray, problem: Problem | JointProblem) -> list[np.ndarray]:
        """Each law's parameters from the problem's vector."""
        return list(problem.split(values)) if isinstance(problem, JointProblem) else [values]

    @property
    def what(self) -> str:
        if len(self.laws) == 1:
            return f"the {self.laws[0].validation_set} law"
        return "the tied general and domain laws"


@dataclass(frozen=True)
class Screen:
    """Task: a fit's starts (:func:`~cptopt.fitting.optimise.start_candidates`) from the
    random shapes the caller drew."""

    source: Source
    shapes: list
    n_starts: int
    warm_start: np.ndarray | None

    def __call__(self, context: FitContext) -> list[np.ndarray]:
        problem = self.source.problem(context)
        return start_candidates(problem, self.shapes, self.n_starts, self.warm_start)


@dataclass(frozen=True)
class Solve:
    """Task: one start of a fit optimised (:func:`~cptopt.fitting.optimise.solve_start`)."""

    source: Source
    x0: np.ndarray
    max_nfev: int | None
    stall: bool = False

    def __call__(self, context: FitContext) -> Solved:
        return solve_start(self.source.problem(context), self.x0, self.max_nfev, self.stall)


def fit_steps(
    runner: Runner,
    source: Source,
    starts: Starts,
    warm_start: np.ndarray | None,
    rng: np.random.Generator | None,
) -> Callable[[], SingleFit]:
    """The multi-start fit of ``source``
    (:func:`~cptopt.fitting.optimise.optimise_problem`'s steps, with the same result), to
    run when called: the screen, and each start's probe and polish, are tasks of their own,
    so the starts run side by side on the runner's workers. Its random shapes are drawn
    here, now: ``rng`` comes back advanced as if the whole fit had run."""
    problem = source.problem(runner.context)
    shapes = draw_shapes(problem, rng, starts, warm_start)

    def solve_each(candidates: list[np.ndarray], max_nfev: int | None) -> list[Solved]:
        tasks = [runner.submit(Solve(source, x, max_nfev, starts.stall)) for x in candidates]
        return [task.result() for task in tasks]

    def steps() -> SingleFit:
        if shapes is None:
            candidates = start_candidates(problem, None, starts.n_starts, warm_start)
        else:
            screen = Screen(source, shapes, starts.n_starts, warm_start)
            candidates = runner.submit(screen).result()
        return probe_and_polish(problem, candidates, starts, source.what, solve_each)

    return steps


@dataclass(frozen=True)
class Refit:
    """Task: the refit without the pilots of ``fold``, from ``start`` (each law's values and
    the relative residuals of the left-out pilots' CPT points under them)."""

    source: Source
    budget: int
    start: np.ndarray
    fold: tuple[int, ...]

    def __call__(self, context: FitContext) -> tuple[list[np.ndarray], list[dict]]:
        problem = self.source.problem(context, self.fold)
        # Near the refit's optimum is enough: what a refit gives (the left-out pilots'
        # errors, a jackknife replica) no longer moves once its cost stalls.
        starts = Starts(n_starts=1, max_nfev=self.budget, stall=True)
        refit = optimise_problem(problem, None, starts, self.start)
        values = self.source.split(refit.values, problem)
        held = [
            _held_out_errors(law, v, context.data(d), list(self.fold))
            for law, v, d in zip(self.source.laws, values, self.source.datas, strict=True)
        ]
        return values, held


@dataclass(frozen=True)
class LengthCheck:
    """Task: :func:`length_extrapolation_rms` of a one-law source from ``start``."""

    source: Source
    budget: int
    start: np.ndarray

    def __call__(self, context: FitContext) -> float | None:
        law, data = self.source.laws[0], context.data(self.source.datas[0])
        starts = Starts(n_starts=1, max_nfev=self.budget, stall=True)
        return length_extrapolation_rms(law, data, self.start, self.source.delta, None, starts)


#: A fit's optimum, and the futures of its refits and of its length check (if any).
Fitted = tuple[SingleFit, list[Future], Future | None]


@dataclass
class PendingSet:
    """One set's fit that may still be running: the optimum (``best``, when it is found),
    the :class:`SetResult` when its refits are done too (:meth:`result`)."""

    law: LawForm
    data: FitData
    fitted: Future[Fitted]
    _done: SetResult | None = None

    @classmethod
    def done(cls, result: SetResult) -> PendingSet:
        """A set fitted to the end: ``result``."""
        fitted: Future[Fitted] = Future()
        fitted.set_result((result.best, [], None))
        return cls(result.law, result.data, fitted, result)

    @property
    def best(self) -> SingleFit:
        return self.fitted.result()[0]

    def result(self) -> SetResult:
        if self._done is None:
            best, refits, length = self.fitted.result()
            replicas: list[np.ndarray] = []
            held_out: dict[int, np.ndarray] = {}
            for future in refits:
                (values,), (held,) = future.result()
                replicas.append(values)
                held_out.update(held)
            length_rms = length.result() if length is not None else None
            self._done = SetResult(self.law, self.data, best, replicas, held_out, length_rms)
        return self._done


def start_validation_set(
    law: LawForm,
    data: SetData | FitData,
    *,
    delta: float,
    rng: np.random.Generator,
    starts: Starts,
    refit_budget: int,
    jackknife: bool,
    warm_start: np.ndarray | None = None,
    length_check: bool = False,
    max_folds: int = MAX_FOLDS,
    runner: Runner | None = None,
) -> PendingSet:
    """Fit one validation set, then start the refits that leave each pilot (fold) out,
    warm-started (and the length check): they run side by side while the caller goes on.

    ``length_check``: also measure the error of a 2x extrapolation in length
    (:func:`length_extrapolation_rms`), which widens intervals beyond the pilots' length.
    ``runner``: where the tasks run (default: this process, at once).
    """
    runner = runner or Runner()
    points = runner.context.data(data)
    check_enough_points(law, points)
    source = Source((law,), (data,), delta)
    fit = fit_steps(runner, source, starts, warm_start, rng)
    run_ids = _run_ids(points)
    folds = cv_folds(run_ids, max_folds) if jackknife and len(run_ids) >= 3 else []

    def fitted() -> Fitted:
        best = fit()
        refits = [runner.submit(Refit(source, refit_budget, best.values, tuple(f))) for f in folds]
        length = None
        if length_check:
            length = runner.submit(LengthCheck(source, refit_budget, best.values))
        return best, refits, length

    return PendingSet(law, points, runner.background(fitted))


def fit_validation_set(law: LawForm, data: SetData | FitData, **options: Any) -> SetResult:
    """:func:`start_validation_set` (same arguments), waiting for its refits."""
    return start_validation_set(law, data, **options).result()


#: Length check: the law is refitted on the first this share of every pilot's steps ...
LENGTH_CHECK_SHARE = 0.5
#: ... and scored on each pilot's points from this share of its steps on (~2x further).
LENGTH_CHECK_SCORED = 0.9


def length_extrapolation_rms(
    law: LawForm,
    data: FitData,
    start: np.ndarray,
    delta: float,
    rng: np.random.Generator | None,
    starts: Starts,
) -> float | None:
    """RMS log error at the pilots' ends of the law refitted on their first halves.

    A pilot-only measure of how well the law extrapolates in length: the refit sees every
    pilot up to :data:`LENGTH_CHECK_SHARE` of its steps (and the PT-phase points) and
    predicts each pilot's last points (from :data:`LENGTH_CHECK_SCORED` of its steps on),
    about twice as far. Warm-started from the full fit's optimum ``start``; None when there
    are too few points.
    """
    cpt = data.run_index >= 0
    if not cpt.any():
        return None
    run_ids = data.run_index[cpt]
    last = np.zeros(int(run_ids.max()) + 1)
    np.maximum.at(last, run_ids, data.step[cpt])
    end = np.where(cpt, last[np.maximum(data.run_index, 0)], 0)
    early = ~cpt | (data.step <= LENGTH_CHECK_SHARE * end)
    scored = cpt & (data.step >= LENGTH_CHECK_SCORED * end) & (data.step > 0)
    if not scored.any() or early.sum() <= len(law.names):
        return None
    problem = Problem(law, data.take(early), delta)
    refit = optimise_problem(problem, rng, starts, start, f"the {law.validation_set} law")
    errors = np.log1p(relative_residuals(law, refit.values, data.take(scored)))
    return float(np.sqrt(np.mean(errors**2)))


def fit_tied(
    laws: dict[str, LawForm],
    datas: dict[str, SetData | FitData],
    shared: tuple[str, ...],
    *,
    delta: float,
    rng: np.random.Generator,
    starts: Starts,
    refit_budget: int,
    jackknife: bool,
    warm_start: dict[str, np.ndarray] | None = None,
    max_folds: int = MAX_FOLDS,
    runner: Runner | None = None,
) -> dict[str, SetResult]:
    """:func:`fit_validation_set` for both sets at once, the ``shared`` parameters tied.

    Leave-one-pilot-out refits leave the pilot out of both sets.
    """
    runner = runner or Runner()
    points = {name: runner.context.data(datas[name]) for name in VALIDATION_SETS}
    for name in VALIDATION_SETS:
        check_enough_points(laws[name], points[name])
    source = Source(
        tuple(laws[name] for name in VALIDATION_SETS),
        tuple(datas[name] for name in VALIDATION_SETS),
        delta,
        shared,
    )
    problem = source.problem(runner.context)
    assert isinstance(problem, JointProblem)
    start = None
    if warm_start is not None:
        start = problem.join(warm_start["general"], warm_start["domain"])
    best = fit_steps(runner, source, starts, start, rng)()
    replicas: dict[str, list[np.ndarray]] = {name: [] for name in VALIDATION_SETS}
    held_out: dict[str, dict[int, np.ndarray]] = {name: {} for name in VALIDATION_SETS}
    run_ids = _run_ids(*points.values())
    folds = cv_folds(run_ids, max_folds) if jackknife and len(run_ids) >= 3 else []
    refits = [runner.submit(Refit(source, refit_budget, best.values, tuple(f))) for f in folds]
    for future in refits:
        values, held = future.result()
        for name, set_values, set_held in zip(VALIDATION_SETS, values, held, strict=True):
            replicas[name].append(set_values)
            held_out[name].update(set_held)
    out = {}
    parts = {"general": problem.general, "domain": problem.domain}
    for name, values in zip(VALIDATION_SETS, problem.split(best.values), strict=True):
        single = SingleFit(
            values, parts[name].cost(parts[name].to_internal(values)), best.nfev, best.start_costs
        )
        out[name] = SetResult(laws[name], points[name], single, replicas[name], held_out[name])
    return out
