"""How far a pre-training schedule anneals away from its pilots: the anneal-depth gap.

A pre-training run's state after step ``t`` is summarised by two numbers: its forward area
``S1(t)`` (how far training has gone) and its anneal depth ``a(t) = 1 - eta_t / peak``
(0 at its peak LR, 1 at LR 0: how much of the LR has been taken away, and so how much
annealing credit the law is counting). Each pilot covers the path ``(S1, a)`` it trained
along. The gap of a point is the distance in depth to the nearest pilot at the same
forward area (before a pilot's first point, its first depth; beyond its last, its last):
0 when some pilot had annealed exactly that much at that point of training, up to 1 when
the point is at LR 0 where every pilot was still at its peak. A long, slow decay, or a drop
deeper or earlier than any pilot's, has a gap; a pilot's own schedule has none.

:class:`AnnealCoverage` is what the pilots annealed (their paths and lowest LR), kept in
the law file of a law fitted to pre-training pilots. Fits calibrate the interval's SD per
unit of gap on the pilots' own left-out runs (:func:`cptopt.fitting.pretraining.depth_sd`);
predictions add it (:meth:`cptopt.law.PretrainRunsLaw.anneal_sd`). Vectorised: a point is
a row, a pilot path one ``np.interp``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cptopt._validation import MAX_STEPS
from cptopt.pilots.runs import PretrainRun

#: A pilot's path is stored as at most this many points, evenly spaced in steps from the
#: end of its warmup (first and last kept): enough for a drop to move within ~1 % of the
#: run, small in the law file.
PATH_POINTS = 128


def anneal_state(lr: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(S1, depth)`` after each of ``steps`` (1-based) of a schedule with per-step LR
    ``lr`` (``lr[s - 1]`` is the LR of update ``s``); depth relative to the schedule's peak."""
    lr = np.asarray(lr, dtype=float)
    index = np.asarray(steps, dtype=int) - 1
    return np.cumsum(lr)[index], 1.0 - lr[index] / lr.max()


def anneal_path(
    lr: np.ndarray, warmup_steps: int, points: int = PATH_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """A pilot's path ``(S1, depth)`` from the first step after its warmup to its last, at
    most ``points`` points evenly spaced in steps."""
    lr = np.asarray(lr, dtype=float)
    first = min(int(warmup_steps) + 1, lr.size)
    steps = np.unique(np.linspace(first, lr.size, points).round().astype(int))
    return anneal_state(lr, steps)


def depth_gap(
    s1: np.ndarray, depth: np.ndarray, paths: Sequence[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Distance in depth from each point ``(s1, depth)`` to the nearest pilot path at the
    same forward area (0 for points on a path); zeros when there are no paths."""
    s1, depth = np.asarray(s1, dtype=float), np.asarray(depth, dtype=float)
    if not paths:
        return np.zeros(s1.shape)
    gaps = [np.abs(depth - np.interp(s1, path_s1, path_depth)) for path_s1, path_depth in paths]
    return np.min(gaps, axis=0)


Depth = Annotated[float, Field(ge=0, le=1)]


class AnnealPath(BaseModel):
    """One pre-training pilot's path: forward area and anneal depth after its warmup."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    s1: list[Annotated[float, Field(ge=0)]] = Field(
        min_length=1, description="forward area (sum of LRs) at each point, non-decreasing"
    )
    depth: list[Depth] = Field(min_length=1, description="1 - LR / peak LR at each point")

    @model_validator(mode="after")
    def _aligned(self) -> AnnealPath:
        if len(self.s1) != len(self.depth):
            raise ValueError(f"s1 has {len(self.s1)} points, depth {len(self.depth)}")
        if np.any(np.diff(self.s1) < 0):
            raise ValueError("s1 must not decrease along the path")
        return self

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.s1, dtype=float), np.asarray(self.depth, dtype=float)


class AnnealCoverage(BaseModel):
    """How far pre-training pilots annealed: their lowest LR after the warmup, their
    warmups and each one's path (pilot order)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    lowest_lr: float = Field(ge=0, description="the pilots' lowest LR after their warmup")
    warmup_steps: list[Annotated[int, Field(ge=0, le=MAX_STEPS)]] = Field(
        min_length=1, description="each pilot's warmup, in order"
    )
    paths: list[AnnealPath] = Field(min_length=1)

    @staticmethod
    def of(runs: Sequence[PretrainRun]) -> AnnealCoverage:
        """What ``runs`` annealed."""
        paths = [anneal_path(run.lr, run.warmup_steps) for run in runs]
        return AnnealCoverage(
            lowest_lr=min(float(run.lr[run.warmup_steps :].min()) for run in runs),
            warmup_steps=[run.warmup_steps for run in runs],
            paths=[AnnealPath(s1=s1.tolist(), depth=depth.tolist()) for s1, depth in paths],
        )

    def gap(self, lr: np.ndarray, steps: np.ndarray, without: int | None = None) -> np.ndarray:
        """The anneal-depth gap after each of ``steps`` (1-based) of a schedule ``lr`` to
        the pilots' paths (``without``: leave that pilot's path out)."""
        s1, depth = anneal_state(lr, steps)
        paths = [path.arrays() for index, path in enumerate(self.paths) if index != without]
        return depth_gap(s1, depth, paths)
