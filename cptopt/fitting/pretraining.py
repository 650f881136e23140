"""Fitting pre-training pilots (manifest ``kind: pretrain``): the law's pre-training part.

The pilots are pre-training runs with one validation loss, so the law is the ``pretrain``
form (:class:`~cptopt.law.forms.PretrainPartForm`) of the ``loss`` set and the only choice
is its annealing memory. It is made as the CPT selection's memory comparison makes it
(:mod:`cptopt.fitting.selection`): every candidate memory gets the cheap
:data:`~cptopt.fitting.jobs.SELECTING` fit with its leave-one-run-out refits, the lowest CV
mean wins, and the winner is refitted with the final effort. The S2 lambdas are fitted from
the longest memory down, each warm-started from its neighbour's optimum.

Every pilot counts equally in every fit: each curve is thinned to the same number of points
(the shortest curve's, :func:`equal_points`), as the selection's thinning already made them
and as the CV and the benchmark average per pilot. Pooling all logged points instead let a
densely logged pilot outweigh the others: on the bundled 25M pilots the two 24,000-step
runs had 171 points each and the only two-stage run 95.

The fit also calibrates the intervals' anneal-depth term (:func:`depth_sd`) on the pilots'
left-out runs.

No process pool: with one validation set there is nothing to run side by side, and
starting two workers would cost more than the whole fit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cptopt._progress import Progress, report
from cptopt.fitting.crossval import SetResult
from cptopt.fitting.data import MIN_POINTS_PER_RUN
from cptopt.fitting.jobs import (
    FINAL,
    FINAL_SELECTED,
    SELECTING,
    Counter,
    Effort,
    FitSettings,
    Variant,
    fit_with_effort,
)
from cptopt.fitting.rows import Candidate, merged_rows
from cptopt.law.fitted import SelectionRow
from cptopt.law.forms import PretrainPartForm, make_law
from cptopt.law.scenario import LOSS, FitData, InputNeeds, PretrainScenario
from cptopt.law.uncertainty import z_value

#: The memories pre-training pilots choose among with ``annealing="auto"`` (their
#: default): each S2 lambda, the multi-power memory, and the multi-power memory at
#: ``zeta = 1`` (``mpl1``: one parameter fewer; the free ``zeta`` ran to its lower limit on
#: the three bundled pre-training pilots).
PRETRAIN_ANNEALINGS = ("s2", "mpl", "mpl1")
#: Equal points per pilot (:func:`equal_points`), but a pilot with fewer than this many
#: points does not thin the others below it (it then weighs less than they do).
EQUAL_POINTS_FLOOR = 40


def equal_points(data: FitData, effort: Effort) -> Effort:
    """``effort`` with its point budget cut so that every pilot curve is thinned to the
    same number of points: the shortest curve's (not below :data:`EQUAL_POINTS_FLOOR`),
    within the effort's own budget."""
    counts = np.bincount(data.run_index[data.run_index >= 0])
    counts = counts[counts > 0]
    per_run = max(int(counts.min()), EQUAL_POINTS_FLOOR, MIN_POINTS_PER_RUN)
    return replace(effort, points=min(effort.points, per_run * counts.size))


@dataclass(frozen=True)
class PretrainFit:
    """What :func:`fit_pretrain` returns: the chosen memory (as a :class:`Variant` of the
    ``pretrain`` form), the candidates compared (empty when there was no choice) with the
    chosen one marked, and the final fit."""

    chosen: Variant
    rows: list[SelectionRow]
    final: SetResult


class _Fits:
    """Fits of one pre-training pilot set: its pooled points (per S2 lambda and history)
    and one random stream, whatever is fitted in which order."""

    def __init__(self, scenario: PretrainScenario, settings: FitSettings) -> None:
        self.scenario, self.settings = scenario, settings
        self.datas: dict[tuple[float | None, bool], FitData] = {}
        self.rng = np.random.default_rng([settings.seed, 0])

    def fit(
        self, variant: Variant, start: np.ndarray | None, effort: Effort, jackknife: bool = True
    ) -> SetResult:
        law = make_law(PretrainPartForm.name, LOSS, False, True, variant.annealing)
        key = (variant.lam, law.needs_history)
        if key not in self.datas:
            self.datas[key] = self.scenario.fit_data(LOSS, InputNeeds(variant.lam, key[1]))
        length_check = effort.length_check and jackknife
        return fit_with_effort(
            law,
            self.datas[key],
            self.settings,
            equal_points(self.datas[key], effort),
            self.rng,
            start=start,
            jackknife=jackknife,
            length_check=length_check,
        ).result()


def fit_pretrain(
    scenario: PretrainScenario,
    variants: list[Variant],
    settings: FitSettings,
    *,
    jackknife: bool = True,
    progress: Progress | None = None,
) -> PretrainFit:
    """Fit pre-training pilots: the one variant, or the memory the pilots' CV chooses.

    ``variants`` are memories of the ``pretrain`` form; with several, the choice needs
    leave-one-run-out CV (>= 3 runs, checked by the caller) and the final fit always has
    its refits, whatever ``jackknife`` says.
    """
    fits = _Fits(scenario, settings)
    if len(variants) == 1:
        report(progress, "final fit", 0, 1)
        final = fits.fit(variants[0], None, FINAL, jackknife)
        report(progress, "final fit", 1, 1)
        return PretrainFit(variants[0], [], final)
    candidates: list[Candidate] = []
    start = None
    counter = Counter(progress, "choosing the annealing memory", len(variants))
    for variant in sorted(variants, key=lambda v: (v.annealing != "s2", -(v.lam or 0.0))):
        s2 = variant.annealing == "s2"  # the S2 lambdas share their parameters
        result = fits.fit(variant, start if s2 else None, SELECTING)
        counter.tick()
        candidates.append(Candidate.of(variant, result))
        if s2:
            start = result.best.values
    rows = merged_rows({LOSS: candidates}, [])  # one row per candidate, in order
    best = min(range(len(rows)), key=lambda index: rows[index].cv_mean)
    chosen = candidates[best]
    report(progress, "final fit", 0, 1)
    final = fits.fit(chosen.variant, chosen.values, FINAL_SELECTED)
    report(progress, "final fit", 1, 1)
    marked = [row.model_copy(update={"chosen": index == best}) for index, row in enumerate(rows)]
    return PretrainFit(chosen.variant, marked, final)


# ------------------------------------------------------------------ interval calibration

#: Points of a left-out pilot whose anneal-depth gap to the other pilots is below this do
#: not calibrate the gap's SD (their error is the in-range error the interval scale covers).
MIN_CALIBRATION_GAP = 0.05
#: The gap's SD covers this share of the left-out pilots' points that have a gap.
GAP_CALIBRATION_LEVEL = 0.9


def depth_sd(
    result: SetResult, scenario: PretrainScenario, noise: float, scale: float | None
) -> float | None:
    """Log-scale SD per unit of anneal-depth gap, measured on the pilots' left-out runs.

    Each pilot left out is a schedule the others did not cover: its points' gap to the
    OTHER pilots' paths (:meth:`PretrainScenario.pilot_depth_gap`) is how far it annealed
    from them, its error under the refit without it how wrong the law then was. Over the
    points with a gap of at least :data:`MIN_CALIBRATION_GAP` (pilots weighted equally),
    the SD is the :data:`GAP_CALIBRATION_LEVEL` quantile of the error left after the
    in-range part (``scale * noise``, the eval noise at the interval scale) per unit of
    gap, so that the interval covers that share of them. A left-out pilot's own jackknife
    spread is not subtracted: its refit's spread contains the very fit that missed it,
    which a new schedule's spread does not. None without left-out runs, or when no
    left-out pilot annealed away from the others.
    """
    if not result.held_out or scale is None:
        return None
    z = z_value(GAP_CALIBRATION_LEVEL)
    ratios, weights = [], []
    for index, errors in result.held_out.items():
        mask = (result.data.run_index == index) & (result.data.step > 0)
        gap = scenario.pilot_depth_gap(index, result.data.step[mask])
        wide = gap >= MIN_CALIBRATION_GAP
        if not wide.any():
            continue
        excess = np.maximum((np.log1p(errors[wide]) / z) ** 2 - (scale * noise) ** 2, 0.0)
        ratios.append(np.sqrt(excess) / gap[wide])
        weights.append(np.full(int(wide.sum()), 1.0 / wide.sum()))
    if not ratios:
        return None
    return float(
        np.quantile(
            np.concatenate(ratios),
            GAP_CALIBRATION_LEVEL,
            weights=np.concatenate(weights),
            method="inverted_cdf",
        )
    )
