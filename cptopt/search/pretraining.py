"""Recommend a pre-training schedule with a law fitted to pre-training pilots.

Minimise the predicted loss at the last step over what a pre-training user chooses: the
peak LR (within the pilots' range), the family (WSD, cosine, linear, constant), for WSD the
decay's shape and length (it runs to the last step, so its start is the budget minus its
length), the final LR (not below the pilots' lowest after their warmup unless extrapolation
is allowed: deeper drops are flagged) and the step budget (fixed, the longest pilot's by
default, or searched within bounds).

How: one setting is one point of the law, at its last step, so settings are evaluated many
at a time (their areas stacked, one call of the law). The space has at most four
continuous dimensions per family, so the search is a grid over every family and decay shape
(:func:`candidate_grid`), then a zoom around the best of each: a local grid whose spacing
halves each round (:func:`zoom`). Deterministic, and every family's best is reported, so a
user sees what the choice of family is worth. No Optuna study: its samplers add nothing on
a space this small and cheap, and its CPT-specific pieces (replay, checkpoints, two losses)
do not apply.

The recommendation, the other families' bests and the usual baselines at the same budget
are assessed by :func:`cptopt.prediction.predict`, the one home of the intervals and the
coverage flags; the vectorised final losses read the same inputs (the law's scenario).
Nothing here prints or exits.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import numpy as np

from cptopt.exceptions import InputError, param
from cptopt.law.areas import Areas
from cptopt.law.fitted import CptLaw, PretrainRunsLaw
from cptopt.law.scenario import LOSS, RANGE_TOLERANCE, PretrainRunInput
from cptopt.prediction import PretrainPrediction, predict
from cptopt.search.pretrain_models import (
    PretrainAssessment,
    PretrainRecommendation,
    PretrainSearchSpace,
    PretrainSetting,
    PretrainSpaceReport,
)
from cptopt.search.study import law_digest

#: Grid points per dimension: WSD decay length, final LR, peak LR, step budget.
GRID_POINTS = {"decay_fraction": 16, "final_lr": 6, "peak_lr": 5, "steps": 5}
#: Zoom rounds around each family's best, and points per varying dimension in each.
ZOOM_ROUNDS = 3
ZOOM_POINTS = 5
#: The default final-LR range spans this factor above the pilots' lowest LR ...
FINAL_LR_SPAN = 10.0
#: ... and never reaches this share of the peak.
FINAL_LR_MAX_SHARE = 0.5
#: The WSD baseline: a linear decay over this share of the steps.
BASELINE_DECAY = 0.2


def pretrain_law(law: CptLaw | PretrainRunsLaw) -> PretrainRunsLaw:
    """``law`` as a law fitted to pre-training pilots that records how they annealed, or a
    one-line error."""
    if not isinstance(law, PretrainRunsLaw):
        raise InputError(
            f"{param('recommend_pretrain()')} needs a law fitted to pre-training pilots "
            f"(kind: pretrain); this law was fitted to {law.fitted_to}"
        )
    if law.anneal is None:
        raise InputError(
            "this law file does not record how far its pilots annealed (written before "
            f"cptopt kept it): refit it ({param('fit()')}) to search a schedule with it"
        )
    return law


def resolve_pretrain_space(
    law: PretrainRunsLaw, space: PretrainSearchSpace, allow_extrapolation: bool
) -> PretrainSpaceReport:
    """The space to search: each dimension as given, or from what the pilots covered.

    A given peak LR or final LR outside the pilots' range is an error unless
    ``allow_extrapolation``; then the final LR may go down to 0 by default.
    """
    cov, anneal = law.coverage, pretrain_law(law).anneal
    assert anneal is not None  # pretrain_law says so
    notes: list[str] = []
    peak = space.peak_lr or (cov.peak_lr_min, cov.peak_lr_max)
    low, high = cov.peak_lr_min * (1 - RANGE_TOLERANCE), cov.peak_lr_max * (1 + RANGE_TOLERANCE)
    if not allow_extrapolation and not (low <= peak[0] and peak[1] <= high):
        raise InputError(
            f"{param('peak_lr')} {peak[0]:.3g}..{peak[1]:.3g} outside the pilots' "
            f"{cov.peak_lr_min:.3g}..{cov.peak_lr_max:.3g}; allow extrapolation "
            f"({param('allow_extrapolation')}) to search it"
        )
    if peak[0] == peak[1]:
        notes.append(f"peak LR fixed at {peak[0]:.3g}")
    steps = space.steps or (cov.steps_max, cov.steps_max)
    if steps[0] < steps[1]:
        notes.append(
            "the step budget is searched: under this law more steps always lower the "
            "predicted loss, so the longest budget wins"
        )
    warmup = space.warmup_steps if space.warmup_steps is not None else max(anneal.warmup_steps)
    if warmup >= steps[0]:
        raise InputError(
            f"{param('warmup_steps')} == {warmup}, must be below the step budget {steps[0]}"
        )
    ceiling = FINAL_LR_MAX_SHARE * peak[0]
    default_low = 0.0 if allow_extrapolation else anneal.lowest_lr
    final = space.final_lr or (default_low, min(FINAL_LR_SPAN * anneal.lowest_lr, ceiling))
    if final[1] >= peak[0]:
        raise InputError(
            f"{param('final_lr')} up to {final[1]:.3g} must stay below the peak LR ({peak[0]:.3g})"
        )
    if not allow_extrapolation and final[0] < anneal.lowest_lr * (1 - RANGE_TOLERANCE):
        raise InputError(
            f"{param('final_lr')} from {final[0]:.3g} below the pilots' lowest LR after their "
            f"warmup ({anneal.lowest_lr:.3g}); allow extrapolation "
            f"({param('allow_extrapolation')}) to search it"
        )
    longest_decay = (steps[0] - warmup) / steps[0]
    decay = (
        min(space.decay_fraction[0], longest_decay),
        min(space.decay_fraction[1], longest_decay),
    )
    return PretrainSpaceReport(
        peak_lr=(float(peak[0]), float(peak[1])),
        steps=(int(steps[0]), int(steps[1])),
        warmup_steps=int(warmup),
        families=list(space.families),
        decay_shapes=list(space.decay_shapes),
        decay_fraction=decay,
        final_lr=(float(final[0]), float(final[1])),
        notes=notes,
    )


def _axis(low: float, high: float, n: int, log: bool) -> np.ndarray:
    """``n`` points from ``low`` to ``high`` (one when they are equal); a log axis from 0
    is 0 followed by a log axis over the top two decades."""
    if low == high:
        return np.array([low])
    if not log:
        return np.linspace(low, high, n)
    if low > 0:
        return np.geomspace(low, high, n)
    return np.concatenate([[0.0], np.geomspace(high * 1e-2, high, n - 1)])


def candidate_grid(report: PretrainSpaceReport) -> list[PretrainSetting]:
    """Every family (and WSD decay shape) on a grid of its dimensions (:data:`GRID_POINTS`)."""
    peaks = _axis(*report.peak_lr, GRID_POINTS["peak_lr"], log=True)
    budgets = np.unique(_axis(*report.steps, GRID_POINTS["steps"], log=False).round())
    finals = _axis(*report.final_lr, GRID_POINTS["final_lr"], log=True)
    decays = _axis(*report.decay_fraction, GRID_POINTS["decay_fraction"], log=False)
    settings = []
    for family in report.families:
        shapes = report.decay_shapes if family == "wsd" else [None]
        for shape, peak, steps in itertools.product(shapes, peaks, budgets):
            common = {"family": family, "peak_lr": float(peak), "steps": int(steps)}
            common["warmup_steps"] = report.warmup_steps
            if family == "constant":
                settings.append(PretrainSetting(**common, final_lr=float(peak)))
                continue
            for final in finals:
                for decay in decays if family == "wsd" else [None]:
                    settings.append(
                        PretrainSetting(
                            **common,
                            final_lr=float(final),
                            decay_shape=shape,
                            decay_fraction=None if decay is None else float(decay),
                        )
                    )
    return settings


def final_losses(law: PretrainRunsLaw, settings: Sequence[PretrainSetting]) -> np.ndarray:
    """The law's predicted loss at each setting's last step: their inputs (the scenario's,
    as :func:`~cptopt.prediction.predict` builds them) stacked, one call of the law."""
    scenario, needs = law.scenario, law.needs
    parts = [
        scenario.inputs(
            PretrainRunInput(s.schedule().lr_array(), s.warmup_steps), np.array([s.steps]), needs
        )
        for s in settings
    ]
    form = law.form_for(LOSS)
    return form.evaluate(np.asarray(law.loss.values), Areas.concatenate(parts))


def _dimensions(report: PretrainSpaceReport, setting: PretrainSetting) -> list[tuple]:
    """The dimensions the zoom moves for ``setting``: (name, low, high, log)."""
    dims = [("peak_lr", *report.peak_lr, True), ("steps", *report.steps, False)]
    if setting.family != "constant":
        dims.append(("final_lr", *report.final_lr, report.final_lr[0] > 0))
    if setting.family == "wsd":
        dims.append(("decay_fraction", *report.decay_fraction, False))
    return [dim for dim in dims if dim[1] < dim[2]]


def _to_unit(value: float, low: float, high: float, log: bool) -> float:
    if log:
        return float(np.log(value / low) / np.log(high / low))
    return (value - low) / (high - low)


def _from_unit(unit: np.ndarray, low: float, high: float, log: bool) -> np.ndarray:
    unit = np.clip(unit, 0.0, 1.0)
    return low * (high / low) ** unit if log else low + (high - low) * unit


def zoom(
    law: PretrainRunsLaw, report: PretrainSpaceReport, start: PretrainSetting, loss: float
) -> tuple[PretrainSetting, float, int]:
    """Refine ``start`` (predicted ``loss``) by local grids around the incumbent, their
    spacing halving each round; returns the best setting, its loss and the evaluations."""
    dims = _dimensions(report, start)
    if not dims:
        return start, loss, 0
    points = ZOOM_POINTS if len(dims) <= 2 else 3
    width = 1.0 / (GRID_POINTS["final_lr"] - 1)
    best, best_loss, evaluations = start, loss, 0
    for _ in range(ZOOM_ROUNDS):
        centre = [_to_unit(getattr(best, name), low, high, log) for name, low, high, log in dims]
        offsets = np.linspace(-width, width, points)
        trials = []
        for step in itertools.product(offsets, repeat=len(dims)):
            update = {}
            for (name, low, high, log), u, du in zip(dims, centre, step, strict=True):
                value = float(_from_unit(np.array(u + du), low, high, log))
                update[name] = int(round(value)) if name == "steps" else value
            trials.append(best.model_copy(update=update))
        losses = final_losses(law, trials)
        evaluations += len(trials)
        index = int(np.argmin(losses))
        if losses[index] < best_loss:
            best, best_loss = trials[index], float(losses[index])
        width /= 2
    return best, best_loss, evaluations


def assess(
    law: PretrainRunsLaw, setting: PretrainSetting, label: str, level: float
) -> PretrainAssessment:
    """The setting's final loss with its interval and coverage flags (``predict``)."""
    prediction = predict(
        law,
        setting.schedule(),
        steps=[setting.steps],
        warmup_steps=setting.warmup_steps,
        level=level,
    )
    assert isinstance(prediction, PretrainPrediction)  # a pre-training law's
    return PretrainAssessment(
        label=label,
        setting=setting,
        schedule=setting.describe(),
        final=prediction.loss.final,
        final_lower=prediction.loss.final_lower,
        final_upper=prediction.loss.final_upper,
        in_range=prediction.in_range,
        flags=prediction.flags,
    )


def _group(setting: PretrainSetting) -> str:
    """A family, and for WSD its decay shape: what the report lists one best of."""
    return f"wsd {setting.decay_shape}" if setting.family == "wsd" else setting.family


def baselines(
    report: PretrainSpaceReport, best: PretrainSetting
) -> list[tuple[str, PretrainSetting]]:
    """Constant, cosine and a linear WSD over the last :data:`BASELINE_DECAY` of the steps,
    at the recommended budget, peak and warmup; the decays end at the lowest final LR."""
    common = {"peak_lr": best.peak_lr, "steps": best.steps, "warmup_steps": best.warmup_steps}
    final = report.final_lr[0]
    wsd = PretrainSetting(
        family="wsd",
        final_lr=final,
        decay_shape="linear",
        decay_fraction=min(BASELINE_DECAY, report.decay_fraction[1]),
        **common,
    )
    return [
        ("constant", PretrainSetting(family="constant", final_lr=best.peak_lr, **common)),
        ("cosine", PretrainSetting(family="cosine", final_lr=final, **common)),
        (f"wsd linear {BASELINE_DECAY:.0%}", wsd),
    ]


def _bound_notes(report: PretrainSpaceReport, best: PretrainSetting) -> list[str]:
    """Say where the recommendation sits at a bound of the space (the law wants beyond)."""
    notes = []
    if best.family != "constant" and best.final_lr <= report.final_lr[0] * (1 + 1e-9):
        notes.append(
            f"the final LR is at its lower bound ({report.final_lr[0]:.3g}): the law would "
            "anneal further; below the pilots' lowest LR predictions are extrapolations "
            "(allow extrapolation to search there)"
        )
    if best.family == "wsd" and best.decay_fraction is not None:
        for bound, side in zip(report.decay_fraction, ("lower", "upper"), strict=True):
            if abs(best.decay_fraction - bound) < 1e-9 and report.decay_fraction[0] < bound + 1:
                notes.append(f"the WSD decay length is at its {side} bound ({bound:.0%})")
    return notes


def recommend_pretrain(
    law: PretrainRunsLaw,
    space: PretrainSearchSpace | None = None,
    *,
    allow_extrapolation: bool = False,
    level: float = 0.9,
) -> PretrainRecommendation:
    """The pre-training schedule with the lowest predicted final loss (module docstring).

    Parameters
    ----------
    law : a law fitted to pre-training pilots (a :class:`~cptopt.law.PretrainRunsLaw`).
    space : what to search (default: every family and WSD shape, the pilots' peak LR and
        longest run, final LRs from the pilots' lowest, WSD decays of 2-90 % of the steps).
    allow_extrapolation : search peak and final LRs outside what the pilots covered.
    level : central probability of the reported intervals.
    """
    started = time.perf_counter()
    if not 0.0 < level < 1.0:
        raise InputError(f"{param('level')} == {level!r}, must be in (0, 1)")
    report = resolve_pretrain_space(law, space or PretrainSearchSpace(), allow_extrapolation)
    grid = candidate_grid(report)
    losses = final_losses(law, grid)
    evaluations = len(grid)
    bests: dict[str, tuple[PretrainSetting, float]] = {}
    for group in dict.fromkeys(_group(setting) for setting in grid):
        index = min(
            (i for i, setting in enumerate(grid) if _group(setting) == group),
            key=lambda i: losses[i],
        )
        setting, loss, used = zoom(law, report, grid[index], float(losses[index]))
        bests[group] = (setting, loss)
        evaluations += used
    ranked = sorted(bests.values(), key=lambda item: item[1])
    best = ranked[0][0]
    recommended = assess(law, best, "recommended", level)
    alternatives = [assess(law, s, f"best {_group(s)}", level) for s, _ in ranked[1:]]
    compared = [assess(law, s, label, level) for label, s in baselines(report, best)]
    return PretrainRecommendation(
        law_digest=law_digest(law),
        level=level,
        space=report,
        recommended=recommended,
        alternatives=alternatives,
        baselines=compared,
        evaluations=evaluations,
        search_seconds=time.perf_counter() - started,
        notes=report.notes + _bound_notes(report, best) + list(law.notes),
    )
