"""The LR of every update, from the LR points a log holds.

The areas S1 and S2 need the LR of every update ``s = 1..total``; logs hold it every
``logging_steps`` (HF default 10, Lightning default 50). :func:`lr_per_step` decides:

1. **logged**: a point at every update: used as is.
2. **matched**: otherwise the points are matched against the schedule families HF and
   cptopt write: linear warmup of ``W`` steps (any ``W``, 0 included), then constant,
   linear or cosine decay to a floor, warmup-stable-decay (decay start free; linear,
   cosine or ``1-sqrt`` decay; floor free) or HF's inverse square root. Each family in
   both step conventions: PyTorch's (``LambdaLR``, the HF Trainer, Lightning: update ``s``
   runs at the schedule's value for step ``s - 1``, so the first warmup update has LR 0)
   and cptopt's (update ``s`` at step ``s``). The decay ends at the schedule's last step:
   ``max_steps`` when the log records it (HF), else the run's last step. Peak and floor
   are fitted (least squares); a candidate fits when every logged point is within
   ``MATCH_TOLERANCE`` of its peak. When every candidate that fits gives the same LR at
   every update (within ``SAME_TOLERANCE`` of the peak), that LR is used: it is pinned
   down, ``s1_bound`` = 0.
3. **interpolated**: otherwise (no family fits, or several that disagree: typically a
   warmup shorter than the logging interval) the LR is interpolated linearly between
   logged steps (held flat before the first and after the last point), and ``s1_bound``
   says how far its S1 (sum of the per-step LR) can be from the truth: the largest
   relative S1 error against any schedule that fits (several families fit), or, when none
   does, against any LR that stays between neighbouring logged points (0 to the first
   logged value before it).

Everything is vectorised over candidates and steps (numpy; no Python loop over steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cptopt.pilots.logs._base import Series

#: A family fits when every logged point is within this share of its peak LR.
MATCH_TOLERANCE = 1e-5
#: Two candidates are the same schedule when their per-update LRs agree within this share.
SAME_TOLERANCE = 1e-6
#: Largest number of array elements built at once (candidates x steps).
_CHUNK = 1 << 21

#: Conventions: 1 = PyTorch/HF (update s at schedule step s - 1), 0 = cptopt (at step s).
CONVENTIONS = {1: "PyTorch/HF step convention", 0: "cptopt step convention"}
_FAMILIES = (
    "constant",
    "linear",
    "cosine",
    "wsd-linear",
    "wsd-cosine",
    "wsd-1-sqrt",
    "inverse_sqrt",
)
#: HF's inverse_sqrt timescale when there is no warmup.
_INVERSE_SQRT_TIMESCALE = 10_000


@dataclass(frozen=True)
class LrEstimate:
    """The per-update LR cptopt uses for a run and how it was obtained.

    ``per_step[s - 1]`` is the LR of update ``s``; ``source`` is ``logged``, ``matched`` or
    ``interpolated``; ``s1_bound`` the largest relative error of
    ``per_step.sum()`` the logged points allow (0 when pinned down); ``description`` one
    line for reports.
    """

    per_step: np.ndarray
    source: str
    s1_bound: float
    description: str


@dataclass(frozen=True)
class _Fit:
    """Candidates of one family and convention that fit: arrays over candidates."""

    family: str
    convention: int
    warmup: np.ndarray
    decay_start: np.ndarray
    peak: np.ndarray
    floor: np.ndarray


def torch_convention(per_step: np.ndarray, start_lr: float) -> np.ndarray:
    """A cptopt-convention per-step LR moved to PyTorch's: update ``s`` gets step ``s - 1``.

    ``start_lr`` is the schedule's value at step 0 (the warmup start, or the peak without
    warmup).
    """
    return np.concatenate(([start_lr], per_step[:-1]))


def lr_per_step(lr: Series, total: int, *, schedule_steps: int | None = None) -> LrEstimate:
    """The LR of updates ``1..total`` from a (possibly sparse) LR series (module docstring)."""
    keep = lr.steps >= 1
    steps, values = lr.steps[keep].astype(np.int64), lr.values[keep].astype(float)
    total = int(max(total, steps[-1]))
    if steps.size == total and steps[0] == 1:
        return LrEstimate(values.copy(), "logged", 0.0, f"LR logged at every update 1..{total}")
    horizon = max(int(schedule_steps or 0), total)
    fits = [
        fit
        for convention in (1, 0)
        for family in _FAMILIES
        if (fit := _match(family, convention, steps, values, horizon, total)) is not None
    ]
    interpolated = np.interp(np.arange(1, total + 1), steps, values)
    coverage = f"LR logged at {steps.size} of {total} updates"
    if fits:
        reference, s1, deviation = _compare(fits, total, horizon)
        peak = float(reference.max())
        if deviation <= SAME_TOLERANCE * peak:
            text = _describe(fits[0], horizon)
            return LrEstimate(reference, "matched", 0.0, f"{coverage}; they pin down {text}")
        used = float(interpolated.sum())
        bound = float(np.max(np.abs(used - s1) / s1))
        kinds = ", ".join(_span(fits))
        return LrEstimate(
            interpolated,
            "interpolated",
            bound,
            f"{coverage}: interpolated linearly; several schedules fit them ({kinds}): S1 "
            f"may be off by up to {bound:.1%}; describe the schedule (schedule: with your "
            "trainer's keys) to pin it down",
        )
    bound = _envelope_bound(steps, values, total, interpolated)
    return LrEstimate(
        interpolated,
        "interpolated",
        bound,
        f"{coverage}: interpolated linearly; no known schedule family fits them: S1 may be "
        f"off by up to {bound:.1%}; describe the schedule (schedule:) to pin it down",
    )


# --------------------------------------------------------------------------- families


def _basis(
    family: str, x: np.ndarray, warmup: np.ndarray, decay: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(a, b)`` with LR = peak * a + floor * b at schedule steps ``x`` (candidates x steps).

    ``warmup`` and ``decay`` are column vectors (one row per candidate).
    """
    w = warmup.astype(float)
    ramp = x / np.maximum(w, 1.0)
    warm = x < w
    if family == "constant":
        return np.where(warm, ramp, 1.0), None
    if family == "inverse_sqrt":
        scale = np.where(w > 0, w, float(_INVERSE_SQRT_TIMESCALE))
        decayed = 1.0 / np.sqrt(np.maximum(x - w + scale, 1.0) / scale)
        return np.where(warm, ramp, decayed), None
    start = w if family in ("linear", "cosine") else decay.astype(float)
    progress = np.clip((x - start) / np.maximum(horizon - start, 1.0), 0.0, 1.0)
    shape = family.removeprefix("wsd-")
    if shape == "linear":
        g = 1.0 - progress
    elif shape == "cosine":
        g = 0.5 * (1.0 + np.cos(np.pi * progress))
    else:  # 1-sqrt
        g = 1.0 - np.sqrt(progress)
    a = np.where(warm, ramp, g)
    b = np.where(warm, 0.0, 1.0 - g)
    return a, b


def _grid(
    family: str, x: np.ndarray, values: np.ndarray, horizon: int, total_x: int
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate ``(warmup, decay_start)`` pairs the points allow (column vectors)."""
    top = values.max()
    high = np.flatnonzero(values >= top * (1 - MATCH_TOLERANCE))
    first, last = int(high[0]), int(high[-1])
    # Points before the first maximum are in the warmup; the one after it is past it.
    low_w = int(x[first - 1]) + 1 if first > 0 else 0
    high_w = int(x[first + 1]) if first + 1 < x.size else horizon - 1
    warmups = np.arange(max(low_w, 0), min(high_w, horizon - 1) + 1)
    if not family.startswith("wsd"):
        return warmups[:, None], np.zeros((warmups.size, 1), dtype=np.int64)
    # WSD: the peak is the plateau's value, so the warmup ends at or before the first point at
    # it and the decay starts at or after the last; the next point is past it. The two phases
    # see disjoint points: search each alone, then pair the survivors.
    warmups = warmups[warmups <= x[first]]
    low_d = int(x[last])
    high_d = int(x[last + 1]) - 1 if last + 1 < x.size else horizon - 1
    high_d = min(high_d, max(low_d, total_x))  # later starts give the same LR in the run
    decays = np.arange(low_d, high_d + 1)
    if warmups.size == 0 or decays.size == 0:
        return np.zeros((0, 1), dtype=np.int64), np.zeros((0, 1), dtype=np.int64)
    head, tail = slice(0, last + 1), slice(first, None)
    _, _, warm_fits = _fit_rows("constant", x[head], values[head], warmups[:, None], 0, horizon)
    zeros = np.zeros((decays.size, 1))
    _, _, decay_fits = _fit_rows(family, x[tail], values[tail], zeros, decays[:, None], horizon)
    warmups, decays = warmups[warm_fits], decays[decay_fits]
    if warmups.size == 0 or decays.size == 0:
        return np.zeros((0, 1), dtype=np.int64), np.zeros((0, 1), dtype=np.int64)
    if warmups.size * decays.size > _PAIRS:  # keep every warmup and decay start, not all pairs
        w_few = warmups[np.linspace(0, warmups.size - 1, 8).round().astype(np.int64)]
        d_few = decays[np.linspace(0, decays.size - 1, 8).round().astype(np.int64)]
        w = np.concatenate([np.repeat(warmups, d_few.size), np.tile(w_few, decays.size)])
        d = np.concatenate([np.tile(d_few, warmups.size), np.repeat(decays, w_few.size)])
    else:
        w, d = (grid.ravel() for grid in np.meshgrid(warmups, decays, indexing="ij"))
    return w[:, None], d[:, None]


#: Largest number of (warmup, decay start) pairs checked for one WSD family.
_PAIRS = 4096


def _fit_rows(
    family: str,
    x: np.ndarray,
    values: np.ndarray,
    warmups: np.ndarray,
    decays: np.ndarray | int,
    horizon: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate (row): least-squares peak and floor, and whether every point fits.

    A decay to a floor within 0.1 % of the peak is the constant family in disguise: no fit.
    """
    decays = np.broadcast_to(np.asarray(decays), warmups.shape)
    peaks, floors, fits = [], [], []
    rows = max(1, _CHUNK // max(x.size, 1))
    for start in range(0, warmups.shape[0], rows):
        w, d = warmups[start : start + rows], decays[start : start + rows]
        a, b = _basis(family, x[None, :], w, d, horizon)
        peak, floor = _least_squares(a, b, values)
        floor = np.where(floor < 1e-9 * np.abs(peak), 0.0, floor)  # rounding, not a floor
        fitted = peak[:, None] * a + (0.0 if b is None else floor[:, None] * b)
        error = np.abs(fitted - values).max(axis=1)
        peaks.append(peak)
        floors.append(floor)
        fits.append((peak > 0) & (floor < peak * (1 - 1e-3)) & (error <= MATCH_TOLERANCE * peak))
    if not fits:
        empty = np.zeros(0)
        return empty, empty, np.zeros(0, dtype=bool)
    return np.concatenate(peaks), np.concatenate(floors), np.concatenate(fits)


def _match(
    family: str,
    convention: int,
    steps: np.ndarray,
    values: np.ndarray,
    horizon: int,
    total: int,
) -> _Fit | None:
    """The candidates of one family and convention that fit every logged point, or None."""
    x = (steps - convention).astype(float)
    warmups, decays = _grid(family, x, values, horizon, total - convention)
    if warmups.size == 0:
        return None
    peak, floor, ok = _fit_rows(family, x, values, warmups, decays, horizon)
    if not ok.any():
        return None
    return _Fit(family, convention, warmups[ok, 0], decays[ok, 0], peak[ok], floor[ok])


def _least_squares(
    a: np.ndarray, b: np.ndarray | None, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: ``peak, floor >= 0`` minimising ``|values - peak a - floor b|``."""
    aa, av = (a * a).sum(axis=1), (a * values).sum(axis=1)
    peak_only = av / np.maximum(aa, 1e-300)
    if b is None:
        return peak_only, np.zeros_like(peak_only)
    ab, bb, bv = (a * b).sum(axis=1), (b * b).sum(axis=1), (b * values).sum(axis=1)
    det = aa * bb - ab * ab
    solvable = det > 1e-12 * np.maximum(aa * bb, 1e-300)
    safe = np.where(solvable, det, 1.0)
    peak = np.where(solvable, (bb * av - ab * bv) / safe, peak_only)
    floor = np.where(solvable, (aa * bv - ab * av) / safe, 0.0)
    negative = floor < 0
    return np.where(negative, peak_only, peak), np.where(negative, 0.0, floor)


def _per_step(fit: _Fit, rows: slice, total: int, horizon: int) -> np.ndarray:
    """Per-update LR of candidates ``rows`` of a fit, shape (candidates, total)."""
    x = (np.arange(1, total + 1) - fit.convention).astype(float)[None, :]
    a, b = _basis(fit.family, x, fit.warmup[rows, None], fit.decay_start[rows, None], horizon)
    lr = fit.peak[rows, None] * a
    if b is not None:
        lr = lr + fit.floor[rows, None] * b
    return lr


#: Candidates per family and convention whose per-step LR is built (see :func:`_sample`).
_SAMPLED = 24


def _sample(fit: _Fit) -> np.ndarray:
    """Rows of a fit to build: the corners of its (warmup, decay start) ranges and evenly spaced
    ones between. S1 falls with the warmup and rises with the decay start, so its extremes
    are at the corners; building every candidate of a long run would cost seconds."""
    k = fit.warmup.size
    if k <= _SAMPLED:
        return np.arange(k)
    w, d = fit.warmup, fit.decay_start
    corners = [
        np.argmin(w - 1e-9 * d),
        np.argmin(w + 1e-9 * d),
        np.argmax(w + 1e-9 * d),
        np.argmax(w - 1e-9 * d),
        np.argmin(d - 1e-9 * w),
        np.argmax(d + 1e-9 * w),
    ]
    spread = np.linspace(0, k - 1, _SAMPLED).round().astype(np.int64)
    return np.unique(np.concatenate((np.asarray(corners, dtype=np.int64), spread)))


def _subset(fit: _Fit, rows: np.ndarray) -> _Fit:
    return _Fit(
        fit.family,
        fit.convention,
        fit.warmup[rows],
        fit.decay_start[rows],
        fit.peak[rows],
        fit.floor[rows],
    )


def _compare(fits: list[_Fit], total: int, horizon: int) -> tuple[np.ndarray, np.ndarray, float]:
    """First candidate's per-step LR, sampled candidates' S1, largest deviation from the first."""
    reference = _per_step(fits[0], slice(0, 1), total, horizon)[0]
    sums, deviation = [], 0.0
    rows = max(1, _CHUNK // total)
    for fit in (_subset(fit, _sample(fit)) for fit in fits):
        for start in range(0, fit.warmup.size, rows):
            lr = _per_step(fit, slice(start, start + rows), total, horizon)
            sums.append(lr.sum(axis=1))
            deviation = max(deviation, float(np.abs(lr - reference).max()))
    return reference, np.concatenate(sums), deviation


def _envelope_bound(steps: np.ndarray, values: np.ndarray, total: int, used: np.ndarray) -> float:
    """Largest relative S1 error of ``used`` over every LR between neighbouring points."""
    grid = np.arange(1, total + 1)
    right = np.searchsorted(steps, grid)  # first logged step >= each step
    inside = right < steps.size
    at = np.where(inside, right, steps.size - 1)
    exact = inside & (steps[at] == grid)
    before = np.where(right > 0, values[np.maximum(right - 1, 0)], 0.0)
    after = np.where(inside, values[at], 0.0)
    low = np.where(exact, values[at], np.minimum(before, after))
    high = np.where(exact, values[at], np.maximum(before, after))
    s1_low, s1_high, s1 = float(low.sum()), float(high.sum()), float(used.sum())
    if s1_low <= 0:
        return float("inf")
    return max((s1 - s1_low) / s1_low, (s1_high - s1) / s1_high)


# --------------------------------------------------------------------------- descriptions


def _label(fit: _Fit) -> str:
    return fit.family.replace("wsd-", "WSD ") + (" decay" if fit.family.startswith("wsd") else "")


def _describe(fit: _Fit, horizon: int) -> str:
    text = (
        f"{_label(fit)} ({CONVENTIONS[fit.convention]}): warmup {int(fit.warmup[0])}, "
        f"peak {fit.peak[0]:.4g}"
    )
    if fit.family.startswith("wsd"):
        text += f", decay from step {int(fit.decay_start[0])}"
    if fit.family not in ("constant", "inverse_sqrt"):
        text += f", min {fit.floor[0]:.3g}, over {horizon} steps"
    return text


def _span(fits: list[_Fit]) -> list[str]:
    parts = []
    for fit in fits:
        low, high = int(fit.warmup.min()), int(fit.warmup.max())
        warm = f"warmup {low}" if low == high else f"warmup {low}..{high}"
        parts.append(f"{_label(fit)} {warm}, {CONVENTIONS[fit.convention].split()[0]}")
    return parts
