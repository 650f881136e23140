"""The search's records: what to search (inputs) and what it found (results).

Inputs: :class:`SearchSpace` (``None`` = from the law's coverage; one number fixes a
dimension), :class:`Constraints`, :class:`SearchSettings`, the :class:`SearchConfig` file and
the user's :class:`Candidate` configurations. Results: :class:`Recommendation` (from
:func:`~cptopt.search.recommendation.recommend`) and :class:`CandidateRanking` (from
:func:`~cptopt.search.candidates.rank_candidates`), made of :class:`Assessment` records.

Ranges are parsed here, once (:func:`parse_range`), and so are objective weights
(:func:`parse_weights`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cptopt._validation import (
    MAX_SEED,
    MAX_STEPS,
    MAX_TOKENS_PER_STEP,
    MAX_TRIALS,
    load_yaml_mapping,
    validate,
)
from cptopt._version import __version__
from cptopt.exceptions import InputError, param
from cptopt.schedules import Schedule

SamplerName = Literal["tpe", "cmaes", "gp", "qmc"]
FamilyName = Literal["cosine", "wsd", "linear", "constant"]
#: Families searched (all warm up from 0 and decay to 0: LR array = peak * shape).
SEARCH_FAMILIES: tuple[str, ...] = ("cosine", "wsd", "linear", "constant")

#: Default number of complete trials in the study (seed batch included).
DEFAULT_TRIALS = 128
#: Default size of the vectorised seed batch added with ``add_trials``.
DEFAULT_SEED_TRIALS = 64
#: Trials asked (and evaluated in one vectorised call) per round.
DEFAULT_BATCH = 8
#: Warmup fraction when none is given: the bundled pilots' 2 % re-warmup.
DEFAULT_WARMUP_FRACTION = 0.02
#: WSD decay fraction range when none is given.
DEFAULT_DECAY_FRACTION = (0.1, 0.5)

Range = tuple[float, float]


def parse_range(value: Any) -> Any:
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


def ordered_range(value: tuple | None) -> tuple | None:
    """A range's bounds are finite and ``low <= high`` (None passes)."""
    if value is not None:
        if not all(math.isfinite(v) for v in value):
            raise ValueError("bounds must be finite")
        if value[0] > value[1]:
            raise ValueError(f"low {value[0]} > high {value[1]}")
    return value


def positive_lr_range(value: tuple | None) -> tuple | None:
    """Peak LR bounds are > 0 (None passes)."""
    if value is not None and value[0] <= 0:
        raise ValueError("peak LR bounds must be > 0")
    return value


def fraction_range(value: tuple | None) -> tuple | None:
    """Replay ratio bounds lie in 0..1 (None passes)."""
    if value is not None and not (value[0] >= 0 and value[1] <= 1):
        raise ValueError("replay ratio bounds must lie in [0, 1]")
    return value


def steps_range(value: tuple | None) -> tuple | None:
    """Step bounds lie in 10..MAX_STEPS (None passes)."""
    if value is not None and not 10 <= value[0] <= value[1] <= MAX_STEPS:
        raise ValueError(f"steps must lie in 10..{MAX_STEPS}")
    return value


def parse_list(value: Any) -> Any:
    """Accept ``"a,b"`` for a list (``None`` and non-strings pass through)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def parse_weights(text: str | Sequence[float]) -> tuple[float, float, bool]:
    """Parse ``"0.3,0.7"`` (general, domain) into normalised weights.

    Returns ``(w_general, w_domain, normalised)`` where ``normalised`` says whether the
    input did not already sum to 1.
    """
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise InputError(
                f"{param('weights')} == {text!r}, must be two numbers 'general,domain' such "
                "as 0.3,0.7"
            ) from None
    else:
        values = [float(v) for v in text]
    if len(values) != 2:
        raise InputError(
            f"{param('weights')} needs exactly two numbers (general,domain), got {len(values)}"
        )
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise InputError(f"{param('weights')} == {values}, must be finite and >= 0")
    total = sum(values)
    if total <= 0:
        raise InputError(f"{param('weights')} sum to 0; at least one weight must be > 0")
    if not math.isfinite(total):
        raise InputError(
            f"{param('weights')} == {values}: their sum overflows; give them on a smaller "
            "scale (only their ratio counts, e.g. 0.5,0.5)"
        )
    normalised = abs(total - 1.0) > 1e-9
    return values[0] / total, values[1] / total, normalised


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


class SearchSpace(BaseModel):
    """What to search. ``None`` means "from the law's coverage"; a single number fixes it.

    Ranges are ``(low, high)``; LRs in raw units, steps in updates.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

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
    )(parse_range)
    _lists = field_validator("families", "checkpoints", mode="before")(parse_list)

    _ordered = field_validator(
        "peak_lr", "replay_ratio", "steps", "warmup_fraction", "decay_fraction"
    )(ordered_range)
    _positive_lr = field_validator("peak_lr")(positive_lr_range)

    _fraction = field_validator("replay_ratio")(fraction_range)

    _steps = field_validator("steps")(steps_range)

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

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_steps: int | None = Field(
        default=None, gt=0, le=MAX_STEPS, description="at most this many steps"
    )
    tokens_per_step: int | None = Field(
        default=None,
        gt=0,
        le=MAX_TOKENS_PER_STEP,
        description="tokens per step of the planned run (default: pilots')",
    )
    max_tokens: float | None = Field(default=None, gt=0, description="token budget")
    domain_tokens: float | None = Field(default=None, gt=0, description="domain data size")
    max_epochs: float | None = Field(default=None, gt=0, description="epochs of domain data")
    max_general_rise: float | None = Field(
        default=None, description="allowed final general loss minus its pre-CPT value (nats)"
    )


class SearchSettings(BaseModel):
    """How to search: sampler, budget, seed and the Optuna storage."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    sampler: SamplerName = "tpe"
    trials: int = Field(
        default=DEFAULT_TRIALS, ge=1, le=MAX_TRIALS, description="complete trials in the study"
    )
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    storage: str | None = Field(default=None, description="Optuna storage URL")
    study_name: str | None = None
    batch_size: int = Field(default=DEFAULT_BATCH, ge=1, le=256)
    seed_trials: int = Field(default=DEFAULT_SEED_TRIALS, ge=0, le=4096)


Config = TypeVar("Config", bound="OverridableConfig")


class OverridableConfig(BaseModel):
    """A config file whose keys command-line options override (:meth:`with_overrides`);
    ``foreign`` says what a key it does not have is (another kind of law's setting)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    foreign: ClassVar[str] = "not a setting of this search"

    def with_overrides(
        self: Config, overrides: dict[str, Any], aliases: dict[str, str] | None = None
    ) -> Config:
        """This config with ``overrides`` (dotted keys such as ``space.peak_lr``; ``None``
        values ignored) applied and validated again. ``aliases`` name the keys in errors
        (``{"space.peak_lr": "--peak-lr"}``); a key this config has not is an error."""
        data = self.model_dump()
        for key, value in overrides.items():
            if value is None:
                continue
            *sections, name = key.split(".")
            target = data
            for section in sections:
                target = target.get(section)
                if not isinstance(target, dict):
                    break
            if not isinstance(target, dict) or name not in target:
                raise InputError(f"{(aliases or {}).get(key, key)}: {self.foreign}")
            target[name] = value
        return validate(type(self), data, "", aliases=aliases)


class SearchConfig(OverridableConfig):
    """A search config file (YAML): everything ``cptopt recommend`` takes for a CPT law.
    CLI flags win."""

    foreign: ClassVar[str] = (
        "not a setting of a CPT search (it is for laws fitted to pre-training pilots, kind: "
        "pretrain)"
    )

    law: str | None = None
    weights: str | list[float] | None = None
    allow_extrapolation: bool = False
    space: SearchSpace = Field(default_factory=SearchSpace)
    constraints: Constraints = Field(default_factory=Constraints)
    search: SearchSettings = Field(default_factory=SearchSettings)
    top_k: int = Field(default=5, ge=1, le=50)
    level: float = Field(default=0.9, gt=0, lt=1)
    pareto: bool = False


def load_search_config(
    path: str | Path,
    model: type[Config] = SearchConfig,  # type: ignore[assignment]
) -> Config:
    """Read and validate a search config YAML as ``model`` (a CPT law's
    :class:`SearchConfig` by default; unknown keys rejected, one-line errors)."""
    return validate(model, load_yaml_mapping(path), str(path))


def search_config_law(path: str | Path) -> str | None:
    """The law file a search config YAML names (``law:``; None when it names none), read
    before the rest: which keys the config may hold depends on that law's kind."""
    law = load_yaml_mapping(path).get("law")
    if law is not None and not isinstance(law, str):
        raise InputError(f"{path}: law: must be a file path, got {law!r:.60}")
    return law


# -- results ----------------------------------------------------------------------


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
        """The LR schedule of this setting."""
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


class Candidate(BaseModel):
    """A user's configuration to rank (a schedule, replay ratio and checkpoint)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str | None = None
    schedule: Schedule
    replay_ratio: float = Field(ge=0, le=1)
    checkpoint: str | None = None
    tokens_per_step: int | None = Field(default=None, gt=0, le=MAX_TOKENS_PER_STEP)
