"""Recommend peak LR, replay ratio, CPT steps and schedule shape (docs/law.md, the decision).

Minimise ``w_general * L_general(T) + w_domain * L_domain(T)`` predicted by a fitted law
over a search space whose defaults come from what the pilots covered, under the user's
constraints, with an Optuna study; then cross-check the answer with a dense vectorised
search of the same space. How :func:`recommend` runs:

1. The space is resolved (:mod:`cptopt.search.space`).
2. The Optuna study runs to the requested number of trials (:mod:`cptopt.search.study`).
3. Its best feasible trials are polished by a local vectorised grid, and the whole space is
   searched densely (:mod:`cptopt.search.refine`); the relative gap is reported, and the
   dense optimum recommended if it is better by more than ``GAP_TOLERANCE``.
4. The recommendation, top-k alternatives, the best pilot-like setting and the rules of
   thumb are assessed on the same objective, with intervals from the law's
   leave-one-pilot-out refits (:mod:`cptopt.search.assess`).

Nothing here prints or exits: the CLI (``cptopt recommend``) renders the result models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cptopt.exceptions import InputError
from cptopt.law.fitted import CptLaw
from cptopt.search.assess import assess_batch
from cptopt.search.evaluate import Evaluator, feasible_mask
from cptopt.search.models import (
    DEFAULT_WARMUP_FRACTION,
    SEARCH_FAMILIES,
    Assessment,
    Constraints,
    ParetoPoint,
    Recommendation,
    SearchSettings,
    SearchSpace,
    SearchStats,
    Setting,
    parse_weights,
)
from cptopt.search.refine import dense_search, refine
from cptopt.search.shapes import Batch, make_batch
from cptopt.search.space import ResolvedSpace, resolve_space
from cptopt.search.storage import redact, storage_url
from cptopt.search.study import StudyOutcome, jsonable, law_digest, run_study

#: Relative objective gap to the dense optimum above which the result carries a warning.
GAP_TOLERANCE = 1e-4


def _evaluator(
    law: CptLaw, space: ResolvedSpace, constraints: Constraints, weights: tuple[float, float]
) -> Evaluator:
    # The space already keeps steps and tokens within the budget: no constraint for them.
    limits = constraints.model_copy(update={"max_steps": None, "max_tokens": None})
    return Evaluator(law, space.checkpoints, *weights, space.tokens_per_step, limits)


def recommend(
    law: CptLaw,
    weights: str | Sequence[float] = (0.5, 0.5),
    *,
    space: SearchSpace | None = None,
    constraints: Constraints | None = None,
    settings: SearchSettings | None = None,
    allow_extrapolation: bool = False,
    top_k: int = 5,
    level: float = 0.9,
    pareto: bool = False,
    verbose: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Recommendation:
    """Search the CPT settings that minimise ``w_g * L_general(T) + w_d * L_domain(T)``.

    Parameters
    ----------
    law : the fitted law.
    weights : ``(w_general, w_domain)`` or ``"0.3,0.7"``; normalised to sum to 1.
    space, constraints, settings : see :class:`SearchSpace`, :class:`Constraints`,
        :class:`SearchSettings` (defaults: the pilots' coverage, none, TPE with 128
        trials, 64 of them a vectorised seed batch).
    allow_extrapolation : widen the peak-LR box 3x beyond the pilots' range each way.
    top_k : number of alternatives to report.
    level : central probability of the intervals.
    pareto : also sweep the weights and report the general-vs-domain Pareto front.
    verbose : let Optuna log.
    progress : called with ``(complete, requested)`` trials after each batch.

    Raises
    ------
    InputError : bad weights, space or storage.
    InfeasibleError : nothing satisfies the constraints.
    """
    constraints = constraints or Constraints()
    settings = settings or SearchSettings()
    w_general, w_domain, normalised = parse_weights(weights)
    if not 0 < level < 1:
        raise InputError(f"level == {level!r}, must be in (0, 1)")
    resolved = resolve_space(law, space or SearchSpace(), constraints, allow_extrapolation)
    evaluator = _evaluator(law, resolved, constraints, (w_general, w_domain))
    notes = list(resolved.notes) + list(law.notes)
    if normalised:
        notes.append(f"weights normalised to {w_general:.4g},{w_domain:.4g}")
    url = storage_url(settings.storage)
    fingerprint = _fingerprint(law, (w_general, w_domain), resolved, constraints, settings)
    study = run_study(
        url,
        resolved,
        evaluator,
        settings,
        fingerprint,
        top_k=top_k,
        verbose=verbose,
        progress=progress,
    )
    dense_best, dense_value, dense_points = dense_search(evaluator, resolved)
    recommended_batch, gap, source = _polish(evaluator, resolved, study, dense_best, dense_value)
    notes += _search_notes(study, gap, settings, evaluator)
    recommended, alternatives, baselines = _assessments(
        evaluator, resolved, recommended_batch, [dense_best, study.top], constraints, level, top_k
    )
    if not recommended.in_range:
        notes.append("the recommendation lies outside what the pilots covered (see flags)")
    return Recommendation(
        law_digest=fingerprint["law"],
        weights=(w_general, w_domain),
        level=level,
        constraints=constraints,
        space=resolved.describe(),
        search=_stats(settings, url, study, recommended, (dense_value, dense_points), gap, source),
        recommended=recommended,
        alternatives=alternatives,
        baselines=baselines,
        pareto=_pareto(evaluator, resolved) if pareto else None,
        notes=notes,
    )


def _fingerprint(
    law: CptLaw,
    weights: tuple[float, float],
    space: ResolvedSpace,
    constraints: Constraints,
    settings: SearchSettings,
) -> dict[str, Any]:
    """What defines a search (a study created with other values is not resumed)."""
    return jsonable(
        {
            "law": law_digest(law),
            "weights": [round(weights[0], 12), round(weights[1], 12)],
            "space": space.fingerprint(),
            "constraints": constraints.model_dump(),
            "sampler": settings.sampler,
        }
    )


def _polish(
    evaluator: Evaluator,
    space: ResolvedSpace,
    study: StudyOutcome,
    dense_best: Batch,
    dense_value: float,
) -> tuple[Batch, float, str]:
    """The setting to recommend, the polished study's relative gap to the dense optimum,
    and where the recommendation comes from."""
    if study.best is None:
        return dense_best, 0.0, "dense search (the study found no feasible setting)"
    polished, polished_value = refine(evaluator, space, study.best[0])
    gap = (polished_value - dense_value) / abs(dense_value)
    if gap > GAP_TOLERANCE:
        return dense_best, gap, "dense search (better than the study)"
    return polished, gap, "study best, polished by a local vectorised grid"


def _search_notes(
    study: StudyOutcome, gap: float, settings: SearchSettings, evaluator: Evaluator
) -> list[str]:
    notes = []
    if study.best is None:
        notes.append("no trial of the study satisfies the constraints; the dense search did")
    elif gap > GAP_TOLERANCE:
        notes.append(
            f"the dense search beat the study by {gap:.2e} (relative): recommending the dense "
            "optimum; raise the trials or try another sampler"
        )
    if settings.sampler in ("cmaes", "qmc") and len(evaluator.constraint_names()) > 1:
        notes.append(
            f"the {settings.sampler} sampler does not use constraints when it proposes "
            "settings; infeasible trials are only excluded from the result"
        )
    return notes


def _assessments(
    evaluator: Evaluator,
    space: ResolvedSpace,
    recommended: Batch,
    pool: list[Batch | None],
    constraints: Constraints,
    level: float,
    top_k: int,
) -> tuple[Assessment, list[Assessment], list[Assessment]]:
    """The recommendation, up to ``top_k`` distinct alternatives from ``pool``, and the
    baselines, all assessed."""
    (chosen,) = assess_batch(evaluator, space, recommended, ["recommended"], constraints, level)
    alternatives: list[Assessment] = []
    if top_k > 0:
        pool_batch = Batch.concatenate([part for part in pool if part is not None])
        _, _, objective, violations = evaluator.evaluate(pool_batch)
        objective = np.where(feasible_mask(violations, len(pool_batch)), objective, np.inf)
        picks = _distinct(pool_batch, objective, top_k, recommended)
        if picks:
            labels = [f"alt {i + 1}" for i in range(len(picks))]
            alternatives = assess_batch(
                evaluator, space, pool_batch.take(np.array(picks)), labels, constraints, level
            )
    labels, baselines = _baselines(evaluator, space, recommended)
    return (
        chosen,
        alternatives,
        assess_batch(evaluator, space, baselines, labels, constraints, level),
    )


def _stats(
    settings: SearchSettings,
    url: str | None,
    study: StudyOutcome,
    recommended: Assessment,
    dense: tuple[float, int],
    gap: float,
    source: str,
) -> SearchStats:
    dense_value, dense_points = dense
    study_value = None if study.best is None else study.best[1]
    here = study.done_here + study.seeded
    return SearchStats(
        sampler=settings.sampler,
        seed=settings.seed,
        trials_requested=settings.trials,
        trials_complete=study.complete,
        trials_this_process=here,
        seed_trials_added=study.seeded,
        storage=redact(url),
        study_name=study.name,
        resumed=study.resumed,
        search_seconds=study.seconds,
        trials_per_second=here / study.seconds if study.seconds > 0 else None,
        study_best_objective=study_value,
        recommended_objective=recommended.objective,
        dense_objective=dense_value,
        dense_points=dense_points,
        dense_gap=(recommended.objective - dense_value) / abs(dense_value),
        polished_gap=None if study_value is None else gap,
        study_gap=None if study_value is None else (study_value - dense_value) / abs(dense_value),
        recommendation_source=source,
    )


def _distinct(batch: Batch, objective: np.ndarray, k: int, exclude: Batch) -> list[int]:
    """Indices of up to ``k`` settings that differ clearly from each other and ``exclude``."""
    chosen_rows = [exclude.row(i) for i in range(len(exclude))]
    out: list[int] = []
    for i in np.argsort(objective):
        if not np.isfinite(objective[i]):
            continue
        row = batch.row(int(i))
        if all(not _close(row, other) for other in chosen_rows):
            out.append(int(i))
            chosen_rows.append(row)
        if len(out) >= k:
            break
    return out


def _close(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["family"] != b["family"] or a["checkpoint"] != b["checkpoint"]:
        return False
    return (
        abs(math.log(a["peak_lr"] / b["peak_lr"])) < 0.05
        and abs(a["replay_ratio"] - b["replay_ratio"]) < 0.02
        and abs(a["steps"] - b["steps"]) <= max(0.05 * b["steps"], 1)
        and (
            SEARCH_FAMILIES[a["family"]] != "wsd"
            or abs(a["decay_fraction"] - b["decay_fraction"]) < 0.05
        )
    )


def _baselines(
    evaluator: Evaluator, space: ResolvedSpace, recommended: Batch
) -> tuple[list[str], Batch]:
    """The best pilot-like setting and the rules of thumb (labels, settings)."""
    cov = evaluator.law.coverage
    row = recommended.row(0)
    # best pilot-like: the pilots' LRs x replay ratios x longest pilot, any family, 2 % warmup
    piloted = [i for i, c in enumerate(space.checkpoints) if c.piloted] or [0]
    families = [SEARCH_FAMILIES.index(f) for f in ("constant", "cosine", "wsd", "linear")]
    lrs, ratios = sorted({cov.peak_lr_min, cov.peak_lr_max}), sorted(cov.replay_ratios)
    grid = np.meshgrid(piloted, families, lrs, ratios, indexing="ij")
    pilot_like = make_batch(
        checkpoint=grid[0],
        family=grid[1],
        warmup_fraction=DEFAULT_WARMUP_FRACTION,
        decay_fraction=0.2,
        steps=cov.steps_max,
        peak_lr=grid[2],
        replay_ratio=grid[3],
    )
    _, _, objective, violations = evaluator.evaluate(pilot_like)
    feasible = feasible_mask(violations, len(pilot_like))
    best = int(np.argmin(np.where(feasible, objective, np.inf) if feasible.any() else objective))
    thumbs = make_batch(
        checkpoint=row["checkpoint"],
        family=row["family"],
        warmup_fraction=row["warmup_fraction"],
        decay_fraction=row["decay_fraction"],
        steps=space.budget,
        peak_lr=cov.peak_lr_max,
        replay_ratio=np.array([0.05, 0.10]),
    )
    labels = ["pilot-like", "thumb r=5%", "thumb r=10%"]
    return labels, Batch.concatenate([pilot_like.take(np.array([best])), thumbs])


def _pareto(evaluator: Evaluator, space: ResolvedSpace, n: int = 11) -> list[ParetoPoint]:
    """Weight sweep: the dense optimum for each ``w_general`` in ``linspace(0, 1, n)``."""
    points: list[ParetoPoint] = []
    seen: set[tuple] = set()
    for w_general in np.linspace(0.0, 1.0, n):
        sweep = evaluator.reweighted(float(w_general), float(1 - w_general))
        best, _, _ = dense_search(sweep, space, starts_per_family=1)
        setting = space.setting(best, 0)
        key = (
            setting.family,
            setting.checkpoint,
            round(setting.peak_lr, 7),
            round(setting.replay_ratio, 3),
            setting.steps,
        )
        if key in seen:
            continue
        seen.add(key)
        general, domain, _ = evaluator.losses(best)
        flags = evaluator.law.scenario.coverage_flags(
            peak_lr=setting.peak_lr,
            replay_ratio=setting.replay_ratio,
            steps=setting.steps,
            checkpoint=setting.checkpoint,
            tokens_per_step=space.tokens_per_step,
        )
        points.append(
            ParetoPoint(
                w_general=float(w_general),
                w_domain=float(1 - w_general),
                setting=setting,
                general=float(general[0]),
                domain=float(domain[0]),
                in_range=not flags,
                flags=flags,
            )
        )
    return points


def dense_optimum(
    law: CptLaw,
    weights: str | Sequence[float],
    *,
    space: SearchSpace | None = None,
    constraints: Constraints | None = None,
    allow_extrapolation: bool = False,
) -> tuple[Setting, float, int]:
    """The dense vectorised search alone: ``(best setting, objective, grid points)``."""
    constraints = constraints or Constraints()
    w_general, w_domain, _ = parse_weights(weights)
    resolved = resolve_space(law, space or SearchSpace(), constraints, allow_extrapolation)
    evaluator = _evaluator(law, resolved, constraints, (w_general, w_domain))
    best, value, points = dense_search(evaluator, resolved)
    return resolved.setting(best, 0), value, points
