"""Leave-one-pilot-out cross-validation: the fit, then a refit per left-out pilot.

Each pilot (fold) is left out in turn and the law refitted, warm-started from the full fit.
The refits give (i) the cross-validated error that selects law variants and sets the
interval scale, and (ii) the jackknife replicas of every parameter and prediction
(:mod:`cptopt.law.uncertainty`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cptopt.fitting.optimise import (
    JointProblem,
    Problem,
    SingleFit,
    Starts,
    check_enough_points,
    optimise,
    optimise_problem,
    relative_residuals,
)
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


def fit_validation_set(
    law: LawForm,
    data: FitData,
    *,
    delta: float,
    rng: np.random.Generator,
    starts: Starts,
    refit_budget: int,
    jackknife: bool,
    warm_start: np.ndarray | None = None,
    length_check: bool = False,
    max_folds: int = MAX_FOLDS,
) -> SetResult:
    """Fit one validation set, then refit leaving each pilot (fold) out, warm-started.

    ``length_check``: also measure the error of a 2x extrapolation in length
    (:func:`length_extrapolation_rms`), which widens intervals beyond the pilots' length.
    """
    check_enough_points(law, data)
    best = optimise(law, data, delta=delta, rng=rng, starts=starts, warm_start=warm_start)
    refit = Starts(n_starts=1, max_nfev=refit_budget)  # from the full fit's optimum
    replicas: list[np.ndarray] = []
    held_out: dict[int, np.ndarray] = {}
    run_ids = _run_ids(data)
    if jackknife and len(run_ids) >= 3:
        for fold in cv_folds(run_ids, max_folds):
            kept = data.take(~np.isin(data.run_index, fold))
            refitted = optimise(
                law, kept, delta=delta, rng=rng, starts=refit, warm_start=best.values
            )
            replicas.append(refitted.values)
            held_out.update(_held_out_errors(law, refitted.values, data, fold))
    length_rms = None
    if length_check:
        length_rms = length_extrapolation_rms(law, data, best.values, delta, rng, refit)
    return SetResult(law, data, best, replicas, held_out, length_rms)


#: Length check: the law is refitted on the first this share of every pilot's steps ...
LENGTH_CHECK_SHARE = 0.5
#: ... and scored on each pilot's points from this share of its steps on (~2x further).
LENGTH_CHECK_SCORED = 0.9


def length_extrapolation_rms(
    law: LawForm,
    data: FitData,
    start: np.ndarray,
    delta: float,
    rng: np.random.Generator,
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
    refit = optimise(law, data.take(early), delta=delta, rng=rng, starts=starts, warm_start=start)
    errors = np.log1p(relative_residuals(law, refit.values, data.take(scored)))
    return float(np.sqrt(np.mean(errors**2)))


def fit_tied(
    laws: dict[str, LawForm],
    datas: dict[str, FitData],
    shared: tuple[str, ...],
    *,
    delta: float,
    rng: np.random.Generator,
    starts: Starts,
    refit_budget: int,
    jackknife: bool,
    warm_start: dict[str, np.ndarray] | None = None,
    max_folds: int = MAX_FOLDS,
) -> dict[str, SetResult]:
    """:func:`fit_validation_set` for both sets at once, the ``shared`` parameters tied.

    Leave-one-pilot-out refits leave the pilot out of both sets.
    """
    for name in VALIDATION_SETS:
        check_enough_points(laws[name], datas[name])

    def problem_for(masks: dict[str, np.ndarray] | None) -> JointProblem:
        parts = {
            name: Problem(
                laws[name], datas[name] if masks is None else datas[name].take(masks[name]), delta
            )
            for name in VALIDATION_SETS
        }
        return JointProblem(parts["general"], parts["domain"], shared)

    problem = problem_for(None)
    start = None
    if warm_start is not None:
        start = problem.join(warm_start["general"], warm_start["domain"])
    best = optimise_problem(problem, rng, starts, start, "the tied general and domain laws")
    refits = Starts(n_starts=1, max_nfev=refit_budget)  # from the full fit's optimum
    replicas: dict[str, list[np.ndarray]] = {name: [] for name in VALIDATION_SETS}
    held_out: dict[str, dict[int, np.ndarray]] = {name: {} for name in VALIDATION_SETS}
    run_ids = _run_ids(*datas.values())
    if jackknife and len(run_ids) >= 3:
        for fold in cv_folds(run_ids, max_folds):
            masks = {name: ~np.isin(datas[name].run_index, fold) for name in VALIDATION_SETS}
            refit = optimise_problem(problem_for(masks), rng, refits, best.values)
            for name, values in zip(VALIDATION_SETS, problem.split(refit.values), strict=True):
                replicas[name].append(values)
                held_out[name].update(_held_out_errors(laws[name], values, datas[name], fold))
    out = {}
    parts = {"general": problem.general, "domain": problem.domain}
    for name, values in zip(VALIDATION_SETS, problem.split(best.values), strict=True):
        single = SingleFit(
            values, parts[name].cost(parts[name].to_internal(values)), best.nfev, best.start_costs
        )
        out[name] = SetResult(laws[name], datas[name], single, replicas[name], held_out[name])
    return out
