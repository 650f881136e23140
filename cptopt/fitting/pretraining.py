"""Fitting pre-training pilots (manifest ``kind: pretrain``): the law's pre-training part.

The pilots are pre-training runs with one validation loss, so the law is the ``pretrain``
form (:class:`~cptopt.law.forms.PretrainPartForm`) of the ``loss`` set and the only choice
is its annealing memory. It is made as the CPT selection's memory comparison makes it
(:mod:`cptopt.fitting.selection`): every candidate memory gets the cheap
:data:`~cptopt.fitting.jobs.SELECTING` fit with its leave-one-run-out refits, the lowest CV
mean wins, and the winner is refitted with the final effort. The S2 lambdas are fitted from
the longest memory down, each warm-started from its neighbour's optimum.

No process pool: with one validation set there is nothing to run side by side, and
starting two workers would cost more than the whole fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cptopt._progress import Progress, report
from cptopt.fitting.crossval import SetResult
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
from cptopt.fitting.selection import Candidate, merged_rows
from cptopt.law.fitted import SelectionRow
from cptopt.law.forms import PretrainPartForm, make_law
from cptopt.law.scenario import LOSS, FitData, InputNeeds, PretrainScenario

#: The memories pre-training pilots choose among with ``annealing="auto"`` (their
#: default): each S2 lambda, the multi-power memory, and the multi-power memory at
#: ``zeta = 1`` (``mpl1``: one parameter fewer; the free ``zeta`` ran to its lower limit on
#: the three bundled pre-training pilots).
PRETRAIN_ANNEALINGS = ("s2", "mpl", "mpl1")


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
            effort,
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
