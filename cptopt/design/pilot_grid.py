"""Candidate pilots of a first-pilots design (:mod:`cptopt.design.first_pilots`), in the
user's units: the grid of the search space or the user's list, kept inside the ranges the
decision searches, and which ends of those ranges each reaches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cptopt.exceptions import InputError, param
from cptopt.schedules import Schedule
from cptopt.search.models import (
    Candidate,
    SearchSpace,
    fraction_range,
    ordered_range,
    parse_range,
    positive_lr_range,
    shape_schedule,
)

#: Candidate grid: peak LRs (log-spaced) x replay ratios, per family.
DESIGN_LRS, DESIGN_REPLAYS = 5, 6
#: A pilot within this share of a range's span (log span for LR) of its end covers that end.
REACH = 0.1


@dataclass(frozen=True)
class Spec:
    """A candidate pilot in the user's units."""

    name: str
    family: str
    lr: np.ndarray
    replay_ratio: float
    schedule: str
    plan: Schedule

    @property
    def peak(self) -> float:
        return float(self.lr.max())

    def same_as(self, other: Spec) -> bool:
        return (
            abs(self.replay_ratio - other.replay_ratio) < 1e-9
            and self.lr.size == other.lr.size
            and bool(np.allclose(self.lr, other.lr, rtol=1e-6, atol=1e-12))
        )


def grid_specs(space: SearchSpace, steps: int) -> list[Spec]:
    """Peak LRs x replay ratios x families of the space, ``steps`` long."""
    assert space.peak_lr is not None and space.replay_ratio is not None
    lrs = np.unique(np.geomspace(*space.peak_lr, DESIGN_LRS))
    replays = np.unique(np.round(np.linspace(*space.replay_ratio, DESIGN_REPLAYS), 4))
    decay = float(np.mean(space.decay_fraction))
    out = []
    for family in space.families:
        for lr in lrs:
            schedule = shape_schedule(family, steps, space.warmup_fraction[0], decay, lr)
            for replay in replays:
                out.append(
                    Spec(
                        f"{family} lr {lr:.2g} r {replay:.2f}",
                        family,
                        schedule.lr_array(),
                        float(replay),
                        schedule.describe(),
                        schedule,
                    )
                )
    return out


def listed_specs(candidates: Sequence[Candidate]) -> list[Spec]:
    return [
        Spec(
            c.name or f"candidate {i + 1}",
            c.schedule.family,
            c.schedule.lr_array(),
            c.replay_ratio,
            c.schedule.describe(),
            c.schedule,
        )
        for i, c in enumerate(candidates)
    ]


def inside(specs: list[Spec], space: SearchSpace, notes: list[str]) -> list[Spec]:
    """The candidates inside the space's peak-LR and replay ranges: a pilot outside the
    space the decision searches informs a setting nobody will run (and, being the most
    extreme, would be the most "informative" about the law's parameters)."""
    assert space.peak_lr is not None and space.replay_ratio is not None
    (low, high), (r_low, r_high) = space.peak_lr, space.replay_ratio
    kept = [
        s
        for s in specs
        if low * (1 - 1e-6) <= s.peak <= high * (1 + 1e-6)
        and r_low - 1e-9 <= s.replay_ratio <= r_high + 1e-9
    ]
    if not kept:
        raise InputError(
            f"{param('candidate_pilots')}: none inside the peak-LR and replay ranges searched"
        )
    if len(kept) < len(specs):
        notes.append(
            f"{len(specs) - len(kept)} candidate pilot(s) outside the peak-LR and replay "
            "ranges searched left out"
        )
    return kept


def reach(spec: Spec, space: SearchSpace) -> set[str]:
    """The ends of the space's peak-LR and replay ranges ``spec`` reaches."""
    assert space.peak_lr is not None and space.replay_ratio is not None
    out = set()
    low, high = np.log(space.peak_lr[0]), np.log(space.peak_lr[1])
    lr = np.log(spec.peak)
    if lr <= low + REACH * (high - low) + 1e-12:
        out.add("lowest peak LR")
    if lr >= high - REACH * (high - low) - 1e-12:
        out.add("highest peak LR")
    low, high = space.replay_ratio
    if spec.replay_ratio <= low + REACH * (high - low) + 1e-12:
        out.add("lowest replay")
    if spec.replay_ratio >= high - REACH * (high - low) - 1e-12:
        out.add("highest replay")
    return out


# -- reach: the ranges the user expects to recommend in ----------------------------------


def reach_range(value: Any, name: str, replay: bool) -> tuple[float, float] | None:
    """A reach range (``"LO,HI"``, ``(lo, hi)`` or one number), checked as the search
    space's own ranges are (:mod:`cptopt.search.models`): finite, ``LO <= HI``, a peak LR
    > 0, a replay ratio in 0..1. ``None`` passes."""
    if value is None:
        return None
    in_bounds = fraction_range if replay else positive_lr_range
    try:
        parsed = parse_range(value)
        if not isinstance(parsed, tuple):
            raise ValueError(f"{value!r} is not a number or 'low,high'")
        low, high = in_bounds(ordered_range((float(parsed[0]), float(parsed[1]))))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{param(name)}: {exc}") from None
    return low, high


def widen(
    space: SearchSpace,
    peak_lr: tuple[float, float] | None,
    replay: tuple[float, float] | None,
    notes: list[str],
) -> SearchSpace:
    """The space spanned by ``space`` and the reach (each range the union of both): where
    the pilots may go and the decision the design judges. No reach: ``space`` itself."""
    assert space.peak_lr is not None and space.replay_ratio is not None
    update: dict = {}
    for key, own, wide in (
        ("peak_lr", space.peak_lr, peak_lr),
        ("replay_ratio", space.replay_ratio, replay),
    ):
        if wide is None:
            continue
        union = (min(own[0], wide[0]), max(own[1], wide[1]))
        if union == tuple(own):
            notes.append(
                f"the {key.replace('_', ' ')} reach lies inside the space: it changes nothing"
            )
        else:
            update[key] = union
    return space.model_copy(update=update) if update else space
