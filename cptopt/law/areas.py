"""Forward and annealing areas of a pre-training + CPT schedule (cpt-law.md §1).

- Forward area ``S1 = sum_i eta_i``.
- Annealing area ``S2 = sum_i m_i`` with ``m_i = lam * m_{i-1} + (eta_{i-1} - eta_i)``.

The m-recursion is a first-order IIR filter over the LR drops, computed in closed form
over blocks of steps with numpy (no Python loop over steps; see :func:`first_order_filter`).
Conventions (DECISION in cpt-law.md): the recursion starts at the end of the PT warmup
(``eta_0`` := first post-warmup LR, ``m_0 = 0``) and is carried across the PT->CPT boundary
without reset, so a CPT re-warmup gives negative ``m`` (the stability gap).

When the PT history is unknown (the paper's Sec. 6 black-box mode), the checkpoint state is
``S1pt`` = a fitted parameter, ``S2pt`` folded into ``L0`` (0 here), ``m = 0`` and the LR
before CPT = the PT's final LR (0 by default: PT assumed annealed).

Annealing terms with a memory per LR drop (the multi-power form, :mod:`cptopt.law`) need
more than two sums: for each point, every earlier drop ``d_k = eta_{k-1} - eta_k`` with the
LR after it and the LR area trained since (``S1(t) - S1(k-1)``). :func:`drop_history`
returns them, the recent drops one by one and older ones merged in bins (see there), under
the same conventions as the m-recursion (drops count from the end of the PT warmup, the
PT->CPT boundary is one more drop, a re-warmup gives negative drops).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

#: Blocks of the closed-form filter keep lam**-k below exp(this), far from float overflow.
_MAX_EXPONENT = 600.0
#: Drop history: drops at most this many updates before a point are kept one by one ...
HISTORY_EXACT_AGE = 64
#: ... older ones are merged in age bins, each this factor wider than the one before ...
HISTORY_AGE_RATIO = 1.05
#: ... and never across a change of the drop's sign or a change of log(LR) of this much.
#: With these, the multi-power annealing sums stay within ~1e-4 of the exact sum over
#: every drop (tests/test_areas.py) while a 100k-step history costs ~300 pairs per point.
HISTORY_LOG_LR_BAND = 0.05
#: LRs below this share of their phase's largest LR count as this share (log(0) is
#: undefined; such steps train nothing, so the exact floor does not matter).
LR_FLOOR_SHARE = 1e-6


def first_order_filter(
    drive: np.ndarray, lam: float, initial: np.ndarray | float = 0.0
) -> np.ndarray:
    """``y_i = lam * y_{i-1} + drive_i`` along the last axis, with ``y_{-1} = initial``.

    Within a block of ``B`` steps, ``y_j = lam^j (lam * y_prev + sum_{k<=j} drive_k lam^-k)``:
    a cumulative sum, vectorised. Its rounding error stays at ``eps / (1 - lam)`` of the
    drive because the largest scaled term is always the latest; blocks are as long as
    ``lam^-B`` stays finite (a single block for lam >= 0.99 up to 60,000 steps). Batches
    (leading axes) are filtered together; ``initial`` broadcasts against them.
    """
    drive = np.asarray(drive, dtype=float)
    out = np.empty_like(drive)
    n = drive.shape[-1]
    if n == 0:
        return out
    if lam <= 0.0:
        out[...] = drive
        out[..., 0] = drive[..., 0] + lam * np.asarray(initial, dtype=float)
        return out
    log_lam = np.log(lam)
    block = n if log_lam == 0 else max(1, min(n, int(_MAX_EXPONENT / -log_lam)))
    previous = np.broadcast_to(np.asarray(initial, dtype=float), drive.shape[:-1]).copy()
    for start in range(0, n, block):
        stop = min(start + block, n)
        offsets = np.arange(stop - start, dtype=float)
        powers = np.exp(offsets * log_lam)  # lam^j
        scaled = np.cumsum(drive[..., start:stop] / powers, axis=-1)
        out[..., start:stop] = powers * (lam * previous[..., None] + scaled)
        previous = out[..., stop - 1]
    return out


def annealing_momentum(
    lr: np.ndarray, lam: float, lr_before: float, momentum_before: float = 0.0
) -> np.ndarray:
    """Momentum ``m_i`` of each step of ``lr`` (shape ``(n,)``), continuing a prior state.

    ``lr_before`` is the LR of the step before ``lr[0]`` and ``momentum_before`` its ``m``.
    """
    lr = np.asarray(lr, dtype=float)
    if lr.size == 0:
        return np.zeros(0)
    drops = np.empty_like(lr)
    drops[0] = lr_before - lr[0]
    drops[1:] = lr[:-1] - lr[1:]
    return first_order_filter(drops, lam, momentum_before)


@dataclass(frozen=True)
class CheckpointState:
    """Areas and filter state at the checkpoint CPT starts from.

    ``s1_pt``/``s2_pt`` are the PT areas up to the checkpoint, ``lr_last`` the PT LR of its
    last step and ``momentum`` the m-recursion state there. ``known`` is False in black-box
    mode, where ``s1_pt`` is a fitted parameter of the law and this object holds 0.
    ``pt_lr``/``pt_drops`` are the PT updates' LRs and drops up to the checkpoint (for the
    drop history; empty in black-box mode, where the PT drops are folded into ``L0``).
    """

    s1_pt: float
    s2_pt: float
    lr_last: float
    momentum: float
    known: bool = True
    pt_lr: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False, repr=False)
    pt_drops: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False, repr=False)


@dataclass(frozen=True)
class PretrainAreas:
    """Cumulative areas of a PT schedule at every PT step (index ``u - 1`` = after step ``u``)."""

    s1: np.ndarray
    s2: np.ndarray
    momentum: np.ndarray
    lr: np.ndarray
    drops: np.ndarray

    def state_at(self, step: int) -> CheckpointState:
        """Checkpoint state after PT step ``step`` (1-based; 0 = before any update)."""
        if step <= 0:
            return CheckpointState(0.0, 0.0, 0.0, 0.0)
        index = step - 1
        return CheckpointState(
            s1_pt=float(self.s1[index]),
            s2_pt=float(self.s2[index]),
            lr_last=float(self.lr[index]),
            momentum=float(self.momentum[index]),
            pt_lr=self.lr[:step],
            pt_drops=self.drops[:step],
        )

    def history_at(self, steps: np.ndarray) -> DropHistory:
        """Drop history of PT-phase points after each PT step in ``steps``."""
        return drop_history(self.lr, self.drops, np.asarray(steps, dtype=int), cpt_from=None)

    def at_steps(self, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(S1, S2)`` after each PT step in ``steps`` (step 0 -> 0, 0)."""
        steps = np.asarray(steps, dtype=int)
        padded_s1 = np.concatenate([[0.0], self.s1])
        padded_s2 = np.concatenate([[0.0], self.s2])
        return padded_s1[steps], padded_s2[steps]


def pretrain_drops(pt_lr: np.ndarray, warmup_steps: int) -> np.ndarray:
    """LR drop of each PT update (``eta_{u-1} - eta_u``), 0 up to the end of the warmup."""
    drops = np.zeros_like(pt_lr)
    if warmup_steps + 1 < pt_lr.size:
        drops[warmup_steps + 1 :] = pt_lr[warmup_steps:-1] - pt_lr[warmup_steps + 1 :]
    return drops


def pretrain_areas(pt_lr: np.ndarray, warmup_steps: int, lam: float | None) -> PretrainAreas:
    """Cumulative S1, S2 and momentum over a PT LR array (``pt_lr[u-1]`` = LR of step ``u``).

    ``lam`` None (a law without the m-recursion) leaves S2 and the momentum at 0.
    """
    pt_lr = np.asarray(pt_lr, dtype=float)
    s1 = np.cumsum(pt_lr)
    drops = pretrain_drops(pt_lr, warmup_steps)
    momentum = first_order_filter(drops, lam) if lam is not None else np.zeros_like(pt_lr)
    return PretrainAreas(s1=s1, s2=np.cumsum(momentum), momentum=momentum, lr=pt_lr, drops=drops)


def unknown_checkpoint(final_lr: float = 0.0) -> CheckpointState:
    """Black-box checkpoint state: PT areas unknown, LR before CPT = ``final_lr``."""
    return CheckpointState(s1_pt=0.0, s2_pt=0.0, lr_last=final_lr, momentum=0.0, known=False)


def cpt_areas(
    cpt_lr: np.ndarray, lam: float | None, checkpoint: CheckpointState
) -> tuple[np.ndarray, np.ndarray]:
    """``(S1cpt, S2cpt)`` after each CPT step, shape ``(n,)`` each, carrying the PT state over.

    ``lam`` None (a law without the m-recursion) gives S2cpt = 0.
    """
    if lam is None:
        return np.cumsum(cpt_lr), np.zeros(np.shape(cpt_lr))
    momentum = annealing_momentum(
        cpt_lr, lam, lr_before=checkpoint.lr_last, momentum_before=checkpoint.momentum
    )
    return np.cumsum(cpt_lr), np.cumsum(momentum)


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
    # Bands: a new one wherever the drop's sign or the quantised log-LR changes; the CPT
    # boundary and its first drop are always bands of their own.
    band = np.floor(relative / HISTORY_LOG_LR_BAND)
    sign = np.sign(drops)
    band_starts = np.flatnonzero((np.diff(band) != 0) | (np.diff(sign) != 0)) + 1
    # A break between two zero drops separates nothing (constant phases, the PT warmup).
    band_starts = band_starts[(drops[band_starts] != 0) | (drops[band_starts - 1] != 0)]
    extra = [0] if cpt_from is None else [0, cpt_from, cpt_from + 1]
    band_starts = np.concatenate([band_starts, extra])
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
    return DropHistory(
        point=point,
        drop=total,
        lr=np.exp(log_sum / total),
        area=np.maximum(t_area - area_sum / total, 0.0),
        cpt=cpt,
        n_points=int(at.size),
    )


def run_history(cpt_lr: np.ndarray, steps: np.ndarray, checkpoint: CheckpointState) -> DropHistory:
    """Drop history at CPT steps ``steps`` of a run continuing ``checkpoint``.

    The PT drops up to the checkpoint (empty in black-box mode), the boundary drop from the
    checkpoint's last LR to the first CPT LR, and the CPT drops.
    """
    cpt_lr = np.asarray(cpt_lr, dtype=float)
    cpt_drops = np.empty_like(cpt_lr)
    if cpt_lr.size:
        cpt_drops[0] = checkpoint.lr_last - cpt_lr[0]
        cpt_drops[1:] = cpt_lr[:-1] - cpt_lr[1:]
    pt = checkpoint.pt_lr.size
    return drop_history(
        np.concatenate([checkpoint.pt_lr, cpt_lr]),
        np.concatenate([checkpoint.pt_drops, cpt_drops]),
        pt + np.asarray(steps, dtype=np.int64),
        cpt_from=pt,
    )


@dataclass(frozen=True)
class Areas:
    """The law's inputs at a set of points (all arrays of shape ``(n,)``).

    ``replay`` is the replay ratio r (share of general data in each CPT batch);
    ``checkpoint_known`` is False for points whose PT areas are unknown (black-box mode).
    ``history`` holds the LR drops before each point, for laws whose annealing term needs
    them (None when the law at hand does not).
    """

    s1_pt: np.ndarray
    s2_pt: np.ndarray
    s1_cpt: np.ndarray
    s2_cpt: np.ndarray
    replay: np.ndarray
    checkpoint_known: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    history: DropHistory | None = None

    def __post_init__(self) -> None:
        if self.checkpoint_known.size == 0 and self.s1_pt.size:
            object.__setattr__(self, "checkpoint_known", np.ones(self.s1_pt.size, dtype=bool))

    def __len__(self) -> int:
        return int(self.s1_pt.size)

    @staticmethod
    def concatenate(parts: list[Areas]) -> Areas:
        """Stack several point sets into one (with their histories, if any has one)."""
        history = None
        if any(p.history is not None for p in parts):
            history = DropHistory.concatenate(
                [p.history if p.history is not None else DropHistory.empty(len(p)) for p in parts]
            )
        return Areas(
            *(np.concatenate([getattr(p, name) for p in parts]) for name in _FIELDS),
            history=history,
        )

    def take(self, index: np.ndarray) -> Areas:
        """Subset of the points."""
        history = None if self.history is None else self.history.take(index)
        return Areas(*(getattr(self, name)[index] for name in _FIELDS), history=history)


_FIELDS = ("s1_pt", "s2_pt", "s1_cpt", "s2_cpt", "replay", "checkpoint_known")


def cpt_point_areas(
    cpt_lr: np.ndarray,
    steps: np.ndarray,
    lam: float | None,
    checkpoint: CheckpointState,
    replay_ratio: float,
    *,
    history: bool = False,
) -> Areas:
    """Areas at CPT steps ``steps`` (0 = the checkpoint itself) of one CPT run.

    ``history``: also record the drop history (laws with a per-drop annealing memory).
    """
    steps = np.asarray(steps, dtype=int)
    s1_cpt, s2_cpt = cpt_areas(cpt_lr, lam, checkpoint)
    s1_cpt = np.concatenate([[0.0], s1_cpt])[steps]
    s2_cpt = np.concatenate([[0.0], s2_cpt])[steps]
    n = steps.size
    return Areas(
        s1_pt=np.full(n, checkpoint.s1_pt),
        s2_pt=np.full(n, checkpoint.s2_pt),
        s1_cpt=s1_cpt,
        s2_cpt=s2_cpt,
        replay=np.full(n, float(replay_ratio)),
        checkpoint_known=np.full(n, checkpoint.known),
        history=run_history(cpt_lr, steps, checkpoint) if history else None,
    )
