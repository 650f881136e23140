"""The areas of many searched settings at their last step, vectorised.

A *setting* is (checkpoint, schedule family, warmup fraction, WSD decay fraction, CPT steps,
peak LR, replay ratio), held as columns in a :class:`Batch`. The searched families all start
their warmup from LR 0 and end at LR 0, so their LR array is ``peak_lr * shape`` with a
shape that depends only on (family, warmup steps, decay start, steps). The law needs only
the final areas, and both are linear in the peak LR:

    S1cpt(T) = peak * a,   a = sum_k shape_k
    S2cpt(T) = peak * b + lr_before * c(T) + lam * m_before * c(T)

with ``c(T) = (1 - lam^T) / (1 - lam)`` and ``b = sum_k dshape_k (1 - lam^(T-k+1)) / (1 - lam)``
(``dshape`` the drops of the shape): the closed form of the m-recursion summed over the run.
So one O(T) pass per distinct shape (cached) and O(1) per (peak LR, replay) point: a dense
grid of a million points costs one call of the law on a million areas.

The multi-power memory has no such closed form, but its drop history scales with the peak
LR: the binned CPT drops of ``peak * shape`` are ``peak`` times those of the shape (drops,
LRs and areas alike), the boundary drop is ``lr_last - peak * shape_1``, and the PT drops
keep their LRs with ``peak * sum(shape)`` added to their areas. So the history is binned
once per (checkpoint, shape) and scaled per peak LR; settings that differ only in replay
share one history (``DropHistory.index``).

Repetition (a domain corpus of known size) and an LR-power shift need every step, but
again once per shape: a setting's steps are its unit shape's, each worth
``repetition_weights(steps, replay)`` (so shapes are grouped by replay only where the domain
data repeat), and ``sum (peak shape_k)^q`` is ``peak^q`` times the shape's own sum
(:class:`~cptopt.law.areas.StepLRs` with ``scale = peak / reference``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from cptopt.law.areas import Areas, CheckpointState, StepLRs, repetition_weights
from cptopt.law.drops import DropHistory, drop_history, lr_drops
from cptopt.law.scenario import CptScenario, InputNeeds
from cptopt.schedules import family_lr_array
from cptopt.search.models import SEARCH_FAMILIES

ShapeKey = tuple[int, int, int, int]  # family index, steps, warmup steps, decay start


@dataclass
class Batch:
    """Settings as columns (all arrays of shape ``(n,)``)."""

    checkpoint: np.ndarray  # int index into the evaluator's checkpoints
    family: np.ndarray  # int index into SEARCH_FAMILIES
    warmup_fraction: np.ndarray
    decay_fraction: np.ndarray  # ignored unless family is wsd
    steps: np.ndarray  # int
    peak_lr: np.ndarray
    replay_ratio: np.ndarray

    def __len__(self) -> int:
        return int(self.peak_lr.size)

    def take(self, index: np.ndarray | slice) -> Batch:
        return Batch(*(np.asarray(getattr(self, name))[index] for name in BATCH_FIELDS))

    @staticmethod
    def concatenate(parts: list[Batch]) -> Batch:
        return Batch(*(np.concatenate([getattr(p, n) for p in parts]) for n in BATCH_FIELDS))

    def row(self, index: int) -> dict[str, float | int]:
        return {name: getattr(self, name)[index].item() for name in BATCH_FIELDS}


BATCH_FIELDS = (
    "checkpoint",
    "family",
    "warmup_fraction",
    "decay_fraction",
    "steps",
    "peak_lr",
    "replay_ratio",
)


def make_batch(**columns: np.ndarray | float | int) -> Batch:
    """Broadcast columns (scalars or arrays) into a :class:`Batch`."""
    arrays = np.broadcast_arrays(*(np.asarray(columns[name]) for name in BATCH_FIELDS))
    kinds = {"checkpoint": int, "family": int, "steps": int}
    return Batch(
        *(
            np.ascontiguousarray(a.ravel(), dtype=kinds.get(name, float))
            for name, a in zip(BATCH_FIELDS, arrays, strict=True)
        )
    )


def unit_shape(family: int, steps: int, n_warmup: int, decay_start: int) -> np.ndarray:
    """LR array of peak 1 (warmup from 0, linear decay to 0) of a searched family."""
    return family_lr_array(
        family=SEARCH_FAMILIES[family],
        peak_lr=1.0,
        steps=steps,
        warmup_steps=n_warmup,
        warmup_start_lr=0.0,
        decay_start=decay_start,
        decay_shape="linear",
        min_lr=0.0,
    )


def shape_codes(batch: Batch) -> np.ndarray:
    """One int64 per setting naming its unit shape: family | steps | warmup | decay start."""
    steps = batch.steps.astype(np.int64)
    n_warmup = np.round(batch.warmup_fraction * steps).astype(np.int64)
    wsd = batch.family == SEARCH_FAMILIES.index("wsd")
    decay_start = np.where(wsd, steps - np.round(batch.decay_fraction * steps), 0)
    if steps.size and steps.max() >= 2**20:
        raise ValueError("more than 2**20 CPT steps are not supported by the search")
    # family | steps | warmup steps | decay start (20 bits each)
    return (
        (batch.family.astype(np.int64) << 60)
        | (steps << 40)
        | (n_warmup << 20)
        | decay_start.astype(np.int64)
    )


def shape_key(code: int) -> ShapeKey:
    mask = (1 << 20) - 1
    return (code >> 60, (code >> 40) & mask, (code >> 20) & mask, code & mask)


@dataclass
class FinalAreas:
    """Builds the law's inputs at the last step of every setting of a batch: the contract
    of :meth:`cptopt.law.scenario.CptScenario.inputs`, vectorised (a test holds the two to
    the same numbers on every bundled domain).

    ``lam`` is the law's S2 memory factor (None: no S2); ``needs_history``: also the drop
    history (the multi-power memory). ``tokens_per_step`` and ``domain_tokens``: the
    repetition discount of the domain shift (none unless both are given); ``lr_reference``:
    also the per-step LRs (a shift driven by LR^q; None: not needed). Per-shape work is
    cached, so one instance should serve a whole search. :meth:`for_scenario` takes these
    from a scenario and what the law needs, as the scenario's ``inputs`` does.
    """

    checkpoints: list[CheckpointState]
    lam: float | None
    needs_history: bool
    tokens_per_step: float | None = None
    domain_tokens: float | None = None
    lr_reference: float | None = None
    _terms: dict[ShapeKey, tuple[float, float]] = field(default_factory=dict)
    _shapes: dict[ShapeKey, np.ndarray] = field(default_factory=dict)
    _cpt_templates: dict[tuple[ShapeKey, bool], tuple[np.ndarray, ...]] = field(
        default_factory=dict
    )
    _pt_templates: dict[tuple[int, int], tuple[np.ndarray, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.s1_pt = np.array([state.s1_pt for state in self.checkpoints])
        self.s2_pt = np.array([state.s2_pt for state in self.checkpoints])
        self.lr_last = np.array([state.lr_last for state in self.checkpoints])
        self.momentum = np.array([state.momentum for state in self.checkpoints])
        self.known = np.array([state.known for state in self.checkpoints])

    @staticmethod
    def for_scenario(
        scenario: CptScenario,
        needs: InputNeeds,
        checkpoints: list[CheckpointState],
        tokens_per_step: float | None = None,
        domain_tokens: float | None = None,
    ) -> FinalAreas:
        """The final areas of runs from ``checkpoints`` as ``scenario`` builds a run's inputs
        for a law that ``needs`` (``tokens_per_step`` and ``domain_tokens`` default as
        :meth:`~cptopt.law.scenario.CptScenario.run` defaults them)."""
        corpus = tokens_per_step
        if scenario.coverage is not None:
            corpus = scenario.coverage.corpus_tokens_per_step(tokens_per_step)
        return FinalAreas(
            checkpoints,
            needs.lam,
            needs.history,
            corpus,
            domain_tokens or scenario.domain_tokens,
            scenario.lr_reference if needs.steps else None,
        )

    def _unit_shape(self, key: ShapeKey) -> np.ndarray:
        cached = self._shapes.get(key)
        if cached is None:
            cached = self._shapes[key] = unit_shape(*key)
        return cached

    # -- closed-form areas --------------------------------------------------------------

    def _shape_terms(self, key: ShapeKey) -> tuple[float, float]:
        cached = self._terms.get(key)
        if cached is None:
            shape = self._unit_shape(key)
            b = 0.0
            if self.lam is not None:  # else: no m-recursion in this law, S2 is not used
                # weight of the drop at step k (1-based) in S2(T): (1 - lam^(T-k+1)) / (1 - lam)
                remaining = np.arange(shape.size, 0, -1, dtype=float)
                weights = -np.expm1(remaining * np.log(self.lam)) / (1.0 - self.lam)
                b = float(lr_drops(shape) @ weights)
            cached = self._terms[key] = (float(shape.sum()), b)
        return cached

    def shape_terms(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)`` per setting (see the module docstring); one O(T) pass per new shape."""
        unique, inverse = np.unique(shape_codes(batch), return_inverse=True)
        terms = np.array([self._shape_terms(shape_key(c)) for c in unique.tolist()])
        terms = terms.reshape(-1, 2)[np.asarray(inverse).ravel()]
        return terms[:, 0], terms[:, 1]

    # -- drop history (multi-power memory) ----------------------------------------------

    def _cpt_template(self, key: ShapeKey, long: bool) -> tuple[np.ndarray, ...]:
        """Binned CPT drops of the unit shape at its last step: (drop, lr, area, first LR,
        total area); the boundary drop's ``-shape_1`` part is its own pair."""
        cached = self._cpt_templates.get((key, long))
        if cached is None:
            shape = unit_shape(*key)
            at = np.array([shape.size])
            history = drop_history(shape, lr_drops(shape), at, cpt_from=0, long=long)
            cached = (history.drop, history.lr, history.area, shape[0], shape.sum())
            self._cpt_templates[(key, long)] = cached
        return cached

    def _pt_template(self, checkpoint: int, steps: int) -> tuple[np.ndarray, ...]:
        """Binned PT drops seen from CPT step ``steps``: (drop, lr, area up to the checkpoint)."""
        key = (checkpoint, steps)
        cached = self._pt_templates.get(key)
        if cached is None:
            state = self.checkpoints[checkpoint]
            at = np.array([state.pt_lr.size + steps])
            history = drop_history(state.pt_lr, state.pt_drops, at, cpt_from=None)
            cached = (history.drop, history.lr, history.area)
            self._pt_templates[key] = cached
        return cached

    def pt_history(self, checkpoint: int, steps: int, cpt_area: np.ndarray) -> DropHistory:
        """PT pairs of ``cpt_area.size`` settings (CPT LR areas ``cpt_area``), one per point."""
        drop, lr, area = self._pt_template(checkpoint, steps)
        n, m = cpt_area.size, drop.size
        return DropHistory(
            point=np.repeat(np.arange(n), m),
            drop=np.tile(drop, n),
            lr=np.tile(lr, n),
            area=(area[None, :] + cpt_area[:, None]).ravel(),
            cpt=np.zeros(n * m, bool),
            n_points=n,
        )

    def history(self, batch: Batch) -> DropHistory:
        """Drop history at the last step of every setting (shared across replay ratios)."""
        unique_codes, code_index = np.unique(shape_codes(batch), return_inverse=True)
        bases, index = np.unique(
            np.stack([batch.checkpoint, np.asarray(code_index).ravel(), batch.peak_lr]),
            axis=1,
            return_inverse=True,
        )
        base_checkpoint, base_code, base_peak = bases[0].astype(int), bases[1].astype(int), bases[2]
        parts: list[DropHistory] = []
        order: list[np.ndarray] = []
        for checkpoint, code in np.unique(np.stack([base_checkpoint, base_code]), axis=1).T:
            members = np.flatnonzero((base_checkpoint == checkpoint) & (base_code == code))
            peak = base_peak[members]
            key = shape_key(int(unique_codes[code]))
            # the CPT drops binned as the fit bins them from this checkpoint (run_history)
            long = self.checkpoints[checkpoint].through_nodes
            drop, lr, area, first_lr, total = self._cpt_template(key, long)
            n, m = peak.size, drop.size
            lr_last = self.checkpoints[checkpoint].lr_last
            cpt = DropHistory(
                point=np.repeat(np.arange(n), m + 1),
                drop=np.column_stack([peak[:, None] * drop, np.full(n, lr_last)]).ravel(),
                lr=np.column_stack([peak[:, None] * lr, peak * first_lr]).ravel(),
                area=np.column_stack([peak[:, None] * area, peak * total]).ravel(),
                cpt=np.ones(n * (m + 1), bool),
                n_points=n,
            )
            pt = self.pt_history(checkpoint, key[1], peak * total)
            parts.append(DropHistory.merge([cpt, pt]))
            order.append(members)
        history = DropHistory.concatenate(parts)
        position = np.empty(len(base_peak), dtype=int)
        position[np.concatenate(order)] = np.arange(len(base_peak))
        return replace(history, index=position[np.asarray(index).ravel()])

    # -- every step: repetition discount and LR power -----------------------------------

    def _repeats(self, batch: Batch) -> np.ndarray:
        """Which settings repeat domain data (their steps' worth depends on the replay)."""
        if not self.tokens_per_step or not self.domain_tokens:
            return np.zeros(len(batch), bool)
        consumed = batch.steps * (1.0 - batch.replay_ratio) * self.tokens_per_step
        return (consumed > self.domain_tokens) & (batch.replay_ratio < 1.0)

    def step_groups(self, batch: Batch) -> tuple[StepLRs, np.ndarray]:
        """The unit-shape steps of every setting (:class:`StepLRs`, one group per shape, and
        per replay ratio where the domain data repeat) and each group's weighted unit area
        ``sum_k shape_k w_k`` per setting (its ``s1_shift`` over the peak LR)."""
        repeats = self._repeats(batch)
        replay_key = np.where(repeats, batch.replay_ratio, -1.0)
        code_values, code_index = np.unique(shape_codes(batch), return_inverse=True)
        replay_values, replay_index = np.unique(replay_key, return_inverse=True)
        combined = (
            np.asarray(code_index).ravel() * replay_values.size + np.asarray(replay_index).ravel()
        )
        groups, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        lrs, weights, unit_area = [], [], np.empty(groups.size)
        for g, setting in enumerate(first.tolist()):
            code = int(code_values[combined[setting] // replay_values.size])
            shape = self._unit_shape(shape_key(code))
            weight = None
            if repeats[setting]:
                weight = repetition_weights(
                    shape.size, replay_key[setting], self.tokens_per_step, self.domain_tokens
                )
            weight = np.ones(shape.size) if weight is None else weight
            lrs.append(shape)
            weights.append(weight)
            unit_area[g] = shape @ weight
        lengths = np.array([lr.size for lr in lrs], dtype=np.int64)
        stops = np.cumsum(lengths)
        reference = self.lr_reference or 1.0
        steps = StepLRs(
            np.concatenate(lrs),
            np.concatenate(weights),
            (stops - lengths)[inverse],
            stops[inverse],
            batch.peak_lr / reference,
            reference,
        )
        return steps, unit_area[inverse]

    # -- areas --------------------------------------------------------------------------

    def _areas(
        self, checkpoint: np.ndarray, s1_cpt: np.ndarray, s2_cpt: np.ndarray, replay: np.ndarray
    ) -> Areas:
        return Areas(
            s1_pt=self.s1_pt[checkpoint],
            s2_pt=self.s2_pt[checkpoint],
            s1_cpt=np.asarray(s1_cpt, dtype=float),
            s2_cpt=np.asarray(s2_cpt, dtype=float),
            replay_ratio=np.asarray(replay, dtype=float),
            checkpoint_known=self.known[checkpoint],
        )

    def __call__(self, batch: Batch) -> Areas:
        """The areas (and history, if needed) at the last step of every setting."""
        a, b = self.shape_terms(batch)
        ck = batch.checkpoint
        s1_cpt = batch.peak_lr * a
        s2_cpt = np.zeros_like(s1_cpt)
        if self.lam is not None:
            steps = batch.steps.astype(float)
            c = -np.expm1(steps * np.log(self.lam)) / (1.0 - self.lam)
            s2_cpt = batch.peak_lr * b + self.lr_last[ck] * c + self.lam * self.momentum[ck] * c
        areas = self._areas(ck, s1_cpt, s2_cpt, batch.replay_ratio)
        if self.needs_history:
            areas = replace(areas, history=self.history(batch))
        repeats = self._repeats(batch)
        if self.lr_reference is not None or repeats.any():
            steps, unit_area = self.step_groups(batch)
            s1_shift = np.where(repeats, batch.peak_lr * unit_area, s1_cpt)
            with_steps = steps if self.lr_reference is not None else None
            areas = replace(areas, s1_shift=s1_shift, steps=with_steps)
        return areas

    def at_start(self) -> Areas:
        """The areas at CPT step 0 of every checkpoint (the pre-CPT losses)."""
        n = len(self.checkpoints)
        zeros = np.zeros(n)
        areas = self._areas(np.arange(n), zeros, zeros, zeros)
        if self.lr_reference is not None:
            areas = replace(areas, steps=StepLRs.empty(n, self.lr_reference))
        if self.needs_history:
            history = DropHistory.concatenate(
                [self.pt_history(i, 0, np.zeros(1)) for i in range(n)]
            )
            areas = replace(areas, history=history)
        return areas
