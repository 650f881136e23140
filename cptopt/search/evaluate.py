"""Vectorised evaluation of CPT settings for the search (private to :mod:`cptopt.search`).

A *setting* is (checkpoint, schedule family, warmup fraction, WSD decay fraction, CPT steps,
peak LR, replay ratio). The searched families all start their warmup from LR 0 and end at
LR 0, so their LR array is ``peak_lr * shape`` with a shape that depends only on
(family, warmup steps, decay start, steps). The law needs only the final areas, and both are
linear in the peak LR:

    S1cpt(T) = peak * a,   a = sum_k shape_k
    S2cpt(T) = peak * b + lr_before * c(T) + lam * m_before * c(T)

with ``c(T) = (1 - lam^T) / (1 - lam)`` and ``b = sum_k dshape_k (1 - lam^(T-k+1)) / (1 - lam)``
(``dshape_1 = -shape_1``, ``dshape_k = shape_{k-1} - shape_k``): the closed form of the
m-recursion of cpt-law.md §1 summed over the run (``m_i = lam m_{i-1} + d_i``). So one O(T)
pass per distinct shape (cached) and O(1) per (peak LR, replay) point: a dense grid of a
million points costs one call of the law on a million areas.

The multi-power annealing has no such closed form, but its drop history scales with the
peak LR: the binned CPT drops of ``peak * shape`` are ``peak`` times those of the shape
(drops, LRs and areas alike), the boundary drop is ``lr_last - peak * shape_1``, and the PT
drops keep their LRs with ``peak * sum(shape)`` added to their areas. So the history is
binned once per (checkpoint, shape) and scaled per peak LR; settings that differ only in
replay share one history (``DropHistory.index``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cptopt.law.areas import Areas, CheckpointState, DropHistory, drop_history
from cptopt.law.fitted import FittedLaw
from cptopt.schedules import Schedule

#: Families searched (all warm up from 0 and decay to 0: LR array = peak * shape).
SEARCH_FAMILIES: tuple[str, ...] = ("cosine", "wsd", "linear", "constant")
#: Points per chunk when evaluating the law (bounds memory at ~100 MB).
CHUNK = 250_000


@dataclass(frozen=True)
class CheckpointChoice:
    """A PT checkpoint CPT may start from."""

    label: str
    state: CheckpointState
    pt_step: int | None
    loss_potential: float | None
    piloted: bool


@dataclass
class Batch:
    """Settings as columns (all arrays of shape ``(n,)``)."""

    checkpoint: np.ndarray  # int index into the evaluator's checkpoints
    family: np.ndarray  # int index into SEARCH_FAMILIES
    warmup_fraction: np.ndarray
    decay_fraction: np.ndarray  # ignored unless family is wsd
    steps: np.ndarray  # int
    peak_lr: np.ndarray
    replay: np.ndarray

    def __len__(self) -> int:
        return int(self.peak_lr.size)

    def take(self, index: np.ndarray | slice) -> Batch:
        return Batch(
            *(np.asarray(getattr(self, name))[index] for name in _BATCH_FIELDS),
        )

    @staticmethod
    def concatenate(parts: list[Batch]) -> Batch:
        return Batch(*(np.concatenate([getattr(p, n) for p in parts]) for n in _BATCH_FIELDS))

    def row(self, index: int) -> dict[str, float | int]:
        return {name: getattr(self, name)[index].item() for name in _BATCH_FIELDS}


_BATCH_FIELDS = (
    "checkpoint",
    "family",
    "warmup_fraction",
    "decay_fraction",
    "steps",
    "peak_lr",
    "replay",
)


def make_batch(**columns: np.ndarray | float | int) -> Batch:
    """Broadcast columns (scalars or arrays) into a :class:`Batch`."""
    arrays = np.broadcast_arrays(*(np.asarray(columns[name]) for name in _BATCH_FIELDS))
    kinds = {"checkpoint": int, "family": int, "steps": int}
    return Batch(
        *(
            np.ascontiguousarray(a.ravel(), dtype=kinds.get(name, float))
            for name, a in zip(_BATCH_FIELDS, arrays, strict=True)
        )
    )


def shape_schedule(
    family: str, steps: int, warmup_fraction: float, decay_fraction: float, peak_lr: float = 1.0
) -> Schedule:
    """The :class:`Schedule` of one searched setting (min LR 0, warmup from 0)."""
    return Schedule(
        family=family,  # type: ignore[arg-type]
        peak_lr=peak_lr,
        steps=int(steps),
        warmup_fraction=float(warmup_fraction),
        decay_fraction=float(decay_fraction) if family == "wsd" else None,
    )


def unit_shape(family: int, steps: int, n_warmup: int, decay_start: int) -> np.ndarray:
    """LR array of peak 1 (warmup from 0, decay to 0), exactly as :class:`Schedule` builds it.

    A pydantic-free copy of ``Schedule.lr_array`` for the searched families (checked
    against it in the tests), because the search builds thousands of shapes.
    """
    name = SEARCH_FAMILIES[family]
    step = np.arange(1, steps + 1, dtype=float)
    if name == "constant":
        lr = np.ones(steps)
    elif name in ("cosine", "linear"):
        progress = (step - n_warmup) / (steps - n_warmup)
        lr = 0.5 * (1.0 + np.cos(np.pi * progress)) if name == "cosine" else 1.0 - progress
    else:
        progress = np.clip((step - decay_start) / (steps - decay_start), 0.0, 1.0)
        lr = np.where(step > decay_start, 1.0 - progress, 1.0)
    if n_warmup > 0:
        lr = np.where(step <= n_warmup, step / n_warmup, lr)
    return lr


@dataclass
class Evaluator:
    """Final general/domain loss, objective and constraint values of many settings at once."""

    law: FittedLaw
    checkpoints: list[CheckpointChoice]
    w_general: float
    w_domain: float
    tokens_per_step: int | None = None
    max_epochs: float | None = None
    domain_tokens: float | None = None
    max_general_rise: float | None = None
    max_steps: int | None = None
    max_tokens: float | None = None
    _shapes: dict[tuple[int, int, int, int], tuple[float, float]] = field(default_factory=dict)
    _cpt_templates: dict[tuple[int, int, int, int], tuple[np.ndarray, ...]] = field(
        default_factory=dict
    )
    _pt_templates: dict[tuple[int, int], tuple[np.ndarray, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lam = None if self.law.lam is None else float(self.law.lam)
        self.needs_history = self.law.needs_history
        self.forms = {vs: self.law.law(vs) for vs in ("general", "domain")}
        self.values = {
            vs: np.asarray(self.law.set_fit(vs).values, dtype=float) for vs in self.forms
        }
        self.replicas = {
            vs: np.asarray(self.law.set_fit(vs).jackknife, dtype=float).reshape(
                -1, self.values[vs].size
            )
            for vs in self.forms
        }
        self.s1_pt = np.array([c.state.s1_pt for c in self.checkpoints])
        self.s2_pt = np.array([c.state.s2_pt for c in self.checkpoints])
        self.lr_last = np.array([c.state.lr_last for c in self.checkpoints])
        self.momentum = np.array([c.state.momentum for c in self.checkpoints])
        self.known = np.array([c.state.known for c in self.checkpoints])
        zeros = np.zeros(len(self.checkpoints))
        start = self._areas(np.arange(len(self.checkpoints)), zeros, zeros, zeros)
        if self.needs_history:
            start = _with_history(
                start,
                DropHistory.concatenate(
                    [self._pt_history(i, 0, np.zeros(1)) for i in range(len(self.checkpoints))]
                ),
            )
        self.initial = {vs: self.forms[vs].evaluate(self.values[vs], start) for vs in self.forms}

    # -- shapes -------------------------------------------------------------------------

    def _shape_terms(self, key: tuple[int, int, int, int]) -> tuple[float, float]:
        cached = self._shapes.get(key)
        if cached is not None:
            return cached
        shape = unit_shape(*key)
        if self.lam is None:  # no m-recursion in this law: S2 is not used
            terms = (float(shape.sum()), 0.0)
            self._shapes[key] = terms
            return terms
        drops = np.empty_like(shape)
        drops[0] = -shape[0]
        drops[1:] = shape[:-1] - shape[1:]
        # weight of the drop at step k (1-based) in S2(T): (1 - lam^(T-k+1)) / (1 - lam)
        remaining = np.arange(shape.size, 0, -1, dtype=float)
        weights = -np.expm1(remaining * np.log(self.lam)) / (1.0 - self.lam)
        terms = (float(shape.sum()), float(drops @ weights))
        self._shapes[key] = terms
        return terms

    def shape_codes(self, batch: Batch) -> np.ndarray:
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

    @staticmethod
    def shape_key(code: int) -> tuple[int, int, int, int]:
        mask = (1 << 20) - 1
        return (code >> 60, (code >> 40) & mask, (code >> 20) & mask, code & mask)

    def shape_terms(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)`` per setting (see the module docstring); one O(T) pass per new shape."""
        unique, inverse = np.unique(self.shape_codes(batch), return_inverse=True)
        terms = np.array([self._shape_terms(self.shape_key(c)) for c in unique.tolist()])
        terms = terms.reshape(-1, 2)[np.asarray(inverse).ravel()]
        return terms[:, 0], terms[:, 1]

    # -- drop history (multi-power annealing) -------------------------------------------

    def _cpt_template(self, key: tuple[int, int, int, int]) -> tuple[np.ndarray, ...]:
        """Binned CPT drops of the unit shape at its last step: (drop, lr, area, first LR,
        total area); the boundary drop's ``-shape_1`` part is its own pair."""
        cached = self._cpt_templates.get(key)
        if cached is None:
            shape = unit_shape(*key)
            drops = np.empty_like(shape)
            drops[0] = -shape[0]
            drops[1:] = shape[:-1] - shape[1:]
            history = drop_history(shape, drops, np.array([shape.size]), cpt_from=0)
            cached = (history.drop, history.lr, history.area, shape[0], shape.sum())
            self._cpt_templates[key] = cached
        return cached

    def _pt_template(self, checkpoint: int, steps: int) -> tuple[np.ndarray, ...]:
        """Binned PT drops seen from CPT step ``steps``: (drop, lr, area up to the checkpoint)."""
        key = (checkpoint, steps)
        cached = self._pt_templates.get(key)
        if cached is None:
            state = self.checkpoints[checkpoint].state
            at = np.array([state.pt_lr.size + steps])
            history = drop_history(state.pt_lr, state.pt_drops, at, cpt_from=None)
            cached = (history.drop, history.lr, history.area)
            self._pt_templates[key] = cached
        return cached

    def _pt_history(self, checkpoint: int, steps: int, cpt_area: np.ndarray) -> DropHistory:
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

    def final_history(self, batch: Batch) -> DropHistory:
        """Drop history at the last step of every setting (shared across replay ratios)."""
        unique_codes, code_index = np.unique(self.shape_codes(batch), return_inverse=True)
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
            key = self.shape_key(int(unique_codes[code]))
            drop, lr, area, first_lr, total = self._cpt_template(key)
            n, m = peak.size, drop.size
            state = self.checkpoints[checkpoint].state
            cpt = DropHistory(
                point=np.repeat(np.arange(n), m + 1),
                drop=np.column_stack([peak[:, None] * drop, np.full(n, state.lr_last)]).ravel(),
                lr=np.column_stack([peak[:, None] * lr, peak * first_lr]).ravel(),
                area=np.column_stack([peak[:, None] * area, peak * total]).ravel(),
                cpt=np.ones(n * (m + 1), bool),
                n_points=n,
            )
            pt = self._pt_history(checkpoint, key[1], peak * total)
            parts.append(DropHistory.merge([cpt, pt]))
            order.append(members)
        history = DropHistory.concatenate(parts)
        position = np.empty(len(base_peak), dtype=int)
        position[np.concatenate(order)] = np.arange(len(base_peak))
        return DropHistory(
            history.point,
            history.drop,
            history.lr,
            history.area,
            history.cpt,
            history.n_points,
            index=position[np.asarray(index).ravel()],
        )

    # -- losses -------------------------------------------------------------------------

    def _areas(
        self, checkpoint: np.ndarray, s1_cpt: np.ndarray, s2_cpt: np.ndarray, replay: np.ndarray
    ) -> Areas:
        return Areas(
            s1_pt=self.s1_pt[checkpoint],
            s2_pt=self.s2_pt[checkpoint],
            s1_cpt=np.asarray(s1_cpt, dtype=float),
            s2_cpt=np.asarray(s2_cpt, dtype=float),
            replay=np.asarray(replay, dtype=float),
            checkpoint_known=self.known[checkpoint],
        )

    def final_areas(self, batch: Batch) -> Areas:
        a, b = self.shape_terms(batch)
        steps = batch.steps.astype(float)
        c = 0.0 if self.lam is None else -np.expm1(steps * np.log(self.lam)) / (1.0 - self.lam)
        ck = batch.checkpoint
        s1_cpt = batch.peak_lr * a
        if self.lam is None:
            s2_cpt = np.zeros_like(s1_cpt)
        else:
            s2_cpt = batch.peak_lr * b + self.lr_last[ck] * c + self.lam * self.momentum[ck] * c
        areas = self._areas(ck, s1_cpt, s2_cpt, batch.replay)
        if self.needs_history:
            areas = _with_history(areas, self.final_history(batch))
        return areas

    def losses(
        self, batch: Batch, replicas: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(general, domain, objective)`` final values, shape ``(n,)``.

        With ``replicas`` each has shape ``(1 + K, n)``: row 0 the fitted law, rows 1.. its
        K leave-one-pilot-out (jackknife) refits.
        """
        parts = []
        for start in range(0, max(len(batch), 1), CHUNK):
            chunk = batch.take(slice(start, start + CHUNK))
            areas = self.final_areas(chunk)
            out = []
            for vs in ("general", "domain"):
                values = self.values[vs]
                if replicas:
                    values = np.vstack([values[None, :], self.replicas[vs]])
                out.append(self.forms[vs].evaluate(values, areas))
            parts.append(out)
        axis = -1
        general = np.concatenate([p[0] for p in parts], axis=axis)
        domain = np.concatenate([p[1] for p in parts], axis=axis)
        objective = self.w_general * general + self.w_domain * domain
        return general, domain, objective

    # -- constraints --------------------------------------------------------------------

    def constraint_names(self) -> list[str]:
        names = ["positive_loss"]
        if self.max_epochs is not None and self.domain_tokens is not None:
            names.append("max_epochs")
        if self.max_general_rise is not None:
            names.append("max_general_rise")
        if self.max_steps is not None:
            names.append("max_steps")
        if self.max_tokens is not None and self.tokens_per_step:
            names.append("max_tokens")
        return names

    def epochs(self, batch: Batch) -> np.ndarray | None:
        """Epochs of domain data, ``(1 - r) * T * tokens_per_step / domain_tokens``."""
        if self.domain_tokens is None or not self.tokens_per_step:
            return None
        return (1.0 - batch.replay) * batch.steps * self.tokens_per_step / self.domain_tokens

    def violations(
        self, batch: Batch, general: np.ndarray, domain: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Constraint values per setting (feasible when <= 0), in the units of each limit."""
        valid = np.isfinite(general) & np.isfinite(domain) & (general > 0) & (domain > 0)
        out: dict[str, np.ndarray] = {}
        for name in self.constraint_names():
            if name == "positive_loss":
                out[name] = np.where(valid, 0.0, 1.0)
            elif name == "max_epochs":
                out[name] = self.epochs(batch) - self.max_epochs  # type: ignore[operator]
            elif name == "max_general_rise":
                rise = general - self.initial["general"][batch.checkpoint]
                out[name] = rise - self.max_general_rise
            elif name == "max_steps":
                out[name] = (batch.steps - self.max_steps).astype(float)
            elif name == "max_tokens":
                out[name] = batch.steps * float(self.tokens_per_step) - self.max_tokens
        return out

    def evaluate(self, batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """``(general, domain, objective, violations)`` for the fitted law.

        Where the law predicts a non-finite or non-positive loss (far outside what the
        pilots covered) the objective is replaced by a clearly bad finite value (the
        losses at the checkpoint + 1 nat) and the ``positive_loss`` constraint is violated.
        """
        general, domain, objective = self.losses(batch)
        valid = np.isfinite(general) & np.isfinite(domain) & (general > 0) & (domain > 0)
        if not valid.all():
            penalty = (
                self.w_general * self.initial["general"][batch.checkpoint]
                + self.w_domain * self.initial["domain"][batch.checkpoint]
                + 1.0
            )
            objective = np.where(valid, objective, penalty)
        return general, domain, objective, self.violations(batch, general, domain)


def _with_history(areas: Areas, history: DropHistory) -> Areas:
    return Areas(
        areas.s1_pt,
        areas.s2_pt,
        areas.s1_cpt,
        areas.s2_cpt,
        areas.replay,
        areas.checkpoint_known,
        history=history,
    )


def feasible_mask(violations: dict[str, np.ndarray], n: int) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    for values in violations.values():
        mask &= values <= 0
    return mask
