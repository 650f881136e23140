"""LR drops and their history: what a per-drop annealing memory sums over.

An LR drop is ``d_k = eta_{k-1} - eta_k`` (negative for a rise, e.g. a re-warmup). The
paper's annealing area S2 filters the drops with one memory factor (:mod:`cptopt.law.areas`);
the multi-power memory (:mod:`cptopt.law.forms`, docs/law.md) credits every drop on its own
and needs, for each point, every earlier drop with the LR after it and the LR area trained
since (``S1(t) - S1(k-1)``). :func:`drop_history` returns those, the recent drops one by one
and older ones merged in bins, so that a long history stays cheap (see there).

:func:`lr_drops` is the one place where a per-step LR array becomes drops.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

#: Drop history: drops at most this many updates before a point are kept one by one ...
HISTORY_EXACT_AGE = 64
#: ... older ones are merged in age bins, each this factor wider than the one before ...
HISTORY_AGE_RATIO = 1.05
#: ... and never across a change of the drop's sign or a change of log(LR) of this much.
#: With these, the multi-power annealing sums stay within ~1e-4 of the exact sum over
#: every drop (tests/law/test_drops.py) at a few hundred pairs per point.
HISTORY_LOG_LR_BAND = 0.05
#: LRs below this share of their phase's largest LR count as this share (log(0) is
#: undefined; such steps train nothing, so the exact floor does not matter).
LR_FLOOR_SHARE = 1e-6


def lr_drops(lr: np.ndarray, lr_before: float = 0.0) -> np.ndarray:
    """Drop of every update of ``lr`` (shape ``(n,)``): ``lr_before - lr[0]``, then
    ``lr[k-1] - lr[k]``."""
    lr = np.asarray(lr, dtype=float)
    drops = np.empty_like(lr)
    if lr.size:
        drops[0] = lr_before - lr[0]
        drops[1:] = lr[:-1] - lr[1:]
    return drops


@dataclass(frozen=True)
class DropHistory:
    """The LR drops before each of ``n_points`` points, as (point, drop) pairs.

    Arrays of shape ``(m,)``: ``point`` (which point), ``drop`` (LR drop, negative for a
    rise), ``lr`` (LR after it), ``area`` (LR area from the drop's step to the point,
    ``S1(t) - S1(k-1)``) and ``cpt`` (True for drops of the CPT phase, the boundary drop
    included). A pair may stand for a bin of old drops (summed drop, drop-weighted log-mean
    LR and mean area). ``index`` maps the points of an :class:`Areas` to history points
    (None: the identity), so that settings sharing a schedule share their history.
    """

    point: np.ndarray
    drop: np.ndarray
    lr: np.ndarray
    area: np.ndarray
    cpt: np.ndarray
    n_points: int
    index: np.ndarray | None = None

    @cached_property
    def log_lr(self) -> np.ndarray:
        return np.log(self.lr)

    @cached_property
    def neg_log_lr(self) -> np.ndarray:
        """``-log(lr)``, kept: the multi-power memory's d/d(gamma) needs it at every call."""
        return -self.log_lr

    @cached_property
    def _phase_order(self) -> np.ndarray | None:
        """Pair order by (phase, point); None when the pairs are in that order already."""
        order = np.lexsort((self.point, self.cpt))
        return None if (order == np.arange(order.size)).all() else order

    @cached_property
    def by_phase(self) -> DropHistory:
        """The same pairs ordered by (phase, point), the order :meth:`phase_sums` reduces in.

        Kernels evaluated on this view need no reordering per call (the fit calls them
        thousands of times on one history).
        """
        order = self._phase_order
        if order is None:
            return self
        return DropHistory(
            self.point[order],
            self.drop[order],
            self.lr[order],
            self.area[order],
            self.cpt[order],
            self.n_points,
            self.index,
        )

    @cached_property
    def _groups(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Runs of equal (phase, point) in :attr:`by_phase` order."""
        ordered = self.by_phase
        key = ordered.cpt.astype(np.int64) * (self.n_points + 1) + ordered.point
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else key
        return starts, ordered.point[starts], ordered.cpt[starts]

    def phase_sums(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-point sums of ``values`` over the PT and over the CPT pairs.

        ``values`` has shape ``(..., m)``, one value per pair of this history; returns two
        arrays of shape ``(..., n)`` (through ``index``, if set). Cheapest on a history in
        :attr:`by_phase` order, which needs no reordering.
        """
        values = np.asarray(values, dtype=float)
        if self._phase_order is not None:
            values = values[..., self._phase_order]
        lead = values.shape[:-1]
        starts, group_point, group_cpt = self._groups
        pt, cpt = np.zeros((*lead, self.n_points)), np.zeros((*lead, self.n_points))
        if starts.size:
            reduced = np.add.reduceat(values, starts, axis=-1)
            pt[..., group_point[~group_cpt]] = reduced[..., ~group_cpt]
            cpt[..., group_point[group_cpt]] = reduced[..., group_cpt]
        if self.index is not None:
            pt, cpt = pt[..., self.index], cpt[..., self.index]
        return pt, cpt

    @staticmethod
    def empty(n_points: int) -> DropHistory:
        zeros = np.zeros(0)
        return DropHistory(np.zeros(0, dtype=int), zeros, zeros, zeros, np.zeros(0, bool), n_points)

    def resolved(self) -> DropHistory:
        """The same history with ``index`` applied (one history point per area point)."""
        if self.index is None:
            return self
        index = np.asarray(self.index, dtype=int)
        order = np.argsort(self.point, kind="stable")
        starts = np.searchsorted(self.point[order], np.arange(self.n_points + 1))
        counts = np.diff(starts)[index]
        # Every pair of history point index[j], in order: its run's start plus 0..count-1.
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        rows = order[np.repeat(starts[index], counts) + within]
        point = np.repeat(np.arange(index.size), counts)
        return DropHistory(
            point, self.drop[rows], self.lr[rows], self.area[rows], self.cpt[rows], index.size
        )

    def take(self, index: np.ndarray) -> DropHistory:
        """History of a subset of the points (``index``: boolean mask or positions)."""
        resolved = self.resolved()
        positions = np.arange(resolved.n_points)[index]
        remap = np.full(resolved.n_points, -1)
        remap[positions] = np.arange(positions.size)
        keep = remap[resolved.point] >= 0
        return DropHistory(
            remap[resolved.point[keep]],
            resolved.drop[keep],
            resolved.lr[keep],
            resolved.area[keep],
            resolved.cpt[keep],
            positions.size,
        )

    @staticmethod
    def merge(parts: list[DropHistory]) -> DropHistory:
        """The pairs of several histories of the same points, together."""
        resolved = [part.resolved() for part in parts]
        return DropHistory(
            np.concatenate([p.point for p in resolved]),
            np.concatenate([p.drop for p in resolved]),
            np.concatenate([p.lr for p in resolved]),
            np.concatenate([p.area for p in resolved]),
            np.concatenate([p.cpt for p in resolved]),
            resolved[0].n_points,
        )

    @staticmethod
    def concatenate(parts: list[DropHistory]) -> DropHistory:
        """Histories of consecutive point sets, as one (point numbers offset)."""
        resolved = [part.resolved() for part in parts]
        offsets = np.cumsum([0] + [part.n_points for part in resolved])
        return DropHistory(
            np.concatenate([p.point + o for p, o in zip(resolved, offsets, strict=False)]),
            np.concatenate([p.drop for p in resolved]),
            np.concatenate([p.lr for p in resolved]),
            np.concatenate([p.area for p in resolved]),
            np.concatenate([p.cpt for p in resolved]),
            int(offsets[-1]),
        )


def _age_bin_starts(max_age: int) -> np.ndarray:
    """Youngest age of each bin: 1..HISTORY_EXACT_AGE one by one, then geometric."""
    starts = list(range(1, HISTORY_EXACT_AGE + 1))
    age = HISTORY_EXACT_AGE + 1
    while age <= max_age:
        starts.append(age)
        age = max(age + 1, int(age * HISTORY_AGE_RATIO) + 1)
    return np.array(starts, dtype=np.int64)


def _band_starts(relative: np.ndarray, drops: np.ndarray, cpt_from: int | None) -> np.ndarray:
    """First updates of the bands no bin may cross: wherever the drops turn from falls to
    rises (or back) or the quantised log-LR (``relative``, to the phase's peak) changes; the
    CPT boundary and its first drop are always bands of their own."""
    n = drops.size
    band = np.floor(relative / HISTORY_LOG_LR_BAND)
    # A zero drop (a constant LR, or a logged LR rounded to a few digits, which makes a slow
    # decay a staircase of zero and positive drops) joins the band it sits in: only a fall
    # followed by a rise, or the reverse, separates bands.
    sign = np.sign(drops)
    last_nonzero = np.maximum.accumulate(np.where(sign != 0, np.arange(n), 0))
    direction = sign[last_nonzero]
    starts = np.flatnonzero((np.diff(band) != 0) | (np.diff(direction) != 0)) + 1
    # A break between two zero drops separates nothing (constant phases, the PT warmup).
    starts = starts[(drops[starts] != 0) | (drops[starts - 1] != 0)]
    extra = [0] if cpt_from is None else [0, cpt_from, cpt_from + 1]
    return np.concatenate([starts, extra])


def drop_history(
    lr: np.ndarray, drops: np.ndarray, at: np.ndarray, cpt_from: int | None
) -> DropHistory:
    """Drops before each point of one run, recent ones exactly and old ones in bins.

    ``lr[i]``/``drops[i]`` are the LR and the drop of update ``i + 1``; a point at ``t``
    has seen updates ``1..t`` (``t`` may exceed ``lr.size``: the missing updates have LR
    0). Drops of updates after ``cpt_from`` are CPT drops (None: none are).

    Binning: drops at most ``HISTORY_EXACT_AGE`` updates older than the point are kept one
    by one; older ones are merged in age bins whose width grows by ``HISTORY_AGE_RATIO``,
    split wherever the drop changes sign or ``log(LR)`` crosses a ``HISTORY_LOG_LR_BAND``
    step (so a bin never mixes a warmup with a decay, nor very different LRs). A bin keeps
    the summed drop (exact) with the drop-weighted mean log-LR and mean area. All points
    are binned together: a sort of ``points x bins`` keys, no loop over steps.
    """
    lr = np.asarray(lr, dtype=float)
    drops = np.asarray(drops, dtype=float)
    at = np.asarray(at, dtype=np.int64)
    n = lr.size
    if n == 0 or at.size == 0:
        return DropHistory.empty(at.size)
    cum = np.concatenate([[0.0], np.cumsum(lr)])
    # LRs relative to their phase's largest (PT, CPT): the bins of peak * shape are then
    # the bins of the shape, whatever the peak, which the search relies on.
    phase = np.zeros(n, dtype=int) if cpt_from is None else (np.arange(n) >= cpt_from).astype(int)
    reference = np.ones(2)
    for k in (0, 1):
        if (phase == k).any():
            reference[k] = max(float(lr[phase == k].max()), 1e-300)
    relative = np.log(np.maximum(lr / reference[phase], LR_FLOOR_SHARE))
    log_lr = relative + np.log(reference[phase])
    weighted = [np.concatenate([[0.0], np.cumsum(v)]) for v in (drops, drops * log_lr)]
    weighted.append(np.concatenate([[0.0], np.cumsum(drops * cum[:-1])]))
    band_starts = _band_starts(relative, drops, cpt_from)
    # Breakpoints per point: band starts before it, and the age-bin edges t - age + 1.
    ages = _age_bin_starts(int(at.max()))
    width = n + 2
    point_of = np.arange(at.size, dtype=np.int64)
    edge_keys = (at[:, None] - ages[None, :] + 1).clip(0, None)
    band_keys = np.broadcast_to(band_starts[None, :], (at.size, band_starts.size))
    keys = np.concatenate([edge_keys, band_keys], axis=1)
    keys = np.minimum(keys, np.minimum(at, n)[:, None])  # nothing at or after the point
    keys = np.sort((point_of[:, None] * width + keys).ravel())
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
    point = keys // width
    start = keys % width
    last = np.append(point[1:] != point[:-1], True)
    stop = np.where(last, np.minimum(at[point], n), np.append(start[1:], 0))
    sums = [w[stop] - w[start] for w in weighted]
    keep = sums[0] != 0
    point, start, stop = point[keep], start[keep], stop[keep]
    total, log_sum, area_sum = (w[keep] for w in sums)
    cpt = np.zeros(point.size, bool) if cpt_from is None else start >= cpt_from
    t_area = np.where(at[point] <= n, cum[np.minimum(at[point], n)], cum[n])
    # A single drop's LR and area directly: the differences of the long cumulative sums
    # above carry ~1e-12 of rounding, which the search's scaled histories do not share.
    single = stop - start == 1
    mean_log_lr = np.where(single, log_lr[np.minimum(start, n - 1)], log_sum / total)
    mean_area = np.where(single, cum[np.minimum(start, n)], area_sum / total)
    return DropHistory(
        point=point,
        drop=total,
        lr=np.exp(mean_log_lr),
        area=np.maximum(t_area - mean_area, 0.0),
        cpt=cpt,
        n_points=int(at.size),
    )
