"""Fitting an averaged law (:class:`~cptopt.law.averaged.AveragedLaw`): each member on its
own, with its leave-one-pilot-out refits, then weighted by what those refits show.

The weights are pseudo-BMA+ weights (Yao, Vehtari, Simpson and Gelman 2018, "Using stacking
to average Bayesian predictive distributions", Sec. 3.2): each member's expected log
predictive score on a left-out pilot, summed over pilots under a Bayesian bootstrap of the
pilots, exponentiated and normalised, then averaged over the bootstrap draws. A pilot is
one unit (its curve's points are far from independent), and its score is the log density
of a Laplace law whose scale is the member's mean |error| on that pilot when it was left
out: ``-log(error)`` up to a constant. The bootstrap keeps a member from taking all the
weight on the strength of one pilot, so one more pilot moves the weights, not flips them.
Stacking the left-out predictions directly flipped more on the bundled pilots (its weights
sit at 0 or 1 with five pilots).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cptopt.fitting.crossval import PendingSet, SetResult, start_validation_set
from cptopt.fitting.optimise import Problem, SingleFit
from cptopt.fitting.workers import SetData
from cptopt.law.averaged import AveragedLaw
from cptopt.law.forms import LawForm
from cptopt.law.scenario import FitData

#: Bayesian-bootstrap draws of the pilots behind the weights.
BOOTSTRAP_DRAWS = 400
#: Left-out errors below this count as this (a log score must stay finite).
ERROR_FLOOR = 1e-6


def evidence_weights(errors: list[dict[int, float]], rng: np.random.Generator) -> np.ndarray:
    """Pseudo-BMA+ weights of members from their mean |left-out error| per pilot (see the
    module docstring); equal weights when no pilot was left out for every member."""
    runs = sorted(set.intersection(*(set(per_run) for per_run in errors)))
    if not runs:
        return np.full(len(errors), 1.0 / len(errors))
    scores = -np.log(np.maximum([[per_run[r] for r in runs] for per_run in errors], ERROR_FLOOR))
    draws = rng.dirichlet(np.ones(len(runs)), size=BOOTSTRAP_DRAWS) * len(runs)
    totals = draws @ scores.T  # (draws, members)
    totals -= totals.max(axis=1, keepdims=True)
    weights = np.exp(totals)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights.mean(axis=0)


def fit_average(
    law: AveragedLaw,
    data: FitData | SetData,
    *,
    delta: float,
    warm_start: np.ndarray | None = None,
    **options: Any,
) -> SetResult:
    """Fit every member of ``law`` on ``data`` as
    :func:`~cptopt.fitting.crossval.fit_validation_set` fits one form (the same options;
    a member's refits run while the next member is fitted), weight them
    (:func:`evidence_weights`) and combine: the values, each fold's replica, the left-out
    errors of the average, and the length-extrapolation RMS (the members' weighted sum, an
    upper bound of the average's)."""
    member_starts: list[np.ndarray | None] = [None] * len(law.members)
    if warm_start is not None:
        member_starts = list(law.split_members(warm_start)[0])
    pending = [
        start_validation_set(member, data, delta=delta, warm_start=start, **options)
        for member, start in zip(law.members, member_starts, strict=True)
    ]
    results = [member.result() for member in pending]
    points = results[0].data
    weights = evidence_weights([result.cv_per_run() for result in results], options["rng"])
    values = law.join([result.best.values for result in results], weights)
    replicas = [
        law.join(list(parts), weights) for parts in zip(*(r.replicas for r in results), strict=True)
    ]
    held_out = {
        run: sum(w * r.held_out[run] for w, r in zip(weights, results, strict=True))
        for run in results[0].held_out
        if all(run in r.held_out for r in results)
    }
    lengths = [result.length_rms for result in results]
    length_rms = None
    if all(length is not None for length in lengths):
        length_rms = float(np.dot(weights, np.array(lengths, dtype=float)))
    problem = Problem(law, points, delta)
    cost = problem.cost(problem.to_internal(values))
    # the average's best starts agree when every member's do (else a disagreeing member's)
    disagreeing = [r.best.start_costs for r in results if not r.best.starts_agree]
    nfev = sum(r.best.nfev for r in results)
    best = SingleFit(values, cost, nfev, disagreeing[0] if disagreeing else (cost,))
    return SetResult(law, points, best, replicas, held_out, length_rms, results)


def start_set(law: LawForm, data: FitData | SetData, **options: Any) -> PendingSet:
    """One set's fit, its leave-one-pilot-out refits running on
    (:func:`~cptopt.fitting.crossval.start_validation_set`), or an averaged law's whole fit
    (:func:`fit_average`: its weights need every member's refits)."""
    if isinstance(law, AveragedLaw):
        return PendingSet.done(fit_average(law, data, **options))
    return start_validation_set(law, data, **options)


def fit_set(law: LawForm, data: FitData | SetData, **options: Any) -> SetResult:
    """:func:`start_set`, waiting for its refits."""
    return start_set(law, data, **options).result()
