"""Choose peak LR, replay ratio, CPT steps and schedule shape (cpt-law.md §6).

Minimise ``w_general * L_general(T) + w_domain * L_domain(T)`` predicted by a fitted law
over a search space whose defaults come from what the pilots covered, under the user's
constraints, with an Optuna study; then cross-check the answer with a dense vectorised
search of the same space.

How a search runs (:func:`recommend`):

1. The space is resolved: peak LR (log scale) boxed to the pilots' range unless
   ``allow_extrapolation`` or explicit bounds say otherwise (the law has no "LR too large"
   regime, §4); replay searched only if the law's replay terms are identifiable; steps up to
   the budget; family, warmup and WSD decay fraction; starting checkpoint.
2. A seed batch of Latin-hypercube settings is evaluated in one vectorised call and added
   to the study with ``Study.add_trials`` (only by the process that creates the study).
3. The sampler (TPE, CMA-ES, GP or QMC) proposes trials in batches (``Study.ask``), each
   batch is evaluated in one vectorised call, and the results and constraint values
   (Optuna's core ``Trial.set_constraint`` API) are told back, until the study holds the
   requested number of complete trials (shared across processes and resumed runs).
4. The study's best feasible trial is polished by a vectorised local grid search, and the
   whole space is searched densely (a vectorised grid, then the same local refinement):
   the relative gap between the two is reported.
5. The recommendation, top-k alternatives, the best pilot-like setting and the rules of
   thumb are assessed on the same objective, with intervals from the law's leave-one-pilot-
   out (jackknife) refits.

Nothing here prints or exits: the CLI (``cptopt recommend``) renders the result models.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cptopt._validation import load_yaml_mapping, parse_weights, pydantic_error_line
from cptopt._version import __version__
from cptopt.exceptions import InfeasibleError, InputError
from cptopt.law.areas import cpt_point_areas
from cptopt.law.fitted import FittedLaw
from cptopt.prediction import RANGE_TOLERANCE, coverage_flags, predict_from_state
from cptopt.schedules import Schedule
from cptopt.search.evaluate import (
    SEARCH_FAMILIES,
    Batch,
    CheckpointChoice,
    Evaluator,
    feasible_mask,
    make_batch,
    shape_schedule,
)
from cptopt.search.storage import (
    CONFIG_ATTR,
    WORKER_ATTR,
    fail_stale_trials,
    open_storage,
    redact,
    storage_url,
    study_lock,
    wait_briefly,
    worker_id,
)

SamplerName = Literal["tpe", "cmaes", "gp", "qmc"]
FamilyName = Literal["cosine", "wsd", "linear", "constant"]

#: Default number of complete trials in the study (seed batch included).
DEFAULT_TRIALS = 128
#: Default size of the vectorised seed batch added with ``add_trials``.
DEFAULT_SEED_TRIALS = 64
#: Trials asked (and evaluated in one vectorised call) per round.
DEFAULT_BATCH = 8
#: ``allow_extrapolation`` widens the pilots' peak-LR range by this factor each way.
EXTRAPOLATION_FACTOR = 3.0
#: Warmup fraction when none is given: the bundled pilots' 2 % re-warmup.
DEFAULT_WARMUP_FRACTION = 0.02
#: WSD decay fraction range when none is given.
DEFAULT_DECAY_FRACTION = (0.1, 0.5)
#: Relative objective gap to the dense optimum above which the result carries a warning.
GAP_TOLERANCE = 1e-4
#: Draws of the Gaussian used for the probability that a candidate is the best.
PROBABILITY_DRAWS = 20_000

Range = tuple[float, float]


def _z(level: float) -> float:
    """Two-sided normal quantile of a central ``level`` interval."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def _as_range(value: Any) -> Any:
    """Accept ``x``, ``[lo, hi]`` or ``"lo,hi"`` for a range (``x`` means fixed at x)."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"{value!r} is not a number or 'low,high'") from None
        value = numbers
    if isinstance(value, (int, float)):
        return (value, value)
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return (value[0], value[0])
        if len(value) != 2:
            raise ValueError(f"a range is 'low,high' (two numbers), got {len(value)} numbers")
        return tuple(value)
    return value


class SearchSpace(BaseModel):
    """What to search. ``None`` means "from the law's coverage"; a single number fixes it.

    Ranges are ``(low, high)``; LRs in raw units, steps in updates.
    """

    model_config = ConfigDict(extra="forbid")

    peak_lr: tuple[float, float] | None = Field(default=None, description="peak LR bounds")
    replay_ratio: tuple[float, float] | None = Field(default=None, description="replay bounds")
    steps: tuple[int, int] | None = Field(default=None, description="CPT steps bounds")
    step_granularity: int | None = Field(
        default=None, ge=1, description="steps are searched on multiples of this"
    )
    families: list[FamilyName] = Field(default_factory=lambda: list(SEARCH_FAMILIES))
    warmup_fraction: tuple[float, float] = (DEFAULT_WARMUP_FRACTION, DEFAULT_WARMUP_FRACTION)
    decay_fraction: tuple[float, float] = DEFAULT_DECAY_FRACTION
    checkpoints: list[str | int] | None = Field(
        default=None, description="checkpoint names or PT steps (default: the pilots')"
    )

    _ranges = field_validator(
        "peak_lr", "replay_ratio", "steps", "warmup_fraction", "decay_fraction", mode="before"
    )(_as_range)

    @field_validator("peak_lr", "replay_ratio", "steps", "warmup_fraction", "decay_fraction")
    @classmethod
    def _ordered(cls, value: tuple | None) -> tuple | None:
        if value is not None:
            if not all(math.isfinite(v) for v in value):
                raise ValueError("bounds must be finite")
            if value[0] > value[1]:
                raise ValueError(f"low {value[0]} > high {value[1]}")
        return value

    @field_validator("peak_lr")
    @classmethod
    def _positive_lr(cls, value: tuple | None) -> tuple | None:
        if value is not None and value[0] <= 0:
            raise ValueError("peak LR bounds must be > 0")
        return value

    @field_validator("replay_ratio")
    @classmethod
    def _fraction(cls, value: tuple | None) -> tuple | None:
        if value is not None and not (value[0] >= 0 and value[1] <= 1):
            raise ValueError("replay ratio bounds must lie in [0, 1]")
        return value

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: tuple | None) -> tuple | None:
        if value is not None and value[0] < 10:
            raise ValueError("steps must be >= 10")
        return value

    @field_validator("warmup_fraction")
    @classmethod
    def _warmup(cls, value: tuple) -> tuple:
        if not (value[0] >= 0 and value[1] <= 0.3):
            raise ValueError("warmup fraction must lie in [0, 0.3]")
        return value

    @field_validator("decay_fraction")
    @classmethod
    def _decay(cls, value: tuple) -> tuple:
        if not (value[0] >= 0.01 and value[1] <= 0.6):
            raise ValueError("WSD decay fraction must lie in [0.01, 0.6]")
        return value

    @field_validator("families")
    @classmethod
    def _families(cls, value: list) -> list:
        if not value:
            raise ValueError("give at least one family")
        return list(dict.fromkeys(value))


class Constraints(BaseModel):
    """Limits a run must respect (all optional)."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int | None = Field(default=None, gt=0, description="at most this many steps")
    tokens_per_step: int | None = Field(
        default=None, gt=0, description="tokens per step of the planned run (default: pilots')"
    )
    max_tokens: float | None = Field(default=None, gt=0, description="token budget")
    domain_tokens: float | None = Field(default=None, gt=0, description="domain data size")
    max_epochs: float | None = Field(default=None, gt=0, description="epochs of domain data")
    max_general_rise: float | None = Field(
        default=None, description="allowed final general loss minus its pre-CPT value (nats)"
    )


class SearchSettings(BaseModel):
    """How to search: sampler, budget, seed and the Optuna storage."""

    model_config = ConfigDict(extra="forbid")

    sampler: SamplerName = "tpe"
    trials: int = Field(default=DEFAULT_TRIALS, ge=1, description="complete trials in the study")
    seed: int = Field(default=0, ge=0)
    storage: str | None = Field(default=None, description="Optuna storage URL")
    study_name: str | None = None
    batch_size: int = Field(default=DEFAULT_BATCH, ge=1, le=256)
    seed_trials: int = Field(default=DEFAULT_SEED_TRIALS, ge=0, le=4096)


class SearchConfig(BaseModel):
    """A search config file (YAML): everything ``cptopt recommend`` takes. CLI flags win."""

    model_config = ConfigDict(extra="forbid")

    law: str | None = None
    weights: str | list[float] | None = None
    allow_extrapolation: bool = False
    space: SearchSpace = Field(default_factory=SearchSpace)
    constraints: Constraints = Field(default_factory=Constraints)
    search: SearchSettings = Field(default_factory=SearchSettings)
    top_k: int = Field(default=5, ge=0, le=50)
    level: float = Field(default=0.9, gt=0, lt=1)
    pareto: bool = False


def load_search_config(path: str | Path) -> SearchConfig:
    """Read and validate a search config YAML (unknown keys rejected, one-line errors)."""
    data = load_yaml_mapping(str(path))
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as exc:
        raise InputError(pydantic_error_line(str(path), exc)) from None


# -- result models ----------------------------------------------------------------------


class Setting(BaseModel):
    """One CPT configuration (LR raw units; steps = updates)."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str
    family: str
    peak_lr: float
    replay_ratio: float
    steps: int
    warmup_fraction: float
    decay_fraction: float | None = None

    def schedule(self) -> Schedule:
        return shape_schedule(
            self.family,
            self.steps,
            self.warmup_fraction,
            self.decay_fraction or 0.2,
            self.peak_lr,
        )

    def describe(self) -> str:
        schedule = self.schedule().describe()
        return f"{schedule}, replay {self.replay_ratio:.3g}, from '{self.checkpoint}'"


class Assessment(BaseModel):
    """A setting with what the law predicts for it."""

    model_config = ConfigDict(extra="forbid")

    label: str
    setting: Setting | None = None
    schedule: str
    objective: float
    objective_lower: float = Field(description="interval from the fit's uncertainty only")
    objective_upper: float
    objective_se: float = Field(description="jackknife standard error of the objective")
    general: float
    general_lower: float
    general_upper: float
    general_initial: float
    domain: float
    domain_lower: float
    domain_upper: float
    domain_initial: float
    general_rise: float = Field(description="final general loss minus its pre-CPT value")
    general_turning_step: int | None = Field(
        description="first step the general loss is back at its pre-CPT value (None: never "
        "within the run; 0: it never rises)"
    )
    general_recovers: bool = Field(description="general loss back at its start by the end")
    tokens: float | None = None
    domain_epochs: float | None = None
    feasible: bool = True
    violations: list[str] = Field(default_factory=list)
    in_range: bool
    flags: list[str]


class SpaceReport(BaseModel):
    """The space actually searched and why each dimension is what it is."""

    model_config = ConfigDict(extra="forbid")

    peak_lr: tuple[float, float]
    replay_ratio: tuple[float, float]
    steps: tuple[int, int]
    step_granularity: int
    families: list[str]
    warmup_fraction: tuple[float, float]
    decay_fraction: tuple[float, float]
    checkpoints: list[str]
    tokens_per_step: int | None
    notes: list[str]


class SearchStats(BaseModel):
    """How the search went, and the dense cross-check."""

    model_config = ConfigDict(extra="forbid")

    sampler: str
    seed: int
    trials_requested: int
    trials_complete: int
    trials_this_process: int
    seed_trials_added: int
    storage: str | None
    study_name: str
    resumed: bool
    search_seconds: float
    trials_per_second: float | None
    study_best_objective: float | None
    recommended_objective: float
    dense_objective: float
    dense_points: int
    dense_gap: float = Field(description="(recommended - dense) / |dense|; <= 0 is no worse")
    polished_gap: float | None = Field(
        description="(study best after the local polish - dense) / |dense|"
    )
    study_gap: float | None = Field(description="(study best - dense) / |dense| before polish")
    recommendation_source: str


class ParetoPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    w_general: float
    w_domain: float
    setting: Setting
    general: float
    domain: float
    in_range: bool
    flags: list[str]


class Recommendation(BaseModel):
    """The result of :func:`recommend`."""

    model_config = ConfigDict(extra="forbid")

    cptopt_version: str = __version__
    law_digest: str = Field(description="SHA-256 (first 16 hex) of the law file's content")
    weights: tuple[float, float]
    level: float
    constraints: Constraints
    space: SpaceReport
    search: SearchStats
    recommended: Assessment
    alternatives: list[Assessment]
    baselines: list[Assessment]
    pareto: list[ParetoPoint] | None = None
    notes: list[str]


class CandidateScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int
    name: str
    assessment: Assessment
    probability_best: float


class CandidateRanking(BaseModel):
    """The result of :func:`rank_candidates`."""

    model_config = ConfigDict(extra="forbid")

    cptopt_version: str = __version__
    weights: tuple[float, float]
    level: float
    method: str
    candidates: list[CandidateScore]
    notes: list[str]


# -- space resolution -------------------------------------------------------------------


class _Space:
    """The resolved space (bounds, fixed dimensions, checkpoints) and its Optuna form."""

    def __init__(
        self,
        law: FittedLaw,
        space: SearchSpace,
        constraints: Constraints,
        allow_extrapolation: bool,
    ) -> None:
        cov = law.coverage
        self.notes: list[str] = []
        # peak LR
        if space.peak_lr is not None:
            self.lr = (float(space.peak_lr[0]), float(space.peak_lr[1]))
        elif allow_extrapolation:
            self.lr = (
                cov.peak_lr_min / EXTRAPOLATION_FACTOR,
                cov.peak_lr_max * EXTRAPOLATION_FACTOR,
            )
            self.notes.append(
                f"peak LR searched {EXTRAPOLATION_FACTOR:g}x beyond the pilots' range "
                "(--allow-extrapolation): the law has no 'LR too large' regime, so settings "
                "outside the pilots' range are flagged and less trustworthy"
            )
        else:
            self.lr = (cov.peak_lr_min, cov.peak_lr_max)
        low_tol = cov.peak_lr_min * (1 - RANGE_TOLERANCE)
        high_tol = cov.peak_lr_max * (1 + RANGE_TOLERANCE)
        if space.peak_lr is not None and (self.lr[0] < low_tol or self.lr[1] > high_tol):
            self.notes.append(
                f"explicit peak LR bounds {self.lr[0]:.3g}..{self.lr[1]:.3g} go beyond the "
                f"pilots' {cov.peak_lr_min:.3g}..{cov.peak_lr_max:.3g}: extrapolation"
            )
        # replay
        ratios = sorted(cov.replay_ratios)
        if not law.replay_terms:
            if space.replay_ratio is not None and (
                abs(space.replay_ratio[0] - ratios[0]) > 1e-9
                or abs(space.replay_ratio[1] - ratios[0]) > 1e-9
            ):
                raise InputError(
                    f"replay ratio cannot be searched: the pilots use the single ratio "
                    f"{ratios[0]:g}, so the law's replay terms are not identifiable "
                    "(refit with pilots at >= 2 replay ratios)"
                )
            self.replay = (ratios[0], ratios[0])
            self.notes.append(
                f"replay fixed at {ratios[0]:g}: the pilots use a single replay ratio, so the "
                "law cannot predict other ratios (its replay terms are not identifiable)"
            )
        elif space.replay_ratio is not None:
            self.replay = (float(space.replay_ratio[0]), float(space.replay_ratio[1]))
            if self.replay[0] < ratios[0] - 1e-9 or self.replay[1] > ratios[-1] + 1e-9:
                self.notes.append(
                    f"replay bounds {self.replay[0]:g}..{self.replay[1]:g} go beyond the "
                    f"pilots' {ratios[0]:g}..{ratios[-1]:g}: extrapolation"
                )
        elif allow_extrapolation:
            self.replay = (0.0, 1.0)
        else:
            self.replay = (ratios[0], ratios[-1])
        # tokens per step
        self.tokens_per_step = constraints.tokens_per_step or (
            cov.tokens_per_step[0] if len(cov.tokens_per_step) == 1 else None
        )
        if constraints.max_tokens is not None and not self.tokens_per_step:
            raise InputError(
                "--max-tokens needs --tokens-per-step (the pilots do not share one value)"
            )
        if (constraints.max_epochs is None) != (constraints.domain_tokens is None):
            raise InputError("--max-epochs and --domain-tokens go together: give both or neither")
        if constraints.domain_tokens is not None and not self.tokens_per_step:
            raise InputError("--domain-tokens needs --tokens-per-step")
        # steps
        budget = cov.steps_max
        explicit_budget = False
        if constraints.max_steps is not None:
            budget, explicit_budget = constraints.max_steps, True
        if constraints.max_tokens is not None:
            token_steps = int(constraints.max_tokens // self.tokens_per_step)  # type: ignore[operator]
            if token_steps < 10:
                raise InputError(
                    f"--max-tokens {constraints.max_tokens:g} allows only {token_steps} steps "
                    f"of {self.tokens_per_step} tokens"
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
                        f"budget ({budget}) of --max-steps/--max-tokens"
                    )
        else:
            high = budget
            low = min(cov.steps_min, high)
        self.budget = high
        span = high - low
        granularity = space.step_granularity or max(1, int(round(span / 200)))
        self.granularity = granularity
        self.steps = (high - granularity * (span // granularity), high)
        if self.steps[1] > cov.steps_max:
            self.notes.append(
                f"steps up to {self.steps[1]}: beyond the longest pilot ({cov.steps_max}), "
                "such settings are flagged (extrapolation in time)"
            )
        # shape
        self.families = [f for f in space.families]
        self.warmup = (float(space.warmup_fraction[0]), float(space.warmup_fraction[1]))
        if self.warmup[0] == self.warmup[1]:
            self.notes.append(
                f"warmup fixed at {self.warmup[0]:.0%} of the steps: the law has no term that "
                "rewards warmup (it only costs area), so searching it would always pick none"
            )
        self.decay = (float(space.decay_fraction[0]), float(space.decay_fraction[1]))
        if "wsd" not in self.families:
            self.decay = (0.2, 0.2)
        # checkpoints
        self.checkpoints = _resolve_checkpoints(law, space.checkpoints)
        if len(self.checkpoints) > 1:
            self.notes.append(
                "starting checkpoint searched: "
                + ", ".join(
                    f"{c.label} (loss potential {c.loss_potential:.0%})"
                    if c.loss_potential is not None
                    else c.label
                    for c in self.checkpoints
                )
            )

    # which dimensions vary
    def varying(self) -> dict[str, bool]:
        return {
            "peak_lr": self.lr[0] < self.lr[1],
            "replay": self.replay[0] < self.replay[1],
            "steps": self.steps[0] < self.steps[1],
            "family": len(self.families) > 1,
            "warmup_fraction": self.warmup[0] < self.warmup[1],
            "decay_fraction": self.decay[0] < self.decay[1] and "wsd" in self.families,
            "checkpoint": len(self.checkpoints) > 1,
        }

    def distributions(self) -> dict[str, Any]:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        vary = self.varying()
        out: dict[str, Any] = {}
        if vary["peak_lr"]:
            out["peak_lr"] = FloatDistribution(self.lr[0], self.lr[1], log=True)
        if vary["replay"]:
            out["replay_ratio"] = FloatDistribution(*self.replay)
        if vary["steps"]:
            out["steps"] = IntDistribution(self.steps[0], self.steps[1], step=self.granularity)
        if vary["family"]:
            out["family"] = CategoricalDistribution(self.families)
        if vary["warmup_fraction"]:
            out["warmup_fraction"] = FloatDistribution(*self.warmup)
        if vary["decay_fraction"]:
            out["decay_fraction"] = FloatDistribution(*self.decay)
        if vary["checkpoint"]:
            out["checkpoint"] = CategoricalDistribution([c.label for c in self.checkpoints])
        return out

    def family_index(self, name: str) -> int:
        return SEARCH_FAMILIES.index(name)

    def batch_from_params(self, params: Sequence[dict[str, Any]]) -> Batch:
        """Optuna params (missing = fixed dimension) -> a :class:`Batch`."""
        labels = [c.label for c in self.checkpoints]

        def column(name: str, default: Any) -> list:
            return [p.get(name, default) for p in params]

        return make_batch(
            checkpoint=np.array([labels.index(v) for v in column("checkpoint", labels[0])]),
            family=np.array(
                [self.family_index(v) for v in column("family", self.families[0])], dtype=int
            ),
            warmup_fraction=np.array(column("warmup_fraction", self.warmup[0]), dtype=float),
            decay_fraction=np.array(column("decay_fraction", self.decay[0]), dtype=float),
            steps=np.array(column("steps", self.steps[1]), dtype=int),
            peak_lr=np.array(column("peak_lr", self.lr[1]), dtype=float),
            replay=np.array(column("replay_ratio", self.replay[0]), dtype=float),
        )

    def params_of(self, batch: Batch, index: int) -> dict[str, Any]:
        """Optuna params of one setting (varying dimensions only)."""
        row = batch.row(index)
        vary = self.varying()
        out: dict[str, Any] = {}
        if vary["peak_lr"]:
            out["peak_lr"] = float(np.clip(row["peak_lr"], *self.lr))
        if vary["replay"]:
            out["replay_ratio"] = float(np.clip(row["replay"], *self.replay))
        if vary["steps"]:
            out["steps"] = int(row["steps"])
        if vary["family"]:
            out["family"] = SEARCH_FAMILIES[int(row["family"])]
        if vary["warmup_fraction"]:
            out["warmup_fraction"] = float(np.clip(row["warmup_fraction"], *self.warmup))
        if vary["decay_fraction"]:
            out["decay_fraction"] = float(np.clip(row["decay_fraction"], *self.decay))
        if vary["checkpoint"]:
            out["checkpoint"] = self.checkpoints[int(row["checkpoint"])].label
        return out

    def setting(self, batch: Batch, index: int) -> Setting:
        row = batch.row(index)
        family = SEARCH_FAMILIES[int(row["family"])]
        return Setting(
            checkpoint=self.checkpoints[int(row["checkpoint"])].label,
            family=family,
            peak_lr=float(row["peak_lr"]),
            replay_ratio=float(row["replay"]),
            steps=int(row["steps"]),
            warmup_fraction=float(row["warmup_fraction"]),
            decay_fraction=float(row["decay_fraction"]) if family == "wsd" else None,
        )

    # grids
    def sobol(self, n: int, seed: int) -> Batch:
        """``n`` settings spread over the space (a Latin hypercube: each dimension stratified)."""
        dims = ["peak_lr", "replay", "steps", "family", "warmup", "decay", "checkpoint"]
        rng = np.random.default_rng(seed)
        n = max(n, 1)
        strata = np.stack([rng.permutation(n) for _ in dims], axis=1)
        u = (strata + rng.random((n, len(dims)))) / n
        col = dict(zip(dims, u.T, strict=True))
        log_lr = np.log(self.lr[0]) + col["peak_lr"] * (np.log(self.lr[1]) - np.log(self.lr[0]))
        n_steps = (self.steps[1] - self.steps[0]) // self.granularity
        steps = self.steps[0] + self.granularity * np.minimum(
            np.floor(col["steps"] * (n_steps + 1)), n_steps
        ).astype(int)
        families = np.array([self.family_index(f) for f in self.families])
        family = families[
            np.minimum((col["family"] * len(families)).astype(int), len(families) - 1)
        ]
        checkpoint = np.minimum(
            (col["checkpoint"] * len(self.checkpoints)).astype(int), len(self.checkpoints) - 1
        )
        return make_batch(
            checkpoint=checkpoint,
            family=family,
            warmup_fraction=self.warmup[0] + col["warmup"] * (self.warmup[1] - self.warmup[0]),
            decay_fraction=self.decay[0] + col["decay"] * (self.decay[1] - self.decay[0]),
            steps=steps,
            peak_lr=np.clip(np.exp(log_lr), *self.lr),
            replay=self.replay[0] + col["replay"] * (self.replay[1] - self.replay[0]),
        )

    def grid(self, resolution: dict[str, int]) -> Batch:
        """A full-factorial grid of the space (``resolution`` points per continuous dim)."""
        vary = self.varying()

        def axis(name: str, low: float, high: float, log: bool = False) -> np.ndarray:
            if not vary[name]:
                return np.array([low])
            if log:
                return np.geomspace(low, high, resolution[name])
            return np.linspace(low, high, resolution[name])

        lr = axis("peak_lr", *self.lr, log=True)
        replay = axis("replay", *self.replay)
        all_steps = np.arange(self.steps[0], self.steps[1] + 1, self.granularity)
        if all_steps.size > resolution["steps"]:
            pick = np.unique(np.linspace(0, all_steps.size - 1, resolution["steps"]).round())
            all_steps = all_steps[pick.astype(int)]
        warmup = axis("warmup_fraction", *self.warmup)
        decay = axis("decay_fraction", *self.decay)
        parts = []
        for ck in range(len(self.checkpoints)):
            for family in self.families:
                decays = decay if family == "wsd" else np.array([self.decay[0]])
                grids = np.meshgrid(lr, replay, all_steps, warmup, decays, indexing="ij")
                parts.append(
                    make_batch(
                        checkpoint=ck,
                        family=self.family_index(family),
                        warmup_fraction=grids[3],
                        decay_fraction=grids[4],
                        steps=grids[2],
                        peak_lr=grids[0],
                        replay=grids[1],
                    )
                )
        return Batch.concatenate(parts)

    def describe(self) -> SpaceReport:
        return SpaceReport(
            peak_lr=self.lr,
            replay_ratio=self.replay,
            steps=self.steps,
            step_granularity=self.granularity,
            families=self.families,
            warmup_fraction=self.warmup,
            decay_fraction=self.decay,
            checkpoints=[c.label for c in self.checkpoints],
            tokens_per_step=self.tokens_per_step,
            notes=self.notes,
        )

    def fingerprint(self) -> dict[str, Any]:
        report = self.describe().model_dump()
        report.pop("notes")
        return report


def _resolve_checkpoints(
    law: FittedLaw, requested: list[str | int] | None
) -> list[CheckpointChoice]:
    """Checkpoint names or PT steps -> states (PT steps need a known PT history)."""
    pretrain = law.pretrain
    if not pretrain.known:
        if requested:
            raise InputError(
                "--checkpoints needs the pre-training history, and this law was fitted "
                "without it (black-box mode): the starting point cannot be searched"
            )
        name, state = law.checkpoint_state(None)
        return [CheckpointChoice(name, state, None, None, True)]
    history = pretrain.history()
    areas = history.areas(law.lam)
    pt_lr = np.asarray(pretrain.lr, dtype=float)
    peak = float(pt_lr.max()) if pt_lr.size else 0.0
    by_step = {step: name for name, step in pretrain.checkpoints.items()}
    if not requested:
        requested = list(law.coverage.checkpoints)
    out: list[CheckpointChoice] = []
    for item in requested:
        text = str(item).strip()
        if text in pretrain.checkpoints:
            label, step = text, pretrain.checkpoints[text]
        else:
            try:
                step = int(float(text))
            except ValueError:
                known = ", ".join(pretrain.checkpoints) or "none"
                raise InputError(
                    f"--checkpoints: {text!r} is neither a PT step nor a known checkpoint ({known})"
                ) from None
            if not 1 <= step <= pt_lr.size:
                raise InputError(
                    f"--checkpoints: PT step {step} outside the PT history (1..{pt_lr.size})"
                )
            label = by_step.get(step, f"pt{step}")
        state = areas.state_at(step)
        potential = state.lr_last / peak if peak > 0 else None
        piloted = label in law.coverage.checkpoints
        if all(c.label != label for c in out):
            out.append(CheckpointChoice(label, state, step, potential, piloted))
    return out


# -- assessment -------------------------------------------------------------------------


def _objective_stats(
    evaluator: Evaluator, batch: Batch
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Objective of the fitted law, its jackknife standard error, and the replica matrix."""
    _, _, objective = evaluator.losses(batch, replicas=True)
    central = objective[0]
    replicas = objective[1:]
    n = replicas.shape[0]
    if n >= 2:
        se = np.sqrt((n - 1) / n * ((replicas - replicas.mean(axis=0)) ** 2).sum(axis=0))
    else:
        se = np.zeros_like(central)
    return central, se, replicas


def _assess(
    law: FittedLaw,
    evaluator: Evaluator,
    label: str,
    schedule: Schedule,
    replay_ratio: float,
    checkpoint: CheckpointChoice,
    objective: float,
    objective_se: float,
    violations: list[str],
    level: float,
    tokens_per_step: int | None,
    setting: Setting | None,
) -> Assessment:
    z = _z(level)
    steps = schedule.n_steps
    prediction = predict_from_state(
        law,
        schedule,
        replay_ratio,
        checkpoint.label,
        checkpoint.state,
        steps=[0, steps],
        tokens_per_step=tokens_per_step,
        level=level,
        require_positive=False,
    )
    finals = (prediction.general.final, prediction.domain.final)
    invalid = []
    if not (np.isfinite(finals).all() and min(finals) > 0):
        invalid = ["the law predicts a non-positive loss here: far outside what it can predict"]
    flags = invalid + coverage_flags(
        law,
        peak_lr=schedule.peak,
        replay_ratio=replay_ratio,
        steps=steps,
        checkpoint=checkpoint.label,
        tokens_per_step=tokens_per_step,
    )
    tokens = steps * tokens_per_step if tokens_per_step else None
    epochs = None
    if evaluator.domain_tokens and tokens_per_step:
        epochs = (1 - replay_ratio) * steps * tokens_per_step / evaluator.domain_tokens
    general, domain = prediction.general, prediction.domain
    turning = prediction.general_turning_step
    return Assessment(
        label=label,
        setting=setting,
        schedule=f"{schedule.describe()}, replay {replay_ratio:.3g}, from '{checkpoint.label}'",
        objective=objective,
        objective_lower=objective - z * objective_se,
        objective_upper=objective + z * objective_se,
        objective_se=objective_se,
        general=general.final,
        general_lower=general.final_lower,
        general_upper=general.final_upper,
        general_initial=general.initial,
        domain=domain.final,
        domain_lower=domain.final_lower,
        domain_upper=domain.final_upper,
        domain_initial=domain.initial,
        general_rise=prediction.general_rise,
        general_turning_step=turning,
        general_recovers=turning is not None,
        tokens=tokens,
        domain_epochs=epochs,
        feasible=not violations,
        violations=violations,
        in_range=not flags,
        flags=flags,
    )


def _violation_text(name: str, value: float, constraints: Constraints) -> str:
    if name == "max_epochs":
        return f"domain epochs exceed --max-epochs {constraints.max_epochs:g} by {value:.3g}"
    if name == "max_general_rise":
        return (
            f"general loss rises {value:.4f} nats more than --max-general-rise "
            f"{constraints.max_general_rise:g}"
        )
    if name == "max_steps":
        return f"{value:.0f} steps over --max-steps {constraints.max_steps}"
    if name == "max_tokens":
        return f"{value:.3g} tokens over --max-tokens {constraints.max_tokens:g}"
    return "the law predicts a non-positive loss here"


def _assess_batch(
    law: FittedLaw,
    evaluator: Evaluator,
    space: _Space,
    batch: Batch,
    labels: list[str],
    constraints: Constraints,
    level: float,
) -> list[Assessment]:
    central, se, _ = _objective_stats(evaluator, batch)
    general, domain, _ = evaluator.losses(batch)
    violations = evaluator.violations(batch, general, domain)
    out = []
    for i, label in enumerate(labels):
        setting = space.setting(batch, i)
        broken = [
            _violation_text(name, float(values[i]), constraints)
            for name, values in violations.items()
            if values[i] > 0
        ]
        out.append(
            _assess(
                law,
                evaluator,
                label,
                setting.schedule(),
                setting.replay_ratio,
                space.checkpoints[int(batch.checkpoint[i])],
                float(central[i]),
                float(se[i]),
                broken,
                level,
                space.tokens_per_step,
                setting,
            )
        )
    return out


# -- local refinement and dense search --------------------------------------------------


def _refine(
    evaluator: Evaluator,
    space: _Space,
    start: Batch,
    rounds: int = 40,
    points: int = 5,
    initial_share: float = 0.25,
    keep: int = 4,
    tolerance: float = 1e-5,
) -> tuple[Batch, float]:
    """Vectorised pattern search around each setting of ``start`` (family fixed).

    Each round evaluates, for every incumbent, a ``points``-per-dimension grid centred on it
    over the varying continuous dimensions (log peak LR, replay, steps, warmup, decay), all
    incumbents in one vectorised call. An incumbent that improves keeps its step (so it can
    walk along a constraint boundary); one that does not halves it. After three rounds only
    the ``keep`` best incumbents go on. Infeasible points count as +inf. Stops when every
    step is below ``tolerance`` (a share of each range) or after ``rounds``.
    """
    vary = space.varying()
    dims = []
    if vary["peak_lr"]:
        dims.append(("peak_lr", np.log(space.lr[0]), np.log(space.lr[1]), True))
    if vary["replay"]:
        dims.append(("replay", space.replay[0], space.replay[1], False))
    if vary["steps"]:
        dims.append(("steps", float(space.steps[0]), float(space.steps[1]), False))
    if vary["warmup_fraction"]:
        dims.append(("warmup_fraction", space.warmup[0], space.warmup[1], False))
    if vary["decay_fraction"]:
        dims.append(("decay_fraction", space.decay[0], space.decay[1], False))
    best_batch = start
    _, _, objective, violations = evaluator.evaluate(start)
    best_value = np.where(feasible_mask(violations, len(start)), objective, np.inf)
    if not dims:
        i = int(np.argmin(best_value))
        return start.take(np.array([i])), float(best_value[i])
    spans = np.array([high - low for _, low, high, _ in dims])
    share = np.full(len(start), initial_share)
    offsets = np.linspace(-1.0, 1.0, points)
    mesh = np.stack(np.meshgrid(*([offsets] * len(dims)), indexing="ij"), axis=-1).reshape(
        -1, len(dims)
    )
    for round_ in range(rounds):
        if round_ == 3 and len(best_batch) > keep:
            order = np.argsort(best_value)[:keep]
            best_batch, best_value, share = best_batch.take(order), best_value[order], share[order]
        if (share < tolerance).all():
            break
        parts = []
        for i in range(len(best_batch)):
            row = best_batch.row(i)
            columns: dict[str, Any] = dict(row)
            for d, (name, low, high, log) in enumerate(dims):
                centre = np.log(row["peak_lr"]) if log else float(row[name])
                values = np.clip(centre + mesh[:, d] * share[i] * spans[d], low, high)
                if name == "peak_lr":
                    values = np.clip(np.exp(values), *space.lr)
                elif name == "steps":
                    g = space.granularity
                    values = space.steps[0] + g * np.round((values - space.steps[0]) / g)
                    values = np.clip(values, space.steps[0], space.steps[1]).astype(int)
                columns[name] = values
            if SEARCH_FAMILIES[int(row["family"])] != "wsd":
                columns["decay_fraction"] = row["decay_fraction"]
            parts.append(make_batch(**columns))
        everything = Batch.concatenate(parts)
        _, _, objective, violations = evaluator.evaluate(everything)
        objective = np.where(feasible_mask(violations, len(everything)), objective, np.inf)
        objective = objective.reshape(len(parts), -1)
        for i in range(len(parts)):
            j = int(np.argmin(objective[i]))
            if objective[i, j] < best_value[i]:
                best_value[i] = objective[i, j]
                best_batch = _replace_row(best_batch, i, parts[i].row(j))
            else:
                share[i] /= 2.0
    i = int(np.argmin(best_value))
    return best_batch.take(np.array([i])), float(best_value[i])


def _replace_row(batch: Batch, index: int, row: dict[str, Any]) -> Batch:
    columns = {name: np.array(getattr(batch, name)) for name in row}
    for name, value in row.items():
        columns[name][index] = value
    return Batch(**columns)


def _dense_search(
    evaluator: Evaluator, space: _Space, starts_per_family: int = 2
) -> tuple[Batch, float, int, dict[str, np.ndarray]]:
    """Grid over the whole space, then local refinement of the best grid points."""
    resolution = _dense_resolution(space)
    grid = space.grid(resolution)
    general, domain, objective, violations = evaluator.evaluate(grid)
    feasible = feasible_mask(violations, len(grid))
    if not feasible.any():
        raise InfeasibleError(_infeasible_message(violations, evaluator))
    masked = np.where(feasible, objective, np.inf)
    starts = []
    keys = grid.checkpoint * len(SEARCH_FAMILIES) + grid.family
    for key in np.unique(keys):
        members = np.flatnonzero((keys == key) & feasible)
        if members.size:
            order = members[np.argsort(masked[members])[:starts_per_family]]
            starts.extend(order.tolist())
    best, value = _refine(evaluator, space, grid.take(np.array(starts)))
    stats = {"general": general, "domain": domain, "objective": masked}
    return best, value, len(grid), stats


#: Points of the dense grid (before refinement) the resolution aims at.
DENSE_POINTS = 150_000


def _dense_resolution(space: _Space) -> dict[str, int]:
    """Points per dimension so that the full-factorial grid has about ``DENSE_POINTS``."""
    vary = space.varying()
    resolution = {"steps": 21, "warmup_fraction": 5, "decay_fraction": 9}
    n_steps = min(resolution["steps"], (space.steps[1] - space.steps[0]) // space.granularity + 1)
    shapes = len(space.checkpoints) * (
        len(space.families) - 1 + (resolution["decay_fraction"] if vary["decay_fraction"] else 1)
        if "wsd" in space.families
        else len(space.families)
    )
    shapes *= n_steps * (resolution["warmup_fraction"] if vary["warmup_fraction"] else 1)
    continuous = int(vary["peak_lr"]) + int(vary["replay"])
    per_dim = 41
    if continuous:
        per_dim = int((DENSE_POINTS / max(shapes, 1)) ** (1 / continuous))
        per_dim = int(np.clip(per_dim, 9, 101))
    resolution.update({"peak_lr": per_dim, "replay": per_dim})
    return resolution


def _infeasible_message(violations: dict[str, np.ndarray], evaluator: Evaluator) -> str:
    parts = []
    for name, values in violations.items():
        smallest = float(values.min())
        if smallest > 0:
            parts.append(f"{name} (missed by at least {smallest:.4g})")
        else:
            parts.append(f"{name} (satisfiable alone)")
    return (
        "no setting in the search space satisfies the constraints: "
        + ", ".join(parts)
        + "; loosen them or widen the space"
    )


# -- Optuna -----------------------------------------------------------------------------


@contextlib.contextmanager
def _optuna_quiet(verbose: bool) -> Iterator[None]:
    """Silence Optuna's log lines and warnings unless ``verbose``."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.INFO if verbose else logging.ERROR)
    with warnings.catch_warnings():
        if not verbose:
            warnings.simplefilter("ignore")
        try:
            yield
        finally:
            optuna.logging.set_verbosity(previous)


def make_sampler(name: str, seed: int) -> Any:
    """An Optuna sampler by name (``tpe``, ``cmaes``, ``gp``, ``qmc``), seeded."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ModuleNotFoundError:
            raise InputError(
                "--sampler cmaes needs the 'cmaes' package (pip install cmaes)"
            ) from None
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        try:
            import torch  # noqa: F401
        except ModuleNotFoundError:
            raise InputError(
                "--sampler gp needs PyTorch (pip install torch); use tpe, cmaes or qmc"
            ) from None
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
    raise InputError(f"--sampler == {name!r}, must be one of tpe, cmaes, gp, qmc")


def _study_name(fingerprint: dict[str, Any]) -> str:
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return "cptopt-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def _law_digest(law: FittedLaw) -> str:
    return hashlib.sha256(law.model_dump_json().encode()).hexdigest()[:16]


def _open_study(
    url: str | None, name: str, fingerprint: dict[str, Any], sampler: Any
) -> tuple[Any, bool, bool]:
    """``(study, created, resumed)``; the creator of a new study is the one that seeds it."""
    import optuna

    if url is None:
        return optuna.create_study(sampler=sampler, study_name=name), True, False
    storage = open_storage(url)
    try:
        study = optuna.create_study(
            storage=storage, sampler=sampler, study_name=name, load_if_exists=False
        )
        study.set_user_attr(CONFIG_ATTR, fingerprint)
        return study, True, False
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(storage=storage, sampler=sampler, study_name=name)
    stored = study.user_attrs.get(CONFIG_ATTR)
    for _ in range(40):  # the creator writes the attribute right after creating the study
        if stored is not None:
            break
        wait_briefly()
        stored = optuna.load_study(storage=storage, study_name=name).user_attrs.get(CONFIG_ATTR)
    if stored is not None and json.loads(json.dumps(stored)) != json.loads(
        json.dumps(fingerprint, default=str)
    ):
        differing = sorted(
            k
            for k in set(stored) | set(fingerprint)
            if stored.get(k) != _jsonable(fingerprint.get(k))
        )
        raise InputError(
            f"study '{name}' in {redact(url)} was created with other settings "
            f"({', '.join(differing)}); use another --study-name"
        )
    return study, False, True


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _run_study(
    study: Any,
    url: str | None,
    name: str,
    space: _Space,
    evaluator: Evaluator,
    trials: int,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Ask/evaluate/tell in vectorised batches until the study holds ``trials`` complete."""
    from optuna.trial import TrialState

    distributions = space.distributions()
    names = evaluator.constraint_names()
    shared = url is not None
    me = worker_id()
    done_here = 0
    check_stale = shared
    while True:
        with study_lock(url, name):
            if check_stale:  # at the start, and whenever others' running trials block us
                fail_stale_trials(study)
                check_stale = False
            states = [t.state for t in study.get_trials(deepcopy=False)]
            complete = sum(s == TrialState.COMPLETE for s in states)
            running = sum(s == TrialState.RUNNING for s in states)
            remaining = trials - complete - running
            asked = []
            if remaining > 0:
                for _ in range(min(batch_size, remaining)):
                    trial = study.ask(fixed_distributions=distributions)
                    if shared:
                        trial.set_user_attr(WORKER_ATTR, me)
                    asked.append(trial)
        if progress is not None:
            progress(complete, trials)
        if not asked:
            if running == 0:
                break
            wait_briefly()
            check_stale = True
            continue
        batch = space.batch_from_params([t.params for t in asked])
        general, domain, objective, violations = evaluator.evaluate(batch)
        for i, trial in enumerate(asked):
            trial.set_user_attr("general", float(general[i]))
            trial.set_user_attr("domain", float(domain[i]))
            for cname in names:
                trial.set_constraint(cname, float(violations[cname][i]))
            study.tell(trial, float(objective[i]))
        done_here += len(asked)
    return done_here


def _seed_study(study: Any, space: _Space, evaluator: Evaluator, n: int, seed: int) -> int:
    """Evaluate ``n`` space-filling settings in one call and add them as complete trials."""
    if n <= 0:
        return 0
    import optuna

    batch = space.sobol(n, seed)
    general, domain, objective, violations = evaluator.evaluate(batch)
    distributions = space.distributions()
    trials = []
    for i in range(len(batch)):
        trials.append(
            optuna.trial.create_trial(
                params=space.params_of(batch, i),
                distributions=distributions,
                value=float(objective[i]),
                user_attrs={"general": float(general[i]), "domain": float(domain[i]), "seed": True},
                constraints={k: float(v[i]) for k, v in violations.items()} or None,
            )
        )
    study.add_trials(trials)
    return len(trials)


def _study_best(study: Any, space: _Space, per_group: int = 2) -> tuple[Batch, float] | None:
    """The ``per_group`` best feasible trials of each (family, checkpoint), best value overall."""
    from optuna.trial import TrialState

    groups: dict[tuple, list[Any]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if any(v > 0 for v in trial.constraints.values()):
            continue
        key = (trial.params.get("family"), trial.params.get("checkpoint"))
        groups.setdefault(key, []).append(trial)
    if not groups:
        return None
    chosen: dict[int, Any] = {}
    for trials in groups.values():
        for trial in sorted(trials, key=lambda t: t.value)[:per_group]:
            chosen[trial.number] = trial
    everything = sorted((t for ts in groups.values() for t in ts), key=lambda t: t.value)
    for trial in everything[:8]:
        chosen[trial.number] = trial
    chosen = sorted(chosen.values(), key=lambda t: t.value)  # type: ignore[assignment]
    return space.batch_from_params([t.params for t in chosen]), float(chosen[0].value)


def _study_top(study: Any, space: _Space, k: int) -> Batch | None:
    from optuna.trial import TrialState

    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if all(v <= 0 for v in t.constraints.values())
    ]
    trials.sort(key=lambda t: t.value)
    if not trials:
        return None
    return space.batch_from_params([t.params for t in trials[: max(k * 8, 1)]])


def _distinct(
    space: _Space, batch: Batch, objective: np.ndarray, k: int, exclude: Batch
) -> list[int]:
    """Indices of up to ``k`` settings that differ clearly from each other and ``exclude``."""
    chosen_rows = [exclude.row(i) for i in range(len(exclude))]
    out: list[int] = []
    for i in np.argsort(objective):
        if not np.isfinite(objective[i]):
            continue
        row = batch.row(int(i))
        if all(not _close(row, other) for other in chosen_rows):
            out.append(int(i))
            chosen_rows.append(row)
        if len(out) >= k:
            break
    return out


def _close(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["family"] != b["family"] or a["checkpoint"] != b["checkpoint"]:
        return False
    return (
        abs(math.log(a["peak_lr"] / b["peak_lr"])) < 0.05
        and abs(a["replay"] - b["replay"]) < 0.02
        and abs(a["steps"] - b["steps"]) <= max(0.05 * b["steps"], 1)
        and (
            SEARCH_FAMILIES[a["family"]] != "wsd"
            or abs(a["decay_fraction"] - b["decay_fraction"]) < 0.05
        )
    )


# -- public API -------------------------------------------------------------------------


def recommend(
    law: FittedLaw,
    weights: str | Sequence[float] = (0.5, 0.5),
    *,
    space: SearchSpace | None = None,
    constraints: Constraints | None = None,
    settings: SearchSettings | None = None,
    allow_extrapolation: bool = False,
    top_k: int = 5,
    level: float = 0.9,
    pareto: bool = False,
    verbose: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Recommendation:
    """Search the CPT settings that minimise ``w_g * L_general(T) + w_d * L_domain(T)``.

    Parameters
    ----------
    law : the fitted law.
    weights : ``(w_general, w_domain)`` or ``"0.3,0.7"``; normalised to sum to 1.
    space, constraints, settings : see :class:`SearchSpace`, :class:`Constraints`,
        :class:`SearchSettings` (defaults: the pilots' coverage, none, TPE with 128
        trials, 64 of them a vectorised seed batch).
    allow_extrapolation : widen the peak-LR box 3x beyond the pilots' range each way.
    top_k : number of alternatives to report.
    level : central probability of the intervals.
    pareto : also sweep the weights and report the general-vs-domain Pareto front.
    verbose : let Optuna log.
    progress : called with ``(complete, requested)`` trials after each batch.

    Raises
    ------
    InputError : bad weights, space or storage. InfeasibleError : nothing satisfies the
    constraints.
    """
    space = space or SearchSpace()
    constraints = constraints or Constraints()
    settings = settings or SearchSettings()
    w_general, w_domain, normalised = parse_weights(weights)
    if not 0 < level < 1:
        raise InputError(f"level == {level!r}, must be in (0, 1)")
    resolved = _Space(law, space, constraints, allow_extrapolation)
    evaluator = _make_evaluator(law, resolved, constraints, w_general, w_domain)
    notes = list(resolved.notes) + list(law.notes)
    if normalised:
        notes.append(f"weights normalised to {w_general:.4g},{w_domain:.4g}")
    url = storage_url(settings.storage)
    fingerprint = {
        "law": _law_digest(law),
        "weights": [round(w_general, 12), round(w_domain, 12)],
        "space": resolved.fingerprint(),
        "constraints": constraints.model_dump(),
        "sampler": settings.sampler,
    }
    fingerprint = _jsonable(fingerprint)
    name = settings.study_name or _study_name(fingerprint)
    started = time.perf_counter()
    with _optuna_quiet(verbose):
        study, created, resumed = _open_study(
            url, name, fingerprint, make_sampler(settings.sampler, settings.seed)
        )
        if not created:
            # another process (or an earlier run) owns the seed: draw different points
            mixed = np.random.SeedSequence([settings.seed, os.getpid()]).generate_state(1)[0]
            study.sampler = make_sampler(settings.sampler, int(mixed))
        seeded = 0
        if created:
            seeded = _seed_study(
                study,
                resolved,
                evaluator,
                min(settings.seed_trials, settings.trials),
                settings.seed,
            )
        done_here = _run_study(
            study, url, name, resolved, evaluator, settings.trials, settings.batch_size, progress
        )
        search_seconds = time.perf_counter() - started
        from optuna.trial import TrialState

        complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        best = _study_best(study, resolved)
        top = _study_top(study, resolved, top_k)
    dense_best, dense_value, dense_points, _ = _dense_search(evaluator, resolved)
    if best is None:
        notes.append("no trial of the study satisfies the constraints; the dense search did")
        polished, polished_value = dense_best, dense_value
        study_value = None
        source = "dense search (the study found no feasible setting)"
    else:
        study_value = best[1]
        polished, polished_value = _refine(evaluator, resolved, best[0])
        source = "study best, polished by a local vectorised grid"
    gap = (polished_value - dense_value) / abs(dense_value)
    study_gap = None if study_value is None else (study_value - dense_value) / abs(dense_value)
    recommended_batch = polished
    if gap > GAP_TOLERANCE:
        notes.append(
            f"the dense search beat the study by {gap:.2e} (relative): recommending the dense "
            "optimum; raise --trials or try another --sampler"
        )
        recommended_batch, source = dense_best, "dense search (better than the study)"
    (recommended,) = _assess_batch(
        law, evaluator, resolved, recommended_batch, ["recommended"], constraints, level
    )
    alternatives: list[Assessment] = []
    if top_k > 0:
        pool = [dense_best] + ([top] if top is not None else [])
        pool_batch = Batch.concatenate(pool)
        _, _, pool_obj, pool_viol = evaluator.evaluate(pool_batch)
        pool_obj = np.where(feasible_mask(pool_viol, len(pool_batch)), pool_obj, np.inf)
        picks = _distinct(resolved, pool_batch, pool_obj, top_k, recommended_batch)
        if picks:
            alternatives = _assess_batch(
                law,
                evaluator,
                resolved,
                pool_batch.take(np.array(picks)),
                [f"alt {i + 1}" for i in range(len(picks))],
                constraints,
                level,
            )
    baselines = _baselines(law, evaluator, resolved, recommended_batch, constraints, level)
    front = _pareto(law, evaluator, resolved, constraints) if pareto else None
    if settings.sampler in ("cmaes", "qmc") and len(evaluator.constraint_names()) > 1:
        notes.append(
            f"the {settings.sampler} sampler does not use constraints when it proposes "
            "settings; infeasible trials are only excluded from the result"
        )
    if not recommended.in_range:
        notes.append("the recommendation lies outside what the pilots covered (see flags)")
    stats = SearchStats(
        sampler=settings.sampler,
        seed=settings.seed,
        trials_requested=settings.trials,
        trials_complete=complete,
        trials_this_process=done_here + seeded,
        seed_trials_added=seeded,
        storage=redact(url),
        study_name=name,
        resumed=resumed,
        search_seconds=search_seconds,
        trials_per_second=(done_here + seeded) / search_seconds if search_seconds > 0 else None,
        study_best_objective=study_value,
        recommended_objective=recommended.objective,
        dense_objective=dense_value,
        dense_points=dense_points,
        dense_gap=(recommended.objective - dense_value) / abs(dense_value),
        polished_gap=None if study_value is None else gap,
        study_gap=study_gap,
        recommendation_source=source,
    )
    return Recommendation(
        law_digest=fingerprint["law"],
        weights=(w_general, w_domain),
        level=level,
        constraints=constraints,
        space=resolved.describe(),
        search=stats,
        recommended=recommended,
        alternatives=alternatives,
        baselines=baselines,
        pareto=front,
        notes=notes,
    )


def _make_evaluator(
    law: FittedLaw, space: _Space, constraints: Constraints, w_general: float, w_domain: float
) -> Evaluator:
    return Evaluator(
        law=law,
        checkpoints=space.checkpoints,
        w_general=w_general,
        w_domain=w_domain,
        tokens_per_step=space.tokens_per_step,
        max_epochs=constraints.max_epochs,
        domain_tokens=constraints.domain_tokens,
        max_general_rise=constraints.max_general_rise,
    )


def _baselines(
    law: FittedLaw,
    evaluator: Evaluator,
    space: _Space,
    recommended: Batch,
    constraints: Constraints,
    level: float,
) -> list[Assessment]:
    """The best pilot-like setting and the rules of thumb, on the same objective."""
    cov = law.coverage
    row = recommended.row(0)
    labels: list[str] = []
    parts: list[Batch] = []
    # best pilot-like: the pilots' LRs x replay ratios x longest pilot, any family, 2 % warmup
    pilot_lrs = sorted({cov.peak_lr_min, cov.peak_lr_max})
    ratios = sorted(cov.replay_ratios)
    piloted = [i for i, c in enumerate(space.checkpoints) if c.piloted] or [0]
    families = [SEARCH_FAMILIES.index(f) for f in ("constant", "cosine", "wsd", "linear")]
    grid = np.meshgrid(piloted, families, pilot_lrs, ratios, indexing="ij")
    pilot_like = make_batch(
        checkpoint=grid[0],
        family=grid[1],
        warmup_fraction=DEFAULT_WARMUP_FRACTION,
        decay_fraction=0.2,
        steps=cov.steps_max,
        peak_lr=grid[2],
        replay=grid[3],
    )
    _, _, objective, violations = evaluator.evaluate(pilot_like)
    feasible = feasible_mask(violations, len(pilot_like))
    best = int(np.argmin(np.where(feasible, objective, np.inf) if feasible.any() else objective))
    parts.append(pilot_like.take(np.array([best])))
    labels.append("pilot-like")
    for replay in (0.05, 0.10):
        parts.append(
            make_batch(
                checkpoint=row["checkpoint"],
                family=row["family"],
                warmup_fraction=row["warmup_fraction"],
                decay_fraction=row["decay_fraction"],
                steps=space.budget,
                peak_lr=cov.peak_lr_max,
                replay=replay,
            )
        )
        labels.append(f"thumb r={replay:.0%}")
    return _assess_batch(
        law, evaluator, space, Batch.concatenate(parts), labels, constraints, level
    )


def _pareto(
    law: FittedLaw, evaluator: Evaluator, space: _Space, constraints: Constraints, n: int = 11
) -> list[ParetoPoint]:
    """Weight sweep: the dense optimum for each ``w_general`` in ``linspace(0, 1, n)``."""
    points: list[ParetoPoint] = []
    seen: set[tuple] = set()
    for w_general in np.linspace(0.0, 1.0, n):
        sweep = Evaluator(
            law=law,
            checkpoints=space.checkpoints,
            w_general=float(w_general),
            w_domain=float(1 - w_general),
            tokens_per_step=evaluator.tokens_per_step,
            max_epochs=evaluator.max_epochs,
            domain_tokens=evaluator.domain_tokens,
            max_general_rise=evaluator.max_general_rise,
        )
        sweep._shapes = evaluator._shapes
        best, _, _, _ = _dense_search(sweep, space, starts_per_family=1)
        setting = space.setting(best, 0)
        key = (
            setting.family,
            setting.checkpoint,
            round(setting.peak_lr, 7),
            round(setting.replay_ratio, 3),
            setting.steps,
        )
        if key in seen:
            continue
        seen.add(key)
        general, domain, _ = evaluator.losses(best)
        flags = coverage_flags(
            law,
            peak_lr=setting.peak_lr,
            replay_ratio=setting.replay_ratio,
            steps=setting.steps,
            checkpoint=setting.checkpoint,
            tokens_per_step=space.tokens_per_step,
        )
        points.append(
            ParetoPoint(
                w_general=float(w_general),
                w_domain=float(1 - w_general),
                setting=setting,
                general=float(general[0]),
                domain=float(domain[0]),
                in_range=not flags,
                flags=flags,
            )
        )
    return points


# -- candidates -------------------------------------------------------------------------


class Candidate(BaseModel):
    """A user's configuration to rank (a schedule, replay ratio and checkpoint)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    schedule: Schedule
    replay_ratio: float = Field(ge=0, le=1)
    checkpoint: str | None = None
    tokens_per_step: int | None = Field(default=None, gt=0)


def load_candidates(path: str | Path) -> list[Candidate]:
    """Read candidates from YAML (``candidates:`` list of configs) or CSV (one per row).

    CSV columns: ``name, family, peak_lr, steps, replay_ratio`` and optionally
    ``warmup_fraction, warmup_steps, decay_fraction, checkpoint, tokens_per_step``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"candidates file not found: {path}")
    if path.suffix.lower() == ".csv":
        return _candidates_from_csv(path)
    data = load_yaml_mapping(str(path))
    items = data.get("candidates")
    if set(data) - {"candidates"}:
        extra = ", ".join(sorted(set(data) - {"candidates"}))
        raise InputError(f"{path}: unknown key(s) {extra} (expected only 'candidates')")
    if not isinstance(items, list) or not items:
        raise InputError(f"{path}: 'candidates' must be a non-empty list")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(Candidate.model_validate(item))
        except ValidationError as exc:
            raise InputError(pydantic_error_line(f"{path}: candidates[{i}]", exc)) from None
    return out


def _candidates_from_csv(path: Path) -> list[Candidate]:
    import csv

    schedule_keys = {
        "family",
        "peak_lr",
        "steps",
        "warmup_fraction",
        "warmup_steps",
        "decay_fraction",
    }
    other_keys = {"name", "replay_ratio", "checkpoint", "tokens_per_step"}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise InputError(f"{path}: empty CSV")
        unknown = set(reader.fieldnames) - schedule_keys - other_keys
        if unknown:
            raise InputError(f"{path}: unknown column(s) {', '.join(sorted(unknown))}")
        missing = {"family", "peak_lr", "steps", "replay_ratio"} - set(reader.fieldnames)
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        out = []
        for line, row in enumerate(reader, start=2):
            values = {k: v.strip() for k, v in row.items() if v is not None and v.strip() != ""}
            item: dict[str, Any] = {
                "schedule": {k: v for k, v in values.items() if k in schedule_keys},
            }
            item.update({k: v for k, v in values.items() if k in other_keys})
            try:
                out.append(Candidate.model_validate(item))
            except ValidationError as exc:
                raise InputError(pydantic_error_line(f"{path}: line {line}", exc)) from None
    if not out:
        raise InputError(f"{path}: no candidate rows")
    return out


def rank_candidates(
    law: FittedLaw,
    candidates: Sequence[Candidate],
    weights: str | Sequence[float] = (0.5, 0.5),
    *,
    constraints: Constraints | None = None,
    level: float = 0.9,
    seed: int = 0,
) -> CandidateRanking:
    """Rank configurations by the predicted objective, with P(best) under fit uncertainty.

    The probability that a candidate is the best is computed from a multivariate Gaussian
    on the candidates' objectives: mean = the fitted law's prediction, covariance = the
    jackknife covariance of the predictions over the law's leave-one-pilot-out refits (so
    the correlation between similar candidates is kept); ``PROBABILITY_DRAWS`` draws with
    ``seed``. Infeasible candidates are ranked too, and marked.
    """
    constraints = constraints or Constraints()
    w_general, w_domain, normalised = parse_weights(weights)
    if not candidates:
        raise InputError("no candidates to rank")
    if not 0 < level < 1:
        raise InputError(f"level == {level!r}, must be in (0, 1)")
    notes = list(law.notes)
    if normalised:
        notes.append(f"weights normalised to {w_general:.4g},{w_domain:.4g}")
    choices: list[CheckpointChoice] = []
    finals = []
    tps_default = (
        law.coverage.tokens_per_step[0] if len(law.coverage.tokens_per_step) == 1 else None
    )
    for candidate in candidates:
        name, state = law.checkpoint_state(candidate.checkpoint)
        choice = CheckpointChoice(name, state, None, None, name in law.coverage.checkpoints)
        choices.append(choice)
        lr = candidate.schedule.lr_array()
        finals.append(
            cpt_point_areas(
                lr,
                np.array([lr.size]),
                law.lam,
                state,
                candidate.replay_ratio,
                history=law.needs_history,
            )
        )
    from cptopt.law.areas import Areas

    areas = Areas.concatenate(finals)
    objective_rows = []
    general_all = None
    for vs, weight in (("general", w_general), ("domain", w_domain)):
        fit = law.set_fit(vs)
        values = np.array([fit.values, *fit.jackknife])
        losses = law.law(vs).evaluate(values, areas)
        if vs == "general":
            general_all = losses[0]
        objective_rows.append(weight * losses)
    objective = objective_rows[0] + objective_rows[1]
    central = objective[0]
    replicas = objective[1:]
    n = replicas.shape[0]
    if n >= 2:
        centred = replicas - replicas.mean(axis=0)
        cov = (n - 1) / n * centred.T @ centred
        se = np.sqrt(np.diag(cov))
        rng = np.random.default_rng(seed)
        draws = rng.multivariate_normal(central, cov, size=PROBABILITY_DRAWS, method="eigh")
        winners = np.bincount(np.argmin(draws, axis=1), minlength=central.size)
        probability = winners / PROBABILITY_DRAWS
        method = (
            f"Gaussian on the candidates' objectives: mean = fitted law, covariance = jackknife "
            f"covariance over {n} leave-one-pilot-out refits; {PROBABILITY_DRAWS} draws, "
            f"seed {seed}"
        )
    else:
        se = np.zeros_like(central)
        probability = (central == central.min()).astype(float)
        probability /= probability.sum()
        method = "no jackknife refits in the law file: probability 1 for the predicted best"
        notes.append("the law has no jackknife refits: no fit uncertainty for the ranking")
    context = Evaluator(  # only carries the constraint settings into _assess
        law=law,
        checkpoints=[choices[0]],
        w_general=w_general,
        w_domain=w_domain,
        tokens_per_step=constraints.tokens_per_step or tps_default,
        max_epochs=constraints.max_epochs,
        domain_tokens=constraints.domain_tokens,
        max_general_rise=constraints.max_general_rise,
    )
    order = np.argsort(central, kind="stable")
    scored = []
    for rank, i in enumerate(order, start=1):
        candidate = candidates[int(i)]
        tps = candidate.tokens_per_step or constraints.tokens_per_step or tps_default
        broken = _candidate_violations(candidate, tps, constraints, general_all[i], law, choices[i])
        assessment = _assess(
            law,
            context,
            candidate.name or f"candidate {int(i) + 1}",
            candidate.schedule,
            candidate.replay_ratio,
            choices[int(i)],
            float(central[i]),
            float(se[i]),
            broken,
            level,
            tps,
            None,
        )
        scored.append(
            CandidateScore(
                rank=rank,
                name=assessment.label,
                assessment=assessment,
                probability_best=float(probability[i]),
            )
        )
    return CandidateRanking(
        weights=(w_general, w_domain), level=level, method=method, candidates=scored, notes=notes
    )


def _candidate_violations(
    candidate: Candidate,
    tokens_per_step: int | None,
    constraints: Constraints,
    general_final: float,
    law: FittedLaw,
    choice: CheckpointChoice,
) -> list[str]:
    steps = candidate.schedule.n_steps
    out = []
    if constraints.max_steps is not None and steps > constraints.max_steps:
        out.append(_violation_text("max_steps", steps - constraints.max_steps, constraints))
    if constraints.max_tokens is not None and tokens_per_step:
        excess = steps * tokens_per_step - constraints.max_tokens
        if excess > 0:
            out.append(_violation_text("max_tokens", excess, constraints))
    if constraints.max_epochs is not None and constraints.domain_tokens and tokens_per_step:
        epochs = (1 - candidate.replay_ratio) * steps * tokens_per_step / constraints.domain_tokens
        if epochs > constraints.max_epochs:
            out.append(_violation_text("max_epochs", epochs - constraints.max_epochs, constraints))
    if constraints.max_general_rise is not None:
        start = cpt_point_areas(
            np.zeros(1),
            np.array([0]),
            law.lam,
            choice.state,
            candidate.replay_ratio,
            history=law.needs_history,
        )
        initial = float(law.law("general").evaluate(np.asarray(law.general.values), start)[0])
        excess = general_final - initial - constraints.max_general_rise
        if excess > 0:
            out.append(_violation_text("max_general_rise", excess, constraints))
    return out


def dense_optimum(
    law: FittedLaw,
    weights: str | Sequence[float],
    *,
    space: SearchSpace | None = None,
    constraints: Constraints | None = None,
    allow_extrapolation: bool = False,
) -> tuple[Setting, float, int]:
    """The dense vectorised search alone: ``(best setting, objective, grid points)``."""
    constraints = constraints or Constraints()
    w_general, w_domain, _ = parse_weights(weights)
    resolved = _Space(law, space or SearchSpace(), constraints, allow_extrapolation)
    evaluator = _make_evaluator(law, resolved, constraints, w_general, w_domain)
    best, value, points, _ = _dense_search(evaluator, resolved)
    return resolved.setting(best, 0), value, points
