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

import hashlib
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
#: A run continuing a PT history of at least this many updates sees the PT drops through
#: shared nodes (:func:`pt_nodes`), its CPT points holding no PT pairs of their own; below
#: it (the bundled histories have 4,000 updates) each point keeps its own PT bins.
HISTORY_NODES_MIN_PT = 50_000
#: The points' own drops in a scenario with a PT history that long (``drop_history(long=
#: True)``): its PT-phase points' and the CPT drops of the runs continuing it (the nodes
#: keep the one-pair bins, see docs/law.md): (exact age, age ratio, log-LR band) of their
#: bins, each bin two pairs (:func:`_two_pairs`). ~66 pairs per PT point of a 1M-update
#: cosine, not ~240, and a 20,000-step cosine's CPT points half as many pairs, each closer
#: to the exact sums than the one-pair bins (tests/law/test_areas.py).
HISTORY_LONG_BINS = (8, 1.5, 0.1)
_HISTORY_BINS = (HISTORY_EXACT_AGE, HISTORY_AGE_RATIO, HISTORY_LOG_LR_BAND)
#: Node panels: their width in ``u = log(S1cpt / lr_ckpt + 1)`` ...
HISTORY_NODE_PANEL = 3.0
#: ... and their Chebyshev (Lobatto) nodes each: the interpolated PT sums stay within ~1e-9
#: of the sums over the nodes' own bins (tests/law/test_areas.py).
HISTORY_NODE_COUNT = 12
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

    *Nodes* (:func:`pt_nodes`; none unless a run continues a long PT history): shared
    virtual points ``n_points + j`` whose pairs are PT pairs; a point's PT sum then adds
    ``node_weights[point] @`` the nodes' sums. ``node_keys`` names each node, so that runs
    continuing the same checkpoint keep one copy of a node when pooled.
    """

    point: np.ndarray
    drop: np.ndarray
    lr: np.ndarray
    area: np.ndarray
    cpt: np.ndarray
    n_points: int
    index: np.ndarray | None = None
    node_weights: np.ndarray | None = None
    node_keys: tuple = ()

    @property
    def n_nodes(self) -> int:
        return len(self.node_keys)

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
            self.node_weights,
            self.node_keys,
        )

    @cached_property
    def _groups(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Runs of equal (phase, point) in :attr:`by_phase` order: their starts, the points
        of the PT runs and of the CPT runs, and how many PT runs come first (the order puts
        every PT run before the CPT ones, so each phase's sums are one slice)."""
        ordered = self.by_phase
        key = ordered.cpt.astype(np.int64) * (self.n_points + self.n_nodes + 1) + ordered.point
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else key
        group_point, group_cpt = ordered.point[starts], ordered.cpt[starts]
        n_pt = int((~group_cpt).sum())
        return starts, group_point[:n_pt], group_point[n_pt:], n_pt

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
        starts, pt_points, cpt_points, n_pt = self._groups
        total = self.n_points + self.n_nodes
        pt, cpt = np.zeros((*lead, total)), np.zeros((*lead, total))
        if starts.size:
            reduced = np.add.reduceat(values, starts, axis=-1)
            pt[..., pt_points] = reduced[..., :n_pt]
            cpt[..., cpt_points] = reduced[..., n_pt:]
        if self.n_nodes and self.index is not None:
            # The nodes' part per area point: the same product (shape and values) as the
            # history without shared points has, so the same sums to the last bit.
            nodes = pt[..., self.n_points :]
            pt, cpt = pt[..., self.index], cpt[..., self.index]
            return pt + nodes @ self._area_node_weights.T, cpt
        if self.n_nodes:
            nodes = pt[..., self.n_points :]
            pt = pt[..., : self.n_points] + nodes @ self.node_weights.T
            cpt = cpt[..., : self.n_points]
        if self.index is not None:
            pt, cpt = pt[..., self.index], cpt[..., self.index]
        return pt, cpt

    @cached_property
    def _area_node_weights(self) -> np.ndarray:
        """The node weights of every area point (``index`` applied)."""
        assert self.node_weights is not None and self.index is not None
        return self.node_weights[self.index]

    def shared(self) -> DropHistory:
        """The same sums with points whose pairs are identical held once (``index``): pilots
        that share a schedule (a replay sweep) have the same drops before every point, and
        each pair costs the same at every evaluation. The pairs keep their order, so every
        point's sum is the same to the last bit. Itself when no two points are alike (or
        ``index`` is set already)."""
        if self.index is not None or self.n_points < 2:
            return self
        if self.by_phase is not self:  # the pairs in the order they are summed in first
            return self.by_phase.shared()
        twin = self._twins()
        kept = twin == np.arange(self.n_points)
        return self if kept.all() else self._with_points(kept, twin)

    def _with_points(self, kept: np.ndarray, area_points: np.ndarray) -> DropHistory:
        """The pairs of the points ``kept`` (a mask), renumbered in their order, and the
        nodes; ``area_points`` (old numbers) become its ``index``."""
        number = np.cumsum(kept) - 1  # a kept point's new number (order kept)
        renumbered = np.where(kept, number, -1)
        return self._renumbered(renumbered, int(kept.sum()), kept, index=number[area_points])

    def _renumbered(
        self,
        new_number: np.ndarray,
        n_points: int,
        weight_rows: np.ndarray,
        index: np.ndarray | None = None,
    ) -> DropHistory:
        """The pairs of the points with a ``new_number`` (-1: dropped), in their order, and
        the nodes after them; ``weight_rows`` picks the node weights of the new points."""
        remap = np.concatenate([new_number, n_points + np.arange(self.n_nodes)])
        keep = remap[self.point] >= 0
        weights = self.node_weights
        return DropHistory(
            remap[self.point[keep]],
            self.drop[keep],
            self.lr[keep],
            self.area[keep],
            self.cpt[keep],
            n_points,
            index=index,
            node_weights=None if weights is None else weights[weight_rows],
            node_keys=self.node_keys,
        )

    def _twins(self) -> np.ndarray:
        """Each point's first point with the same pairs (bit for bit, in order) and the same
        node weights; itself if none. Candidates share the pair counts, the first and the
        last pair of each phase and the node weights; each is then compared pair by pair.
        On a history in :attr:`by_phase` order (a point's pairs: one slice per phase)."""
        n = self.n_points
        starts, pt_points, cpt_points, n_pt = self._groups
        stops = np.append(starts[1:], self.point.size)
        # per point, the [start, stop) of its PT and of its CPT pairs (0, 0: none)
        span = np.zeros((n, 4), dtype=np.int64)
        for phase, points, low, high in (
            (0, pt_points, starts[:n_pt], stops[:n_pt]),
            (1, cpt_points, starts[n_pt:], stops[n_pt:]),
        ):
            real = points < n
            span[points[real], 2 * phase] = low[real]
            span[points[real], 2 * phase + 1] = high[real]
        columns = np.column_stack([self.drop, self.lr, self.area])
        filled = span[:, 1::2] > span[:, ::2]
        ends = np.zeros((n, 4, 3))
        for k in range(4):  # the first and the last pair of each phase
            phase = k // 2
            rows = span[filled[:, phase], k] - (k % 2)
            ends[filled[:, phase], k] = columns[rows]
        parts = [(span[:, 1::2] - span[:, ::2]).astype(float), ends.reshape(n, -1)]
        if self.node_weights is not None:
            parts.append(self.node_weights)
        keys = np.ascontiguousarray(np.hstack(parts)).view(np.uint64)  # alike: the same bits
        _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        twin = first[np.ravel(inverse)]
        for j in np.flatnonzero(twin != np.arange(n)).tolist():  # the candidates only
            t = twin[j]
            for low, high in ((0, 1), (2, 3)):
                a = columns[span[j, low] : span[j, high]]
                b = columns[span[t, low] : span[t, high]]
                if a.tobytes() != b.tobytes():
                    twin[j] = j
        return twin

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
        # The nodes' pairs follow, renumbered after the new points.
        nodes = np.flatnonzero(self.point >= self.n_points)
        rows = np.concatenate([rows, nodes])
        point = np.concatenate([point, self.point[nodes] - self.n_points + index.size])
        return DropHistory(
            point,
            self.drop[rows],
            self.lr[rows],
            self.area[rows],
            self.cpt[rows],
            index.size,
            node_weights=None if self.node_weights is None else self.node_weights[index],
            node_keys=self.node_keys,
        )

    def take(self, index: np.ndarray) -> DropHistory:
        """History of a subset of the points (``index``: boolean mask or positions)."""
        if self.index is not None:
            return self._take_shared(index)
        resolved = self.resolved()
        positions = np.arange(resolved.n_points)[index]
        new_number = np.full(resolved.n_points, -1)
        new_number[positions] = np.arange(positions.size)
        return resolved._renumbered(new_number, positions.size, positions)

    def _take_shared(self, index: np.ndarray) -> DropHistory:
        """:meth:`take` of a history with ``index`` (:meth:`shared`): the history points the
        subset uses, in their order, and the nodes (no copy of a pair per area point)."""
        assert self.index is not None
        sub = np.asarray(self.index)[index]
        used = np.zeros(self.n_points, dtype=bool)
        used[sub] = True
        return self._with_points(used, sub)

    @staticmethod
    def merge(parts: list[DropHistory]) -> DropHistory:
        """The pairs of several histories of the same points, together."""
        resolved = [part.resolved() for part in parts]
        return DropHistory._joined(resolved, [0] * len(resolved), resolved[0].n_points)

    @staticmethod
    def concatenate(parts: list[DropHistory]) -> DropHistory:
        """Histories of consecutive point sets, as one (point numbers offset)."""
        resolved = [part.resolved() for part in parts]
        offsets = np.cumsum([0] + [part.n_points for part in resolved])
        return DropHistory._joined(resolved, offsets[:-1].tolist(), int(offsets[-1]))

    @staticmethod
    def _joined(parts: list[DropHistory], offsets: list[int], n_points: int) -> DropHistory:
        """The pairs of ``parts`` (resolved), part k's points moved by ``offsets[k]``, in
        their order; their nodes as one set, a node that several parts hold (same key: the
        same pairs) once."""
        columns: dict = {}
        for part in parts:
            for key in part.node_keys:
                columns.setdefault(key, len(columns))
        weights = np.zeros((n_points, len(columns))) if columns else None
        seen: set = set()
        pieces: list[tuple[np.ndarray, np.ndarray]] = []  # (rows, new point numbers)
        for part, offset in zip(parts, offsets, strict=True):
            real = part.point < part.n_points
            if not part.n_nodes:
                pieces.append((np.flatnonzero(real), part.point + offset))
                continue
            column = np.array([columns[key] for key in part.node_keys])
            weights[offset : offset + part.n_points, column] += part.node_weights  # type: ignore[index]
            node = np.where(real, 0, part.point - part.n_points)
            # A node's pairs come from the first part that holds it.
            first = np.array([key not in seen for key in part.node_keys])
            seen.update(part.node_keys)
            keep = real | first[node]
            point = np.where(real, part.point + offset, n_points + column[node])
            pieces.append((np.flatnonzero(keep), point[keep]))
        rows = [r for r, _ in pieces]
        return DropHistory(
            np.concatenate([p for _, p in pieces]),
            np.concatenate([part.drop[r] for part, r in zip(parts, rows, strict=True)]),
            np.concatenate([part.lr[r] for part, r in zip(parts, rows, strict=True)]),
            np.concatenate([part.area[r] for part, r in zip(parts, rows, strict=True)]),
            np.concatenate([part.cpt[r] for part, r in zip(parts, rows, strict=True)]),
            n_points,
            node_weights=weights,
            node_keys=tuple(columns),
        )


def _age_bin_starts(
    max_age: int, exact: int = HISTORY_EXACT_AGE, ratio: float = HISTORY_AGE_RATIO
) -> np.ndarray:
    """Youngest age of each bin: 1..``exact`` one by one, then geometric by ``ratio``."""
    starts = list(range(1, exact + 1))
    age = exact + 1
    while age <= max_age:
        starts.append(age)
        age = max(age + 1, int(age * ratio) + 1)
    return np.array(starts, dtype=np.int64)


def _band_starts(relative: np.ndarray, drops: np.ndarray, cpt_from: int | None) -> np.ndarray:
    """First updates of the bands no bin may cross: wherever the drops turn from falls to
    rises (or back) or the floor of ``relative`` (log-LR to the phase's peak, in band widths)
    changes; the CPT boundary and its first drop are always bands of their own."""
    n = drops.size
    band = np.floor(relative)
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


def _updates(lr: np.ndarray, drops: np.ndarray, cpt_from: int | None, band: float) -> tuple:
    """What :func:`drop_history` needs of every update, whatever the points: the LR area
    before it (``cum``), its log-LR, the cumulative sums of the drops, of the drops times
    their log-LR and times their area, and the starts of the bands ``band`` wide. (Keeping
    these by content for a long PT history, which is binned three times, saved ~0.1 s of a
    1M-step fit but held ~40 MB through it.)"""
    n = lr.size
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
    return cum, log_lr, weighted, _band_starts(relative / band, drops, cpt_from)


def drop_history(
    lr: np.ndarray, drops: np.ndarray, at: np.ndarray, cpt_from: int | None, long: bool = False
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
    are binned together: a sort of ``points x bins`` keys, no loop over steps. ``long``:
    the bins of ``HISTORY_LONG_BINS``, each as two pairs (:func:`_two_pairs`).
    """
    lr = np.asarray(lr, dtype=float)
    drops = np.asarray(drops, dtype=float)
    at = np.asarray(at, dtype=np.int64)
    n = lr.size
    if n == 0 or at.size == 0:
        return DropHistory.empty(at.size)
    exact, ratio, band = HISTORY_LONG_BINS if long else _HISTORY_BINS
    cum, log_lr, weighted, band_starts = _updates(lr, drops, cpt_from, band)
    if long:  # the drops' area squared, for the spread of a bin's areas
        weighted.append(np.concatenate([[0.0], np.cumsum(drops * cum[:-1] ** 2)]))
    # Breakpoints per point: band starts before it, and the age-bin edges t - age + 1.
    ages = _age_bin_starts(int(at.max()), exact, ratio)
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
    total, log_sum, area_sum = (w[keep] for w in sums[:3])
    cpt = np.zeros(point.size, bool) if cpt_from is None else start >= cpt_from
    t_area = np.where(at[point] <= n, cum[np.minimum(at[point], n)], cum[n])
    # A single drop's LR and area directly: the differences of the long cumulative sums
    # above carry ~1e-12 of rounding, which the search's scaled histories do not share.
    single = stop - start == 1
    mean_log_lr = np.where(single, log_lr[np.minimum(start, n - 1)], log_sum / total)
    mean_area = np.where(single, cum[np.minimum(start, n)], area_sum / total)
    history = DropHistory(
        point=point,
        drop=total,
        lr=np.exp(mean_log_lr),
        area=np.maximum(t_area - mean_area, 0.0),
        cpt=cpt,
        n_points=int(at.size),
    )
    if not long:
        return history
    variance = np.where(single, 0.0, sums[3][keep] / total - mean_area**2)
    # The spread only where the cumulative sums' rounding (~1e-16 of their size) is far
    # below it: a young bin's spread is lost in it (and matters little).
    noise = 1e-10 * (np.abs(weighted[3][stop]) + np.abs(weighted[3][start])) / np.abs(total)
    return _two_pairs(history, np.sqrt(np.where(variance > noise, variance, 0.0)))


def _two_pairs(history: DropHistory, spread: np.ndarray) -> DropHistory:
    """Each bin with a ``spread`` (the drop-weighted standard deviation of its areas; 0:
    unknown) as two pairs, half its drop each, at its mean area -/+ the spread: they match
    the drops' spread as well as their total and mean (a bin's drops share a sign), so a
    bin's error is third order in its width, not second as with one pair."""
    count = np.where(spread > 0, 2, 1)
    rows = np.repeat(np.arange(count.size), count)
    second = np.r_[False, rows[1:] == rows[:-1]]
    offset = np.where(count[rows] == 1, 0.0, np.where(second, 1.0, -1.0)) * spread[rows]
    return DropHistory(
        point=history.point[rows],
        drop=history.drop[rows] / count[rows],
        lr=history.lr[rows],
        area=np.maximum(history.area[rows] + offset, 0.0),
        cpt=history.cpt[rows],
        n_points=history.n_points,
    )


def pt_nodes(
    pt_lr: np.ndarray,
    pt_drops: np.ndarray,
    lr_last: float,
    cpt_area: np.ndarray,
    key: bytes | None = None,
) -> DropHistory:
    """The PT drops of CPT points with CPT LR areas ``cpt_area`` (``(n,)``, one run or
    several continuing the same checkpoint), through shared nodes (see :class:`DropHistory`).

    A PT drop's area at a CPT point is its area up to the checkpoint plus the point's CPT
    area ``c``, so a point's PT sum is one function ``F(c)`` of that area, whatever the CPT
    schedule. Its terms ``d g(zeta, k (a + c))`` are analytic in ``u = log(c / lr_ckpt + 1)``
    in the strip ``|Im u| < pi``: ``g``'s one singularity, ``k (a + c) = -1``, lies at
    ``Im u = pi`` because every PT area ``a`` is at least ``lr_ckpt`` (``lr_last > 0``). So
    ``F`` is interpolated in ``u``, Chebyshev on panels of width ``HISTORY_NODE_PANEL`` with
    ``HISTORY_NODE_COUNT`` nodes each, which converges geometrically (~1e-9 relative); the
    weights are the same for every parameter vector, so the Jacobian is the interpolated
    one. A node's pairs are the PT drops binned as seen from the checkpoint, a finer binning
    than a CPT point's own (a bin's age span is the same, the ages are smaller). Nodes are
    placed on a grid fixed by the checkpoint, so runs from one checkpoint share them.
    ``key``: :func:`pt_digest` of the PT updates, when the caller knows it.
    """
    cpt_area = np.asarray(cpt_area, dtype=float)
    n = cpt_area.size
    checkpoint, base = checkpoint_bins(pt_lr, pt_drops, key)
    u = np.log1p(cpt_area / lr_last)
    panel = np.floor(u / HISTORY_NODE_PANEL).astype(np.int64)
    used = np.unique(panel)
    count = HISTORY_NODE_COUNT
    i = np.arange(count)
    t = np.cos(np.pi * i / (count - 1))  # 1 .. -1
    barycentric = (-1.0) ** i
    barycentric[[0, -1]] *= 0.5
    node_u = (used[:, None] + (1.0 + t[None, :]) / 2.0) * HISTORY_NODE_PANEL
    weights = np.zeros((n, used.size * count))
    for column, k in enumerate(used):  # a loop over panels (a few), not over steps
        rows = np.flatnonzero(panel == k)
        distance = u[rows, None] - node_u[column][None, :]
        hit = distance == 0
        w = barycentric / np.where(hit, 1.0, distance)
        w /= w.sum(axis=1, keepdims=True)
        on_node = hit.any(axis=1)
        w[on_node] = hit[on_node]
        weights[rows, column * count : (column + 1) * count] = w
    node_area = lr_last * np.expm1(node_u.ravel())
    m, n_nodes = base.drop.size, node_area.size
    return DropHistory(
        point=n + np.repeat(np.arange(n_nodes), m),
        drop=np.tile(base.drop, n_nodes),
        lr=np.tile(base.lr, n_nodes),
        area=(base.area[None, :] + node_area[:, None]).ravel(),
        cpt=np.zeros(m * n_nodes, bool),
        n_points=n,
        node_weights=weights,
        node_keys=tuple((checkpoint, int(k), j) for k in used for j in range(count)),
    )


#: The PT bins of recent checkpoints, by content (:func:`checkpoint_bins`).
_BINS: dict[bytes, DropHistory] = {}


def pt_digest(pt_lr: np.ndarray, pt_drops: np.ndarray) -> bytes:
    """A digest of the PT updates (LRs and drops): the name of a checkpoint's nodes."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(pt_lr, dtype=float).data)
    digest.update(np.ascontiguousarray(pt_drops, dtype=float).data)
    return digest.digest()


def checkpoint_bins(
    pt_lr: np.ndarray, pt_drops: np.ndarray, key: bytes | None = None
) -> tuple[bytes, DropHistory]:
    """The PT drops binned as seen from the checkpoint, and a digest of the PT updates
    (the nodes' name; ``key`` when the caller knows it): every run from a checkpoint needs
    the same bins, and a long history takes ~0.1 s to bin, ~0.015 s to hash."""
    pt_lr, pt_drops = np.asarray(pt_lr, dtype=float), np.asarray(pt_drops, dtype=float)
    if key is None:
        key = pt_digest(pt_lr, pt_drops)
    bins = _BINS.get(key)
    if bins is None:
        bins = drop_history(pt_lr, pt_drops, np.array([pt_lr.size]), cpt_from=None)
        if len(_BINS) >= 4:
            _BINS.clear()
        _BINS[key] = bins
    return key, bins
