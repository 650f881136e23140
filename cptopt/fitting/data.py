"""Fit data: how much of each validation set's pooled points a fit uses.

The points themselves (every pilot's curve with its inputs, and the PT-phase points the
manifest allows) come from the pilots' scenario
(:meth:`cptopt.law.scenario.CptScenario.fit_data`); here they are thinned for the fit, and
the fitter's PT-point policies are named.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cptopt.law.scenario import FitData

#: Which PT-phase points of a validation set are pooled with the pilots' curves (a fitter
#: setting): one of :data:`~cptopt.law.scenario.PT_POINT_CHOICES`, or "auto":
#: "checkpoint" or "all", whichever the pilots' CV prefers (the one-standard-error rule,
#: "checkpoint" when they are within the noise); "checkpoint" when nothing is selected.
#: The domain set keeps only the checkpoints' values: a domain loss logged during PT
#: describes a model that never trained on the domain, another regime than CPT, and pooling
#: it pulled strong-shift fits away from the CPT behaviour (docs/law.md). The general set's
#: PT-phase points are the same data but still another regime (no re-warmup, no shift):
#: the pilots' CV decides.
DEFAULT_PT_POINTS = {"general": "auto", "domain": "checkpoint"}
#: The PT-point policies "auto" compares, the preferred (the prior's) first.
AUTO_PT_POINTS = ("checkpoint", "all")

#: Fits thin the pilots' curves to about this many CPT points in all (:func:`thin`; the
#: final fit) ... with many pilots every logged evaluation adds cost (it carries its drop
#: history) but little information; the shapes of the curves are what the law needs.
FIT_POINTS = 600
#: ... while selecting among law variants (a CV comparison, many fits) ...
SELECTION_POINTS = 240
#: ... and never fewer than this many per pilot curve.
MIN_POINTS_PER_RUN = 6


def thin(data: FitData, total: int) -> FitData:
    """At most about ``total`` CPT points (at least :data:`MIN_POINTS_PER_RUN` per pilot),
    evenly spaced along each pilot's curve by index with its first and last point kept;
    every PT-phase point. The data themselves when they are that few already."""
    cpt = data.run_index >= 0
    runs, counts = np.unique(data.run_index[cpt], return_counts=True)
    if cpt.sum() <= total or runs.size == 0:
        return _compact(data)
    per_run = max(MIN_POINTS_PER_RUN, total // runs.size)
    keep = ~cpt
    for run, count in zip(runs.tolist(), counts.tolist(), strict=True):
        index = np.flatnonzero(data.run_index == run)
        chosen = np.unique(np.linspace(0, count - 1, min(per_run, count)).round().astype(int))
        keep[index[chosen]] = True
    return _compact(data.take(keep))


def _compact(data: FitData) -> FitData:
    """``data`` with its per-step LRs (if any) in fewer entries (``StepLRs.compact``) and its
    drop history (if any) in the order the annealing sums reduce in (``DropHistory.by_phase``:
    the same pairs, so every sum is the same; kept in one order instead of two, and subsets
    of it keep that order), the points of pilots that share a schedule held once
    (``DropHistory.shared``: the same sums, fewer pairs to evaluate)."""
    areas = data.areas
    if areas.steps is not None:
        areas = replace(areas, steps=areas.steps.compact())
    if areas.history is not None:
        areas = replace(areas, history=areas.history.by_phase.shared())
    return data if areas is data.areas else replace(data, areas=areas)
