"""Forward and annealing areas of a pre-training + CPT schedule (docs/law.md).

- Forward area ``S1 = sum_i eta_i``.
- Annealing area ``S2 = sum_i m_i`` with ``m_i = lam * m_{i-1} + (eta_{i-1} - eta_i)``.

The m-recursion is a first-order IIR filter over the LR drops, computed in closed form
over blocks of steps with numpy (no Python loop over steps; see :func:`first_order_filter`).
Conventions: the recursion starts at the end of the PT warmup (``eta_0`` := first
post-warmup LR, ``m_0 = 0``) and is carried across the PT->CPT boundary without reset, so a
CPT re-warmup gives negative ``m`` (the stability gap).

When the PT history is unknown (black-box mode), the checkpoint state is ``S1pt`` = a
fitted parameter, ``S2pt`` folded into ``L0`` (0 here), ``m = 0`` and the LR before CPT =
the PT's final LR (0 by default: PT assumed annealed).

Laws with a per-drop annealing memory read each point's drop history
(:mod:`cptopt.law.drops`) under the same conventions: drops count from the end of the PT
warmup, the PT->CPT boundary is one more drop, a re-warmup gives negative drops.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from cptopt.law.drops import (
    HISTORY_NODES_MIN_PT,
    DropHistory,
    checkpoint_bins,
    drop_history,
    lr_drops,
    pt_digest,
    pt_nodes,
)
from cptopt.pilots.runs import PretrainHistory

#: Blocks of the closed-form filter keep lam**-k below exp(this), far from float overflow.
_MAX_EXPONENT = 600.0


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
    return first_order_filter(lr_drops(lr, lr_before), lam, momentum_before)


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

    @cached_property
    def pt_key(self) -> bytes:
        """The digest of the PT updates (:func:`~cptopt.law.drops.pt_digest`), the name of
        the checkpoint's nodes; kept: a 1M-step history takes ~15 ms to hash, and every run
        from the checkpoint asks (:meth:`PretrainAreas.state_at` returns one state each)."""
        return pt_digest(self.pt_lr, self.pt_drops)

    @property
    def through_nodes(self) -> bool:
        """Whether runs from here read the PT drops through shared nodes (:func:`pt_nodes`)
        and bin their CPT drops in the long history's two-pair bins: a PT history of
        ``HISTORY_NODES_MIN_PT`` updates or more, and a non-zero LR at the checkpoint."""
        return self.pt_lr.size >= HISTORY_NODES_MIN_PT and self.lr_last > 0


@dataclass(frozen=True)
class PretrainAreas:
    """Cumulative areas of a PT schedule at every PT step (index ``u - 1`` = after step ``u``)."""

    s1: np.ndarray
    s2: np.ndarray
    momentum: np.ndarray
    lr: np.ndarray
    drops: np.ndarray
    #: The states asked for (:meth:`state_at`), by step: one object per checkpoint, so
    #: that what it keeps (:attr:`CheckpointState.pt_key`) is computed once.
    _states: dict[int, CheckpointState] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def state_at(self, step: int) -> CheckpointState:
        """Checkpoint state after PT step ``step`` (1-based; 0 = before any update)."""
        if step <= 0:
            return CheckpointState(0.0, 0.0, 0.0, 0.0)
        state = self._states.get(step)
        if state is None:
            index = step - 1
            state = self._states[step] = CheckpointState(
                s1_pt=float(self.s1[index]),
                s2_pt=float(self.s2[index]),
                lr_last=float(self.lr[index]),
                momentum=float(self.momentum[index]),
                pt_lr=self.lr[:step],
                pt_drops=self.drops[:step],
            )
        return state

    def history_at(self, steps: np.ndarray) -> DropHistory:
        """Drop history of PT-phase points after each PT step in ``steps``: the coarser
        two-pair bins of a long history (``HISTORY_NODES_MIN_PT`` updates or more, as the
        CPT points' shared nodes), whose hundreds of points each carried ~230 pairs."""
        steps = np.asarray(steps, dtype=int)
        if steps.shape == (1,) and int(steps[0]) == self.lr.size:
            # One point at the last update (the PT-point policy "checkpoint"): the same call
            # as the bins runs from this checkpoint read their PT drops through, kept by
            # content (a 1M-step history takes ~0.07 s to bin).
            return checkpoint_bins(self.lr, self.drops, self.state_at(self.lr.size).pt_key)[1]
        long = self.lr.size >= HISTORY_NODES_MIN_PT
        return drop_history(self.lr, self.drops, steps, cpt_from=None, long=long)

    def at_steps(self, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(S1, S2)`` after each PT step in ``steps`` (step 0 -> 0, 0)."""
        steps = np.asarray(steps, dtype=int)
        padded_s1 = np.concatenate([[0.0], self.s1])
        padded_s2 = np.concatenate([[0.0], self.s2])
        return padded_s1[steps], padded_s2[steps]

    def points(self, steps: np.ndarray, history: bool = False) -> Areas:
        """The law's inputs at PT ``steps``: PT areas, no CPT phase, all general data.

        What PT-phase points and the points of a pre-training run are fitted and predicted
        at; ``history``: also record the drop history (a per-drop annealing memory).
        """
        steps = np.asarray(steps, dtype=int)
        s1, s2 = self.at_steps(steps)
        zeros = np.zeros(steps.size)
        drops = self.history_at(steps) if history else None
        return Areas(s1, s2, zeros, zeros, np.ones(steps.size), history=drops)


def pretrain_drops(pt_lr: np.ndarray, warmup_steps: int) -> np.ndarray:
    """LR drop of each PT update (``eta_{u-1} - eta_u``), 0 up to the end of the warmup."""
    drops = lr_drops(pt_lr)
    drops[: warmup_steps + 1] = 0.0
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


def history_areas(history: PretrainHistory, lam: float | None) -> PretrainAreas:
    """:func:`pretrain_areas` of a known PT history."""
    if history.lr is None:
        raise ValueError("the pre-training history is unknown: no PT areas to compute")
    return pretrain_areas(history.lr, history.warmup_steps, lam)


def checkpoint_state(history: PretrainHistory, name: str, lam: float | None) -> CheckpointState:
    """Area state at checkpoint ``name`` of ``history`` (black-box: the unknown state)."""
    if history.lr is None:
        return unknown_checkpoint(history.final_lr)
    return history_areas(history, lam).state_at(history.checkpoint_step(name))


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


def run_history(cpt_lr: np.ndarray, steps: np.ndarray, checkpoint: CheckpointState) -> DropHistory:
    """Drop history at CPT steps ``steps`` of a run continuing ``checkpoint``.

    The PT drops up to the checkpoint (empty in black-box mode), the boundary drop from the
    checkpoint's last LR to the first CPT LR, and the CPT drops.
    """
    cpt_lr = np.asarray(cpt_lr, dtype=float)
    cpt_drops = lr_drops(cpt_lr, checkpoint.lr_last)
    pt = checkpoint.pt_lr.size
    if checkpoint.through_nodes:
        # A long PT history: each point's PT sum is interpolated from nodes shared by every
        # run from this checkpoint (pt_nodes), the CPT drops stay the point's own pairs, in
        # the long history's two-pair bins.
        steps = np.asarray(steps, dtype=np.int64)
        cpt = drop_history(cpt_lr, cpt_drops, steps, cpt_from=0, long=True)
        area = np.concatenate([[0.0], np.cumsum(cpt_lr)])[np.minimum(steps, cpt_lr.size)]
        nodes = pt_nodes(
            checkpoint.pt_lr, checkpoint.pt_drops, checkpoint.lr_last, area, checkpoint.pt_key
        )
        return DropHistory.merge([cpt, nodes])
    return drop_history(
        np.concatenate([checkpoint.pt_lr, cpt_lr]),
        np.concatenate([checkpoint.pt_drops, cpt_drops]),
        pt + np.asarray(steps, dtype=np.int64),
        cpt_from=pt,
    )


@dataclass(frozen=True)
class Areas:
    """The law's inputs at a set of points (all arrays of shape ``(n,)``).

    ``replay_ratio`` is r, the share of general data in each CPT batch;
    ``checkpoint_known`` is False for points whose PT areas are unknown (black-box mode).
    ``s1_shift`` is S1cpt with the steps that repeat domain data discounted
    (:func:`repetition_weights`): the area that drives the domain law's shift. It defaults
    to S1cpt (nothing repeated, or the domain corpus size unknown).
    ``history`` holds the LR drops before each point, for laws whose annealing term needs
    them (None when the law at hand does not); ``steps`` the per-step LRs behind each
    point, for laws whose shift is driven by a power of the LR (None when not needed).
    """

    s1_pt: np.ndarray
    s2_pt: np.ndarray
    s1_cpt: np.ndarray
    s2_cpt: np.ndarray
    replay_ratio: np.ndarray
    checkpoint_known: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    s1_shift: np.ndarray = field(default_factory=lambda: np.zeros(0))
    history: DropHistory | None = None
    steps: StepLRs | None = None

    def __post_init__(self) -> None:
        if self.checkpoint_known.size == 0 and self.s1_pt.size:
            object.__setattr__(self, "checkpoint_known", np.ones(self.s1_pt.size, dtype=bool))
        if self.s1_shift.size == 0 and self.s1_cpt.size:
            object.__setattr__(self, "s1_shift", np.asarray(self.s1_cpt, dtype=float))

    def __len__(self) -> int:
        return int(self.s1_pt.size)

    @staticmethod
    def concatenate(parts: list[Areas], share_steps: bool = False) -> Areas:
        """Stack several point sets into one (with their histories, if any has one);
        ``share_steps``: see :meth:`StepLRs.concatenate`."""
        history = None
        if any(p.history is not None for p in parts):
            history = DropHistory.concatenate(
                [p.history if p.history is not None else DropHistory.empty(len(p)) for p in parts]
            )
        steps = None
        if any(p.steps is not None for p in parts):
            steps = StepLRs.concatenate(
                [p.steps if p.steps is not None else StepLRs.empty(len(p)) for p in parts],
                share=share_steps,
            )
        return Areas(
            *(np.concatenate([getattr(p, name) for p in parts]) for name in _FIELDS),
            history=history,
            steps=steps,
        )

    def take(self, index: np.ndarray) -> Areas:
        """Subset of the points."""
        history = None if self.history is None else self.history.take(index)
        steps = None if self.steps is None else self.steps.take(index)
        return Areas(
            *(getattr(self, name)[index] for name in _FIELDS), history=history, steps=steps
        )


_FIELDS = ("s1_pt", "s2_pt", "s1_cpt", "s2_cpt", "replay_ratio", "checkpoint_known", "s1_shift")


def _steps_key(*arrays: np.ndarray) -> bytes:
    """A digest of a step set's arrays (their bits), to tell identical ones apart."""
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=float).data)
        digest.update(b"|")
    return digest.digest()


#: Data-constrained scaling (Muennighoff et al., arXiv 2305.16264, Eq. 5): a token seen for
#: the (1 + R)-th time is worth ``exp(-R / R*)`` of a fresh one, ``R* = 15.4`` their fit.
#: Pilots of a CPT study rarely repeat the domain data, so ``R*`` cannot be fitted: it is
#: this literature prior (docs/law.md).
REPETITION_RSTAR = 15.4


def repetition_weights(
    n_steps: int,
    replay_ratio: float,
    tokens_per_step: float | None,
    domain_tokens: float | None,
    rstar: float = REPETITION_RSTAR,
) -> np.ndarray | None:
    """Worth of each CPT step's domain tokens, shape ``(n_steps,)``; None when all are fresh.

    After step ``i`` (1-based) ``D_i = i (1 - r) tokens_per_step`` domain tokens have been
    consumed; with ``U = domain_tokens`` unique ones, step ``i`` repeats them for the
    ``R = D_i / U - 1``-th extra time and is worth ``exp(-max(R, 0) / R*)``: the derivative
    of Muennighoff et al.'s effective data ``U + U R* (1 - exp(-R / R*))``. None also when
    either size is unknown.
    """
    if not tokens_per_step or not domain_tokens or replay_ratio >= 1.0:
        return None
    consumed = np.arange(1, n_steps + 1) * (1.0 - replay_ratio) * float(tokens_per_step)
    repeats = np.maximum(consumed / float(domain_tokens) - 1.0, 0.0)
    if not repeats.any():
        return None
    return np.exp(-repeats / rstar)


@dataclass(frozen=True)
class StepLRs:
    """The per-step LRs behind each point, for a shift driven by ``sum_i eta_i^q``.

    ``lr`` and ``weight`` (shape ``(m,)``): LRs divided by ``reference`` and the worth of
    each step's domain data (:func:`repetition_weights`; 1 when fresh), the steps of every
    run (or searched shape) one after the other. Point ``j``'s steps are
    ``lr[start[j]:stop[j]]``, each scaled by ``scale[j]`` (1 for a run's own steps; the peak
    LR over ``reference`` for the search's unit shapes, whose LRs scale with the peak).
    ``count`` (None: 1 each): how many steps an entry stands for (:meth:`compact`), whose
    ``weight`` is then their summed worth.
    """

    lr: np.ndarray
    weight: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    scale: np.ndarray
    reference: float
    count: np.ndarray | None = None

    @staticmethod
    def empty(n_points: int, reference: float = 1.0) -> StepLRs:
        zeros = np.zeros(n_points, dtype=np.int64)
        return StepLRs(np.zeros(0), np.zeros(0), zeros, zeros, np.ones(n_points), reference)

    @staticmethod
    def of_run(
        lr: np.ndarray, steps: np.ndarray, weight: np.ndarray | None, reference: float
    ) -> StepLRs:
        """The points after CPT steps ``steps`` of one run with per-step LRs ``lr``."""
        lr = np.asarray(lr, dtype=float)
        stop = np.asarray(steps, dtype=np.int64)
        return StepLRs(
            lr / reference,
            np.ones(lr.size) if weight is None else np.asarray(weight, dtype=float),
            np.zeros(stop.size, dtype=np.int64),
            stop,
            np.ones(stop.size),
            float(reference),
        )

    def take(self, index: np.ndarray) -> StepLRs:
        return replace(
            self, start=self.start[index], stop=self.stop[index], scale=self.scale[index]
        )

    @staticmethod
    def concatenate(parts: list[StepLRs], share: bool = False) -> StepLRs:
        """Step sets of consecutive point sets, as one (indices offset). ``share``: a part
        whose steps (LRs, worth, counts) are those of an earlier part, bit for bit, points
        into that part's entries instead of adding its own (candidate pilots that differ
        only in replay ratio run the same steps): fewer entries for every power sum, whose
        running sums then round differently in the last bits."""
        reference = next((p.reference for p in parts if p.lr.size), parts[0].reference)
        lrs = [p.lr * (p.reference / reference) for p in parts]
        counts = [np.ones(p.lr.size) if p.count is None else p.count for p in parts]
        offsets, kept, first = [], [], {}
        size = 0
        for i, part in enumerate(parts):
            key = _steps_key(lrs[i], part.weight, counts[i]) if share else i
            if key in first:
                offsets.append(first[key])
                continue
            first[key] = size
            offsets.append(size)
            kept.append(i)
            size += part.lr.size
        any_count = any(p.count is not None for p in parts)
        return StepLRs(
            np.concatenate([lrs[i] for i in kept]),
            np.concatenate([parts[i].weight for i in kept]),
            np.concatenate([p.start + o for p, o in zip(parts, offsets, strict=True)]),
            np.concatenate([p.stop + o for p, o in zip(parts, offsets, strict=True)]),
            np.concatenate([p.scale * (p.reference / reference) for p in parts]),
            reference,
            np.concatenate([counts[i] for i in kept]) if any_count else None,
        )

    def compact(self) -> StepLRs:
        """The same sums from fewer entries: the steps between two consecutive point
        boundaries (starts and stops) that share an LR become one entry, with their count
        and summed worth. Exact; a constant phase of a thousand steps becomes one entry."""
        if self.lr.size == 0:
            return self
        bounds = np.unique(np.concatenate([self.start, self.stop, [0, self.lr.size]]))
        segment = np.searchsorted(bounds, np.arange(self.lr.size), side="right")
        # The distinct (segment, LR) pairs in (segment, LR) order, as np.unique(axis=1)
        # gives them, from one lexsort: np.unique over columns took ~10x longer.
        order = np.lexsort((self.lr, segment))
        sorted_segment, sorted_lr = segment[order], self.lr[order]
        first = np.empty(order.size, dtype=bool)
        first[0] = True
        first[1:] = (sorted_segment[1:] != sorted_segment[:-1]) | (sorted_lr[1:] != sorted_lr[:-1])
        inverse = np.empty(order.size, dtype=np.int64)
        inverse[order] = np.cumsum(first) - 1
        unique = np.stack([sorted_segment[first].astype(float), sorted_lr[first]])
        count = np.ones(self.lr.size) if self.count is None else self.count
        counts = np.bincount(inverse, weights=count, minlength=unique.shape[1])
        weights = np.bincount(inverse, weights=self.weight, minlength=unique.shape[1])
        # entries are sorted by segment: a boundary's new index is the entries before it
        new_index = np.searchsorted(unique[0], np.searchsorted(bounds, bounds, side="right"))
        return StepLRs(
            unique[1],
            weights,
            new_index[np.searchsorted(bounds, self.start)],
            new_index[np.searchsorted(bounds, self.stop)],
            self.scale,
            self.reference,
            counts,
        )

    @cached_property
    def _log_lr(self) -> np.ndarray:
        """``log u`` of every entry (0 where the LR is 0: such steps are masked out)."""
        return np.log(np.where(self.lr > 0, self.lr, 1.0))

    def _multiplier(self, weighted: bool) -> np.ndarray:
        """What each entry's ``u^q`` is multiplied by: its worth (``weighted``) or its count,
        0 at LR 0 (``u^q`` would be 1 there). Kept per instance: the fit asks thousands of
        times with the same steps."""
        cache = self.__dict__.setdefault("_multipliers", {})
        if weighted not in cache:
            if weighted:
                multiplier = self.weight
            elif self.count is not None:
                multiplier = self.count
            else:
                multiplier = np.ones(self.lr.size)
            cache[weighted] = np.where(self.lr > 0, multiplier, 0.0)
        return cache[weighted]

    def power_sums(self, q: np.ndarray, weighted: bool) -> tuple[np.ndarray, np.ndarray]:
        """``X = reference * sum_i (scale u_i)^q w_i`` per point and ``dX/dq``.

        ``q`` broadcasts as ``(..., 1)``; the result has shape ``(..., n_points)``. At
        ``q = 1`` ``X`` is the (repetition-weighted, if ``weighted``) CPT LR area. Steps at
        LR 0 add nothing. One cumulative sum over the steps, no loop.
        """
        q = np.asarray(q, dtype=float)
        # The last single q's sums are kept: the optimiser asks for the loss and then for
        # its Jacobian at the same parameters, and the sums run over every step.
        key = (float(q.item()), weighted) if q.size == 1 and q.ndim <= 1 else None
        last = self.__dict__.get("_last_power_sums")
        if key is not None and last is not None and last[0] == key:
            return last[1]
        log_u = self._log_lr
        terms = np.exp(q * log_u) * self._multiplier(weighted)
        # Both running sums in one buffer that starts with 0, so a point's sum is a difference.
        sums = np.empty((2, *terms.shape[:-1], log_u.size + 1))
        sums[..., 0] = 0.0
        np.cumsum(terms, axis=-1, out=sums[0, ..., 1:])
        np.cumsum(terms * log_u, axis=-1, out=sums[1, ..., 1:])
        total = sums[..., self.stop] - sums[..., self.start]
        log_scale = np.log(self.scale)
        factor = self.reference * np.exp(q * log_scale)
        value = factor * total[0]
        result = (value, factor * total[1] + value * log_scale)
        if key is not None:
            for array in result:
                array.flags.writeable = False  # shared with the next caller at this q
            self.__dict__["_last_power_sums"] = (key, result)
        return result

    def __getstate__(self) -> dict:
        """Pickled without the kept sums and caches (see :meth:`power_sums`)."""
        kept = ("_last_power_sums", "_multipliers", "_log_lr")
        return {k: v for k, v in self.__dict__.items() if k not in kept}


def cpt_point_areas(
    cpt_lr: np.ndarray,
    steps: np.ndarray,
    lam: float | None,
    checkpoint: CheckpointState,
    replay_ratio: float,
    *,
    history: bool = False,
    tokens_per_step: float | None = None,
    domain_tokens: float | None = None,
    lr_reference: float | None = None,
) -> Areas:
    """Areas at CPT steps ``steps`` (0 = the checkpoint itself) of one CPT run.

    ``history``: also record the drop history (laws with a per-drop annealing memory).
    ``tokens_per_step`` and ``domain_tokens`` (unique tokens of the domain corpus): when
    both are given, steps that repeat domain data count less in ``s1_shift``
    (:func:`repetition_weights`). ``lr_reference``: also record the per-step LRs (divided by
    it) for laws whose shift is driven by a power of the LR (:class:`StepLRs`).
    """
    steps = np.asarray(steps, dtype=int)
    cpt_lr = np.asarray(cpt_lr, dtype=float)
    s1_cpt, s2_cpt = cpt_areas(cpt_lr, lam, checkpoint)
    s1_cpt = np.concatenate([[0.0], s1_cpt])[steps]
    s2_cpt = np.concatenate([[0.0], s2_cpt])[steps]
    weights = repetition_weights(cpt_lr.size, replay_ratio, tokens_per_step, domain_tokens)
    s1_shift = s1_cpt
    if weights is not None:
        s1_shift = np.concatenate([[0.0], np.cumsum(cpt_lr * weights)])[steps]
    n = steps.size
    return Areas(
        s1_pt=np.full(n, checkpoint.s1_pt),
        s2_pt=np.full(n, checkpoint.s2_pt),
        s1_cpt=s1_cpt,
        s2_cpt=s2_cpt,
        replay_ratio=np.full(n, float(replay_ratio)),
        checkpoint_known=np.full(n, checkpoint.known),
        s1_shift=s1_shift,
        history=run_history(cpt_lr, steps, checkpoint) if history else None,
        steps=None
        if lr_reference is None
        else StepLRs.of_run(cpt_lr, steps, weights, lr_reference),
    )
