"""Pre-training runs from random initialisation (a manifest with ``kind: pretrain``).

One validation set, the runs' one loss (``loss``; law files before schema 5 stored it as
``general``). A run is its own schedule from step 1: its inputs are PT areas, ``S1``
counting from step 1 (warmup included) and the annealing memory from the end of its
warmup; only the loss after the warmup is fitted and predicted (docs/law.md, section 10).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from cptopt.exceptions import InputError, param
from cptopt.law.anneal_coverage import AnnealCoverage
from cptopt.law.areas import Areas, pretrain_areas
from cptopt.law.scenario._base import (
    RANGE_TOLERANCE,
    Coverage,
    FitData,
    FromPilots,
    InputNeeds,
    InputRecord,
)
from cptopt.pilots.runs import PretrainPilots, PretrainRun, infer_warmup
from cptopt.plan import PretrainConfig, load_pretrain_config
from cptopt.schedules import Schedule

#: The one validation set of pre-training pilots: their loss.
LOSS = "loss"


@dataclass(frozen=True)
class PretrainRunInput:
    """A pre-training run as the law reads it: per-step LRs from step 1, warmup included
    (``lr[s - 1]`` = LR of update ``s``), and the warmup after which the memory starts
    (``tokens_per_step``: as given, None when unknown)."""

    lr: np.ndarray
    warmup_steps: int
    tokens_per_step: int | None = None

    @property
    def steps(self) -> int:
        return int(self.lr.size)

    def report_steps(self, steps: list[int] | np.ndarray | None = None) -> np.ndarray:
        """The steps a prediction reports, after the warmup: ``steps`` (checked), or by
        default the first step after it, 10 evenly spaced steps and the last."""
        first, total = self.warmup_steps + 1, self.steps
        if steps is None:
            return np.unique(np.linspace(first, total, 11).round().astype(int))
        report = np.unique(np.asarray(steps, dtype=int))
        if report.size == 0 or report.min() < first or report.max() > total:
            raise InputError(
                f"{param('steps')} (the steps to report) must lie in {first}..{total} (after "
                f"the {self.warmup_steps}-step "
                "warmup: the law describes the loss after it)"
            )
        return report


@dataclass(frozen=True)
class PretrainScenario(FromPilots):
    """Pre-training pilots and the laws fitted to them (see the module docstring).

    ``coverage``: what the pilots covered (no replay ratios, no checkpoints); ``anneal``:
    how far they annealed (:mod:`cptopt.law.anneal_coverage`; None in law files written
    before cptopt kept it). Built from the pilots (:meth:`from_pilots`, which keeps them for
    the fit's data) or from a law file (``PretrainRunsLaw.scenario``).
    """

    kind: ClassVar[str] = "pretrain"
    #: The validation sets of a fit of these pilots.
    validation_sets: ClassVar[tuple[str, ...]] = (LOSS,)
    #: The law form has no replay terms; its areas are known from step 1.
    replay_terms: ClassVar[bool] = False
    checkpoint_known: ClassVar[bool] = True

    coverage: Coverage | None = None
    pilots: PretrainPilots | None = field(default=None, compare=False, repr=False)
    anneal: AnnealCoverage | None = None

    @staticmethod
    def from_pilots(pilots: PretrainPilots) -> PretrainScenario:
        """The scenario of pre-training pilots (what they covered; the pilots kept)."""
        return PretrainScenario(Coverage.of(pilots.runs), pilots, AnnealCoverage.of(pilots.runs))

    # -- runs and their inputs ----------------------------------------------------------

    def run(
        self,
        schedule: Schedule,
        warmup_steps: int | None = None,
        tokens_per_step: int | None = None,
    ) -> PretrainRunInput:
        """A planned pre-training run; its warmup is ``warmup_steps``, else the schedule's
        own, or for a custom schedule the steps before its LR first reaches its peak."""
        lr = schedule.lr_array()
        if warmup_steps is None:
            own = schedule.family != "custom"
            warmup = schedule.n_warmup if own else infer_warmup(lr)
        else:
            warmup = int(warmup_steps)
        if not 0 <= warmup < lr.size:
            raise InputError(f"warmup_steps == {warmup}, must be in 0..{lr.size - 1}")
        return PretrainRunInput(lr, warmup, int(tokens_per_step) if tokens_per_step else None)

    def planned(
        self,
        schedule: Schedule,
        replay_ratio: float | None = None,
        *,
        warmup_steps: int | None = None,
        tokens_per_step: int | None = None,
        checkpoint: str | None = None,
        domain_tokens: float | None = None,
    ) -> PretrainRunInput:
        """The run ``predict`` is asked about: a pre-training schedule (no replay ratio, no
        checkpoint, no domain corpus)."""
        given = {"replay_ratio": replay_ratio, "checkpoint": checkpoint}
        given["domain_tokens"] = domain_tokens
        for name, value in given.items():
            if value is not None:
                raise InputError(f"predict: a pre-training schedule has no {param(name)}")
        return self.run(schedule, warmup_steps, tokens_per_step)

    def read_plan(self, path: str | Path) -> PretrainConfig:
        """A pre-training config (YAML), for laws of this kind."""
        return load_pretrain_config(path)

    def plan_run(self, plan: PretrainConfig) -> PretrainRunInput:
        """The run a pre-training config plans."""
        return self.run(plan.schedule, tokens_per_step=plan.tokens_per_step)

    def pilot_run(self, run: PretrainRun) -> PretrainRunInput:
        """A pilot as the law reads it."""
        return PretrainRunInput(run.lr, run.warmup_steps, run.tokens_per_step)

    def inputs(self, run: PretrainRunInput, steps: np.ndarray, needs: InputNeeds) -> Areas:
        """The law's inputs at ``steps`` of ``run``: the one place a pre-training run
        becomes areas (``S1`` from step 1, the memory from the end of the warmup)."""
        areas = pretrain_areas(run.lr, run.warmup_steps, needs.lam)
        return areas.points(steps, needs.history)

    def coverage_flags(
        self,
        *,
        peak_lr: float,
        steps: int,
        tokens_per_step: int | None = None,
        lowest_lr: float | None = None,
    ) -> list[str]:
        """One message per setting of a pre-training run outside what the pilots covered
        (``lowest_lr``: the run's lowest LR after its warmup; below every pilot's, an LR
        drop deeper than any of theirs)."""
        cov = self.coverage
        if cov is None:
            return []
        flags = cov.lr_flags(peak_lr)
        if steps > cov.steps_max:
            flags.append(
                f"{steps} steps beyond the longest pilot ({cov.steps_max}): "
                f"{steps / cov.steps_max:.1f}x the longest fitted run"
            )
        floor = None if self.anneal is None else self.anneal.lowest_lr * (1 - RANGE_TOLERANCE)
        if floor is not None and lowest_lr is not None and lowest_lr < floor:
            flags.append(
                f"lowest LR {lowest_lr:.3g} below the pilots' lowest after their warmup "
                f"({self.anneal.lowest_lr:.3g}): an LR drop deeper than any pilot's"
            )
        return flags + cov.tokens_flags(tokens_per_step, "the law counts steps, not tokens")

    def depth_gap(self, run: PretrainRunInput, steps: np.ndarray) -> np.ndarray:
        """How far ``run`` has annealed from every pilot after each of ``steps``
        (:mod:`cptopt.law.anneal_coverage`); zeros when the pilots' paths are unknown and at
        step 0 (before any update)."""
        steps = np.asarray(steps, dtype=int)
        if self.anneal is None:
            return np.zeros(steps.shape)
        return self.anneal.gap(run.lr, np.maximum(steps, 1))

    def pilot_depth_gap(self, index: int, steps: np.ndarray) -> np.ndarray:
        """How far pilot ``index`` had annealed from the OTHER pilots after each of its
        ``steps``: what a fit without it had not seen (the gap's calibration)."""
        run, anneal = self._runs()[index], self.anneal
        if anneal is None:
            raise ValueError("this PretrainScenario does not know how its pilots annealed")
        return anneal.gap(run.lr, np.maximum(np.asarray(steps, dtype=int), 1), without=index)

    # -- the pilots' data, for the fit --------------------------------------------------

    def logged(self, validation_set: str) -> int:
        """How many pilots log the loss (all of them)."""
        return len(self._runs()) if validation_set == LOSS else 0

    def shared_replay_folds(self) -> list[int]:
        """None: pre-training runs have no replay ratio (every fold counts)."""
        return []

    def fit_data(self, validation_set: str, needs: InputNeeds, pt_points: str = "none") -> FitData:
        """Every run's loss points after its warmup, pooled with their inputs (``run_index``
        the run, ``step`` its step). There are no PT-phase points: the runs are the PT."""
        if validation_set != LOSS:
            raise InputError(f"pre-training pilots have one validation set, {LOSS!r}")
        parts = []
        for index, run in enumerate(self._runs()):
            after = run.loss.steps > run.warmup_steps
            steps = run.loss.steps[after]
            areas = self.inputs(self.pilot_run(run), steps, needs)
            parts.append((areas, run.loss.values[after], index, steps))
        return FitData.pool(parts)

    def notes(self) -> list[str]:
        """The runs' notes."""
        return self.run_notes()

    def input_records(self) -> list[InputRecord]:
        """Every input log with its SHA-256."""
        return self.run_records()
