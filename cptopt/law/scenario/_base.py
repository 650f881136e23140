"""What every scenario shares: what a law needs from a run, the fit data, what the pilots
covered and the flags of a setting outside it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from cptopt.law.areas import Areas
from cptopt.pilots.runs import PretrainRun, Run

#: Relative slack before a peak LR counts as outside the pilots' range.
RANGE_TOLERANCE = 0.01


@dataclass(frozen=True)
class InputNeeds:
    """What a law's terms read from a run besides its areas: the S2 memory factor ``lam``
    (None: no m-recursion), the drop history (``history``: a per-drop annealing memory) and
    the per-step LRs (``steps``: a shift driven by a power of the LR)."""

    lam: float | None
    history: bool = False
    steps: bool = False


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

    @staticmethod
    def pool(parts: list[tuple[Areas, np.ndarray, int, np.ndarray]]) -> FitData:
        """One data set from ``(areas, losses, run index, steps)`` per curve."""
        return FitData(
            Areas.concatenate([areas for areas, _, _, _ in parts]),
            np.concatenate([loss for _, loss, _, _ in parts]),
            np.concatenate([np.full(len(loss), index) for _, loss, index, _ in parts]),
            np.concatenate([steps for _, _, _, steps in parts]),
        )


class Coverage(BaseModel):
    """What the pilots covered: predictions outside it are flagged as extrapolation.

    Pre-training pilots have no replay ratios and no checkpoints (empty lists).
    """

    model_config = ConfigDict(extra="forbid")

    @staticmethod
    def of(
        runs: Sequence[Run] | Sequence[PretrainRun],
        replay_ratios: Iterable[float] = (),
        checkpoints: Iterable[str] = (),
    ) -> Coverage:
        """What ``runs`` covered (their replay ratios and checkpoints, for CPT pilots)."""
        peaks = [run.peak_lr for run in runs]
        steps = [run.steps for run in runs]
        return Coverage(
            peak_lr_min=min(peaks),
            peak_lr_max=max(peaks),
            replay_ratios=sorted(set(replay_ratios)),
            steps_min=min(steps),
            steps_max=max(steps),
            tokens_per_step=sorted({run.tokens_per_step for run in runs if run.tokens_per_step}),
            checkpoints=list(dict.fromkeys(checkpoints)),
        )

    peak_lr_min: float
    peak_lr_max: float
    replay_ratios: list[float]
    steps_min: int
    steps_max: int
    tokens_per_step: list[int]
    checkpoints: list[str]

    def problem(self) -> str | None:
        """The first inconsistency of a coverage read from a law file, or None."""
        if not 0 < self.peak_lr_min <= self.peak_lr_max:
            return (
                f"coverage.peak_lr_min {self.peak_lr_min!r} and peak_lr_max "
                f"{self.peak_lr_max!r}: must be 0 < min <= max"
            )
        if not 1 <= self.steps_min <= self.steps_max:
            return (
                f"coverage.steps_min {self.steps_min} and steps_max {self.steps_max}: must be "
                "1 <= min <= max"
            )
        outside = [ratio for ratio in self.replay_ratios if not 0 <= ratio <= 1]
        if outside:
            return f"coverage.replay_ratios: {outside[0]!r} is outside 0..1"
        if any(tokens < 1 for tokens in self.tokens_per_step):
            return f"coverage.tokens_per_step: {min(self.tokens_per_step)}, must be >= 1"
        return None

    def lr_flags(self, peak_lr: float) -> list[str]:
        """A flag when ``peak_lr`` is outside the pilots' peak LRs (beyond a small slack)."""
        low = self.peak_lr_min * (1 - RANGE_TOLERANCE)
        high = self.peak_lr_max * (1 + RANGE_TOLERANCE)
        if low <= peak_lr <= high:
            return []
        return [
            f"peak LR {peak_lr:.3g} outside the pilots' {self.peak_lr_min:.3g}.."
            f"{self.peak_lr_max:.3g}"
        ]

    def tokens_flags(self, tokens_per_step: float | None, why: str) -> list[str]:
        """A flag when ``tokens_per_step`` is not one of the pilots' (when both are known)."""
        used = self.tokens_per_step
        if not tokens_per_step or not used or tokens_per_step in used:
            return []
        return [
            f"tokens per step {tokens_per_step} differ from the pilots' "
            f"{', '.join(map(str, used))} ({why})"
        ]

    def corpus_tokens_per_step(self, tokens_per_step: float | None) -> float | None:
        """Tokens per step for the repetition discount: the one given, else the pilots'
        when they all used one."""
        if tokens_per_step:
            return float(tokens_per_step)
        used = self.tokens_per_step
        return float(used[0]) if len(used) == 1 else None


class InputRecord(BaseModel):
    """One input log of a fit and its SHA-256 (a law file is reproducible from itself)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str
    sha256: str


class FromPilots:
    """What a scenario built from its pilots (``pilots``, None when built from a law file)
    says of them for the fit: their names, notes and inputs, by pilot index."""

    pilots: Any

    def _runs(self) -> tuple:
        if self.pilots is None:
            raise ValueError(f"this {type(self).__name__} was not built from pilots")
        return self.pilots.runs

    @property
    def run_names(self) -> list[str]:
        """The pilots' names, by pilot index."""
        return [run.name for run in self._runs()]

    def run_notes(self) -> list[str]:
        """The warnings reading the pilots gave, each once."""
        return list(dict.fromkeys(note for run in self._runs() for note in run.notes))

    def info(self) -> list[str]:
        """How the runs were read (e.g. the schedule their LR points pin down)."""
        return list(dict.fromkeys(line for run in self._runs() for line in run.info))

    def run_records(self) -> list[InputRecord]:
        """Every pilot's log with its SHA-256."""
        return [InputRecord(name=r.name, source=r.source, sha256=r.sha256) for r in self._runs()]
