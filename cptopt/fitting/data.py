"""Fit data: every pilot's loss points of one validation set, pooled, with their areas.

PT-phase points (the loss logged during pre-training) are pooled too when the manifest
says so; see :data:`PT_POINTS_FROM` for which ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cptopt.exceptions import InputError
from cptopt.law.areas import (
    Areas,
    checkpoint_state,
    cpt_point_areas,
    history_areas,
    pretrain_areas,
)
from cptopt.pilots.runs import PilotSet, PretrainPilots

#: PT-phase points are pooled from this share of the (first) checkpoint's PT step on.
#: Early PT (loss still far above the power-law regime, e.g. a plateau before a drop) is
#: not what the law describes; pooling it pinned L0 at 0 and raised the leave-one-pilot-out
#: CV error in every variant tried on the bundled pilots.
PT_POINTS_FROM = 0.25


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


#: Which PT-phase points of a validation set are pooled with the pilots' curves: "all"
#: (every logged point from PT_POINTS_FROM on), "checkpoint" (only the points at a
#: checkpoint's PT step: the loss CPT starts from) or "none". "auto" (a fitter setting):
#: "checkpoint" or "all", whichever the pilots' CV prefers (the one-standard-error rule,
#: "checkpoint" when they are within the noise); "checkpoint" when nothing is selected.
PT_POINT_CHOICES = ("all", "checkpoint", "none")
#: The domain set keeps only the checkpoints' values: a domain loss logged during PT
#: describes a model that never trained on the domain, another regime than CPT, and pooling
#: it pulled strong-shift fits away from the CPT behaviour (docs/law.md). The general set's
#: PT-phase points are the same data but still another regime (no re-warmup, no shift):
#: the pilots' CV decides.
DEFAULT_PT_POINTS = {"general": "auto", "domain": "checkpoint"}
#: The PT-point policies "auto" compares, the preferred (the prior's) first.
AUTO_PT_POINTS = ("checkpoint", "all")


def lr_reference(pilots: PilotSet) -> float:
    """The LR that per-step LRs are divided by (laws whose shift is driven by LR^q)."""
    return max(run.peak_lr for run in pilots.runs)


def collect_points(
    pilots: PilotSet,
    validation_set: str,
    lam: float | None,
    history: bool = False,
    pt_points: str = "all",
    steps: bool = False,
) -> FitData:
    """Pool every pilot's curve of ``validation_set`` (and PT-phase points, if logged).

    ``lam`` None: no S2 (a law without the m-recursion); ``history``: record the drop
    history of every point (laws with the multi-power annealing); ``pt_points``: which
    PT-phase points to pool (:data:`PT_POINT_CHOICES`; none if the manifest says so);
    ``steps``: record the per-step LRs (laws whose shift is driven by LR^q). Points of runs
    that repeat domain data carry the discounted area (``PilotSet.domain_tokens``).
    """
    if pt_points not in PT_POINT_CHOICES:
        raise InputError(
            f"pt_points == {pt_points!r}, must be one of {', '.join(PT_POINT_CHOICES)}"
        )
    parts: list[Areas] = []
    losses, run_index, point_steps = [], [], []
    pt_areas = history_areas(pilots.pretrain, lam) if pilots.pretrain.known else None
    reference = lr_reference(pilots) if steps else None
    for index, run in enumerate(pilots.runs):
        curve = run.curve(validation_set)
        if curve is None:
            continue
        state = checkpoint_state(pilots.pretrain, run.checkpoint, lam)
        parts.append(
            cpt_point_areas(
                run.cpt_lr,
                curve.steps,
                lam,
                state,
                run.replay_ratio,
                history=history,
                tokens_per_step=run.tokens_per_step,
                domain_tokens=pilots.domain_tokens,
                lr_reference=reference,
            )
        )
        losses.append(curve.values)
        run_index.append(np.full(len(curve), index))
        point_steps.append(curve.steps)
    pt_curve = pilots.pretrain.curve(validation_set)
    use = pilots.use_pretrain_points and pt_points != "none"
    if pt_areas is not None and pt_curve is not None and use:
        first_checkpoint = min(pilots.pretrain.checkpoints.values(), default=pt_areas.s1.size)
        start = max(pilots.pretrain.warmup_steps + 1, PT_POINTS_FROM * first_checkpoint)
        keep = (pt_curve.steps >= start) & (pt_curve.steps <= pt_areas.s1.size)
        if pt_points == "checkpoint":
            keep &= np.isin(pt_curve.steps, list(pilots.pretrain.checkpoints.values()))
        pt_steps = pt_curve.steps[keep]
        parts.append(pt_areas.points(pt_steps, history))
        losses.append(pt_curve.values[keep])
        run_index.append(np.full(pt_steps.size, -1))
        point_steps.append(pt_steps)
    if not parts:
        raise InputError(f"no pilot logs a {validation_set} loss")
    return FitData(
        Areas.concatenate(parts),
        np.concatenate(losses),
        np.concatenate(run_index),
        np.concatenate(point_steps),
    )


def collect_pretrain_points(
    pilots: PretrainPilots, lam: float | None, history: bool = False
) -> FitData:
    """Pool the loss points of pre-training pilots (manifest ``kind: pretrain``).

    Each run is its own schedule from step 1, so its points carry PT areas
    (:meth:`~cptopt.law.areas.PretrainAreas.points`: ``S1`` from step 1, the annealing
    memory from the end of its warmup). Only points after the warmup are fitted: the law
    describes the loss after it. ``run_index`` is the run, ``step`` its step; ``lam`` and
    ``history`` as for :func:`collect_points`.
    """
    parts: list[Areas] = []
    losses, run_index, point_steps = [], [], []
    for index, run in enumerate(pilots.runs):
        steps = run.loss.steps[run.loss.steps > run.warmup_steps]
        parts.append(pretrain_areas(run.lr, run.warmup_steps, lam).points(steps, history))
        losses.append(run.loss.values[run.loss.steps > run.warmup_steps])
        run_index.append(np.full(steps.size, index))
        point_steps.append(steps)
    return FitData(
        Areas.concatenate(parts),
        np.concatenate(losses),
        np.concatenate(run_index),
        np.concatenate(point_steps),
    )


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
    """``data`` with its per-step LRs (if any) in fewer entries (``StepLRs.compact``)."""
    if data.areas.steps is None:
        return data
    return replace(data, areas=replace(data.areas, steps=data.areas.steps.compact()))
