"""The resolved search space: bounds per dimension, and how to sample and grid it.

:func:`resolve_space` turns a :class:`~cptopt.search.models.SearchSpace` (``None`` = from
the law's coverage) and the constraints into a :class:`ResolvedSpace`, one small function
per dimension, each with the notes that explain it:

- peak LR (log scale): the pilots' range, widened ``EXTRAPOLATION_FACTOR`` each way only on
  request (the law has no "LR too large" regime, docs/law.md);
- replay ratio: the pilots' range, or fixed when the law cannot identify replay terms;
- steps: up to the budget (``max_steps``, ``max_tokens``, else the longest pilot);
- shape: families, warmup fraction, WSD decay fraction;
- starting checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cptopt.exceptions import IdentifiabilityError, InputError, param
from cptopt.law.fitted import CptLaw
from cptopt.law.scenario import RANGE_TOLERANCE
from cptopt.search.evaluate import CheckpointChoice
from cptopt.search.models import (
    SEARCH_FAMILIES,
    Constraints,
    Range,
    SearchSpace,
    Setting,
    SpaceReport,
)
from cptopt.search.shapes import Batch, make_batch

#: ``allow_extrapolation`` widens the pilots' peak-LR range by this factor each way.
EXTRAPOLATION_FACTOR = 3.0
#: Dimensions in the order a Latin hypercube draws them.
DIMENSIONS = (
    "peak_lr",
    "replay_ratio",
    "steps",
    "family",
    "warmup_fraction",
    "decay_fraction",
    "checkpoint",
)


@dataclass
class ResolvedSpace:
    """The space searched: a range per continuous dimension, the discrete choices."""

    peak_lr: Range
    replay_ratio: Range
    steps: tuple[int, int]
    granularity: int
    budget: int
    families: list[str]
    warmup_fraction: Range
    decay_fraction: Range
    checkpoints: list[CheckpointChoice]
    tokens_per_step: int | None
    notes: list[str] = field(default_factory=list)

    def varying(self) -> dict[str, bool]:
        """Which dimensions the search varies (the others are fixed)."""
        return {
            "peak_lr": self.peak_lr[0] < self.peak_lr[1],
            "replay_ratio": self.replay_ratio[0] < self.replay_ratio[1],
            "steps": self.steps[0] < self.steps[1],
            "family": len(self.families) > 1,
            "warmup_fraction": self.warmup_fraction[0] < self.warmup_fraction[1],
            "decay_fraction": self.decay_fraction[0] < self.decay_fraction[1]
            and "wsd" in self.families,
            "checkpoint": len(self.checkpoints) > 1,
        }

    def distributions(self) -> dict[str, Any]:
        """Optuna distributions of the varying dimensions."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        choices = {
            "peak_lr": lambda: FloatDistribution(*self.peak_lr, log=True),
            "replay_ratio": lambda: FloatDistribution(*self.replay_ratio),
            "steps": lambda: IntDistribution(*self.steps, step=self.granularity),
            "family": lambda: CategoricalDistribution(self.families),
            "warmup_fraction": lambda: FloatDistribution(*self.warmup_fraction),
            "decay_fraction": lambda: FloatDistribution(*self.decay_fraction),
            "checkpoint": lambda: CategoricalDistribution([c.label for c in self.checkpoints]),
        }
        return {name: choices[name]() for name, varies in self.varying().items() if varies}

    def batch_from_params(self, params: Sequence[dict[str, Any]]) -> Batch:
        """Optuna params (missing = fixed dimension) -> a :class:`Batch`."""
        labels = [c.label for c in self.checkpoints]

        def column(name: str, default: Any) -> list:
            return [p.get(name, default) for p in params]

        return make_batch(
            checkpoint=np.array([labels.index(v) for v in column("checkpoint", labels[0])]),
            family=np.array(
                [SEARCH_FAMILIES.index(v) for v in column("family", self.families[0])], dtype=int
            ),
            warmup_fraction=np.array(
                column("warmup_fraction", self.warmup_fraction[0]), dtype=float
            ),
            decay_fraction=np.array(column("decay_fraction", self.decay_fraction[0]), dtype=float),
            steps=np.array(column("steps", self.steps[1]), dtype=int),
            peak_lr=np.array(column("peak_lr", self.peak_lr[1]), dtype=float),
            replay_ratio=np.array(column("replay_ratio", self.replay_ratio[0]), dtype=float),
        )

    def params_of(self, batch: Batch, index: int) -> dict[str, Any]:
        """Optuna params of one setting (varying dimensions only)."""
        row = batch.row(index)
        out: dict[str, Any] = {}
        for name, varies in self.varying().items():
            if not varies:
                continue
            if name == "family":
                out[name] = SEARCH_FAMILIES[int(row["family"])]
            elif name == "checkpoint":
                out[name] = self.checkpoints[int(row["checkpoint"])].label
            elif name == "steps":
                out[name] = int(row["steps"])
            else:
                out[name] = float(np.clip(row[name], *getattr(self, name)))
        return out

    def setting(self, batch: Batch, index: int) -> Setting:
        """One setting of a batch, as the result model."""
        row = batch.row(index)
        family = SEARCH_FAMILIES[int(row["family"])]
        return Setting(
            checkpoint=self.checkpoints[int(row["checkpoint"])].label,
            family=family,
            peak_lr=float(row["peak_lr"]),
            replay_ratio=float(row["replay_ratio"]),
            steps=int(row["steps"]),
            warmup_fraction=float(row["warmup_fraction"]),
            decay_fraction=float(row["decay_fraction"]) if family == "wsd" else None,
        )

    def latin_hypercube(self, n: int, seed: int) -> Batch:
        """``n`` settings spread over the space, each dimension stratified into ``n`` cells."""
        rng = np.random.default_rng(seed)
        n = max(n, 1)
        strata = np.stack([rng.permutation(n) for _ in DIMENSIONS], axis=1)
        u = dict(zip(DIMENSIONS, ((strata + rng.random((n, len(DIMENSIONS)))) / n).T, strict=True))
        low_lr, high_lr = np.log(self.peak_lr[0]), np.log(self.peak_lr[1])
        n_steps = (self.steps[1] - self.steps[0]) // self.granularity
        steps = self.steps[0] + self.granularity * np.minimum(
            np.floor(u["steps"] * (n_steps + 1)), n_steps
        ).astype(int)
        families = np.array([SEARCH_FAMILIES.index(f) for f in self.families])
        family = families[np.minimum((u["family"] * len(families)).astype(int), len(families) - 1)]
        checkpoints = len(self.checkpoints)
        checkpoint = np.minimum((u["checkpoint"] * checkpoints).astype(int), checkpoints - 1)

        def scaled(name: str) -> np.ndarray:
            low, high = getattr(self, name)
            return low + u[name] * (high - low)

        return make_batch(
            checkpoint=checkpoint,
            family=family,
            warmup_fraction=scaled("warmup_fraction"),
            decay_fraction=scaled("decay_fraction"),
            steps=steps,
            peak_lr=np.clip(np.exp(low_lr + u["peak_lr"] * (high_lr - low_lr)), *self.peak_lr),
            replay_ratio=scaled("replay_ratio"),
        )

    def grid(self, resolution: dict[str, int]) -> Batch:
        """A full-factorial grid of the space (``resolution`` points per continuous dim)."""
        vary = self.varying()

        def axis(name: str, log: bool = False) -> np.ndarray:
            low, high = getattr(self, name)
            if not vary[name]:
                return np.array([low])
            spacing = np.geomspace if log else np.linspace
            return spacing(low, high, resolution[name])

        all_steps = np.arange(self.steps[0], self.steps[1] + 1, self.granularity)
        if all_steps.size > resolution["steps"]:
            pick = np.unique(np.linspace(0, all_steps.size - 1, resolution["steps"]).round())
            all_steps = all_steps[pick.astype(int)]
        lr, replay, warmup = (
            axis("peak_lr", log=True),
            axis("replay_ratio"),
            axis("warmup_fraction"),
        )
        parts = []
        for ck in range(len(self.checkpoints)):
            for family in self.families:
                decays = axis("decay_fraction") if family == "wsd" else self.decay_fraction[:1]
                grids = np.meshgrid(lr, replay, all_steps, warmup, decays, indexing="ij")
                parts.append(
                    make_batch(
                        checkpoint=ck,
                        family=SEARCH_FAMILIES.index(family),
                        warmup_fraction=grids[3],
                        decay_fraction=grids[4],
                        steps=grids[2],
                        peak_lr=grids[0],
                        replay_ratio=grids[1],
                    )
                )
        return Batch.concatenate(parts)

    def describe(self) -> SpaceReport:
        return SpaceReport(
            peak_lr=self.peak_lr,
            replay_ratio=self.replay_ratio,
            steps=self.steps,
            step_granularity=self.granularity,
            families=self.families,
            warmup_fraction=self.warmup_fraction,
            decay_fraction=self.decay_fraction,
            checkpoints=[c.label for c in self.checkpoints],
            tokens_per_step=self.tokens_per_step,
            notes=self.notes,
        )

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the space (for a study's name): everything but the notes."""
        report = self.describe().model_dump()
        report.pop("notes")
        return report


def _peak_lr_range(
    law: CptLaw, space: SearchSpace, allow_extrapolation: bool, notes: list[str]
) -> Range:
    cov = law.coverage
    if space.peak_lr is not None:
        low, high = float(space.peak_lr[0]), float(space.peak_lr[1])
        if low < cov.peak_lr_min * (1 - RANGE_TOLERANCE) or high > cov.peak_lr_max * (
            1 + RANGE_TOLERANCE
        ):
            notes.append(
                f"explicit peak LR bounds {low:.3g}..{high:.3g} go beyond the "
                f"pilots' {cov.peak_lr_min:.3g}..{cov.peak_lr_max:.3g}: extrapolation"
            )
        return low, high
    if allow_extrapolation:
        notes.append(
            f"peak LR searched {EXTRAPOLATION_FACTOR:g}x beyond the pilots' range "
            "(allow_extrapolation): the law has no 'LR too large' regime, so settings "
            "outside the pilots' range are flagged and less trustworthy"
        )
        return cov.peak_lr_min / EXTRAPOLATION_FACTOR, cov.peak_lr_max * EXTRAPOLATION_FACTOR
    return cov.peak_lr_min, cov.peak_lr_max


def _replay_range(
    law: CptLaw, space: SearchSpace, allow_extrapolation: bool, notes: list[str]
) -> Range:
    ratios = sorted(law.coverage.replay_ratios)
    requested = space.replay_ratio
    if not law.replay_terms:
        if requested is not None and max(abs(r - ratios[0]) for r in requested) > 1e-9:
            raise IdentifiabilityError(
                f"replay ratio cannot be searched: the pilots use the single ratio "
                f"{ratios[0]:g}, so the law's replay terms are not identifiable "
                "(refit with pilots at >= 2 replay ratios)"
            )
        notes.append(
            f"replay fixed at {ratios[0]:g}: the pilots use a single replay ratio, so the "
            "law cannot predict other ratios (its replay terms are not identifiable)"
        )
        return ratios[0], ratios[0]
    if requested is not None:
        low, high = float(requested[0]), float(requested[1])
        if low < ratios[0] - 1e-9 or high > ratios[-1] + 1e-9:
            notes.append(
                f"replay bounds {low:g}..{high:g} go beyond the "
                f"pilots' {ratios[0]:g}..{ratios[-1]:g}: extrapolation"
            )
        return low, high
    return (0.0, 1.0) if allow_extrapolation else (ratios[0], ratios[-1])


def _tokens_per_step(law: CptLaw, constraints: Constraints) -> int | None:
    piloted = law.coverage.tokens_per_step
    tokens_per_step = constraints.tokens_per_step or (piloted[0] if len(piloted) == 1 else None)
    if constraints.max_tokens is not None and not tokens_per_step:
        raise InputError(
            f"{param('max_tokens')} needs {param('tokens_per_step')} (the pilots do not share "
            "one value)"
        )
    if (constraints.max_epochs is None) != (constraints.domain_tokens is None):
        raise InputError(
            f"{param('max_epochs')} and {param('domain_tokens')} go together: give both or neither"
        )
    if constraints.domain_tokens is not None and not tokens_per_step:
        raise InputError(f"{param('domain_tokens')} needs {param('tokens_per_step')}")
    return tokens_per_step


def _step_range(
    law: CptLaw,
    space: SearchSpace,
    constraints: Constraints,
    tokens_per_step: int | None,
    notes: list[str],
) -> tuple[tuple[int, int], int]:
    """``((low, high), granularity)`` of the steps searched."""
    cov = law.coverage
    budget, explicit_budget = cov.steps_max, False
    if constraints.max_steps is not None:
        budget, explicit_budget = constraints.max_steps, True
    if constraints.max_tokens is not None:
        token_steps = int(constraints.max_tokens // tokens_per_step)  # type: ignore[operator]
        if token_steps < 10:
            raise InputError(
                f"{param('max_tokens')} {constraints.max_tokens:g} allows only {token_steps} "
                "steps "
                f"of {tokens_per_step} tokens"
            )
        budget = min(budget, token_steps) if explicit_budget else token_steps
        explicit_budget = True
    if space.steps is not None:
        low, high = int(space.steps[0]), int(space.steps[1])
        if explicit_budget and high > budget:
            high = budget
            if low > high:
                raise InputError(
                    f"steps bounds {space.steps[0]}..{space.steps[1]} exceed the step "
                    f"budget ({budget}) of {param('max_steps')}/{param('max_tokens')}"
                )
    else:
        high = budget
        low = min(cov.steps_min, high)
    span = high - low
    granularity = space.step_granularity or max(1, int(round(span / 200)))
    steps = (high - granularity * (span // granularity), high)
    if steps[1] > cov.steps_max:
        notes.append(
            f"steps up to {steps[1]}: beyond the longest pilot ({cov.steps_max}), "
            "such settings are flagged (extrapolation in time)"
        )
    return steps, granularity


def _checkpoints(law: CptLaw, requested: list[str | int] | None) -> list[CheckpointChoice]:
    """Checkpoint names or PT steps -> states (PT steps need a known PT history)."""
    scenario = law.scenario
    pretrain = scenario.history
    if not pretrain.known:
        if requested:
            raise InputError(
                f"{param('checkpoints')} needs the pre-training history, and this law was "
                "fitted without it (black-box mode): the starting point cannot be searched"
            )
        name = scenario.checkpoint_name(None)
        state = scenario.checkpoint_state(name, law.lam)
        return [CheckpointChoice(name, state, None, None, True)]
    pt_lr = np.asarray(pretrain.lr, dtype=float)
    peak = float(pt_lr.max()) if pt_lr.size else 0.0
    by_step = {step: name for name, step in pretrain.checkpoints.items()}
    out: list[CheckpointChoice] = []
    for item in requested or list(law.coverage.checkpoints):
        text = str(item).strip()
        if text in pretrain.checkpoints:
            label, step = text, pretrain.checkpoints[text]
        else:
            try:
                step = int(float(text))
            except ValueError:
                known = ", ".join(pretrain.checkpoints) or "none"
                raise InputError(
                    f"{param('checkpoints')}: {text!r} is neither a PT step nor a known "
                    f"checkpoint ({known})"
                ) from None
            if not 1 <= step <= pt_lr.size:
                raise InputError(
                    f"{param('checkpoints')}: PT step {step} outside the PT history "
                    f"(1..{pt_lr.size})"
                )
            label = by_step.get(step, f"pt{step}")
        state = scenario.state_at(step, law.lam)
        potential = state.lr_last / peak if peak > 0 else None
        if all(c.label != label for c in out):
            piloted = label in law.coverage.checkpoints
            out.append(CheckpointChoice(label, state, step, potential, piloted))
    return out


def resolve_space(
    law: CptLaw, space: SearchSpace, constraints: Constraints, allow_extrapolation: bool
) -> ResolvedSpace:
    """The space to search (see the module docstring); notes say why each range is what it is."""
    notes: list[str] = []
    peak_lr = _peak_lr_range(law, space, allow_extrapolation, notes)
    replay_ratio = _replay_range(law, space, allow_extrapolation, notes)
    tokens_per_step = _tokens_per_step(law, constraints)
    steps, granularity = _step_range(law, space, constraints, tokens_per_step, notes)
    warmup = (float(space.warmup_fraction[0]), float(space.warmup_fraction[1]))
    if warmup[0] == warmup[1]:
        notes.append(
            f"warmup fixed at {warmup[0]:.0%} of the steps: the law has no term that "
            "rewards warmup (it only costs area), so searching it would always pick none"
        )
    families = list(space.families)
    decay = (float(space.decay_fraction[0]), float(space.decay_fraction[1]))
    if "wsd" not in families:
        decay = (0.2, 0.2)
    checkpoints = _checkpoints(law, space.checkpoints)
    if len(checkpoints) > 1:
        described = [
            c.label
            if c.loss_potential is None
            else f"{c.label} (loss potential {c.loss_potential:.0%})"
            for c in checkpoints
        ]
        notes.append("starting checkpoint searched: " + ", ".join(described))
    return ResolvedSpace(
        peak_lr=peak_lr,
        replay_ratio=replay_ratio,
        steps=steps,
        granularity=granularity,
        budget=steps[1],
        families=families,
        warmup_fraction=warmup,
        decay_fraction=decay,
        checkpoints=checkpoints,
        tokens_per_step=tokens_per_step,
        notes=notes,
    )
