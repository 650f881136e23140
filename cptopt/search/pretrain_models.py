"""The pre-training schedule search's records: what to search and what it found.

Input: :class:`PretrainSearchSpace` (``None`` = from what the pilots covered; one number
fixes a dimension), in a :class:`PretrainSearchConfig` file (the keys ``cptopt recommend``
takes for a law fitted to pre-training pilots). Result: :class:`PretrainRecommendation`
(from :func:`~cptopt.search.pretraining.recommend_pretrain`), made of
:class:`PretrainAssessment` records, each a :class:`PretrainSetting` with the law's
prediction of its final loss. Ranges are parsed by :func:`cptopt.search.models.parse_range`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cptopt._validation import MAX_STEPS
from cptopt._version import __version__
from cptopt.schedules import DecayShape, Schedule
from cptopt.search.models import (
    FamilyName,
    OverridableConfig,
    ordered_range,
    parse_list,
    parse_range,
    positive_lr_range,
    steps_range,
)

#: Families searched (the CPT search's), in the order reports list them.
PRETRAIN_FAMILIES: tuple[str, ...] = ("wsd", "cosine", "linear", "constant")
#: WSD decay shapes searched (:mod:`cptopt.schedules`).
DECAY_SHAPES: tuple[str, ...] = ("linear", "cosine", "exponential")
#: WSD decay length (share of the steps) when none is given: from a short final decay to
#: one over most of the run (the cosine and linear families decay over all of it).
DEFAULT_DECAY_FRACTION = (0.02, 0.9)


class PretrainSearchSpace(BaseModel):
    """What to search. ``None`` means "from what the pilots covered"; one number fixes it.

    Ranges are ``(low, high)``; LRs in raw units, steps in updates. ``final_lr`` is the LR
    the decay ends at (WSD, cosine, linear); ``warmup_steps`` the linear warmup from 0.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    peak_lr: tuple[float, float] | None = Field(default=None, description="peak LR bounds")
    steps: tuple[int, int] | None = Field(
        default=None, description="step budget bounds (default: the longest pilot's)"
    )
    warmup_steps: int | None = Field(
        default=None, ge=0, le=MAX_STEPS, description="warmup (default: the pilots' longest)"
    )
    families: list[FamilyName] = Field(default_factory=lambda: list(PRETRAIN_FAMILIES))
    decay_shapes: list[DecayShape] = Field(default_factory=lambda: list(DECAY_SHAPES))
    decay_fraction: tuple[float, float] = DEFAULT_DECAY_FRACTION
    final_lr: tuple[float, float] | None = Field(
        default=None, description="final LR bounds (default: from the pilots' lowest LR)"
    )

    _ranges = field_validator("peak_lr", "steps", "decay_fraction", "final_lr", mode="before")(
        parse_range
    )
    _lists = field_validator("families", "decay_shapes", mode="before")(parse_list)

    _ordered = field_validator("peak_lr", "steps", "decay_fraction", "final_lr")(ordered_range)
    _positive_lr = field_validator("peak_lr")(positive_lr_range)
    _steps = field_validator("steps")(steps_range)

    @field_validator("final_lr")
    @classmethod
    def _final_lr(cls, value: tuple | None) -> tuple | None:
        if value is not None and value[0] < 0:
            raise ValueError("final LR bounds must be >= 0")
        return value

    @field_validator("decay_fraction")
    @classmethod
    def _decay(cls, value: tuple) -> tuple:
        if not (value[0] >= 0.01 and value[1] <= 1.0):
            raise ValueError("WSD decay fraction must lie in [0.01, 1]")
        return value

    @field_validator("families", "decay_shapes")
    @classmethod
    def _some(cls, value: list) -> list:
        if not value:
            raise ValueError("give at least one")
        return list(dict.fromkeys(value))


class PretrainSearchConfig(OverridableConfig):
    """A search config file (YAML) for a law fitted to pre-training pilots: the keys
    ``cptopt recommend`` takes for it. CLI flags win."""

    foreign: ClassVar[str] = (
        "a CPT search setting; this law was fitted to pre-training pilots (kind: pretrain), "
        "whose search minimises the final loss over the schedule"
    )

    law: str | None = None
    allow_extrapolation: bool = False
    space: PretrainSearchSpace = Field(default_factory=PretrainSearchSpace)
    level: float = Field(default=0.9, gt=0, lt=1)


class PretrainSetting(BaseModel):
    """One pre-training schedule of the search (LRs raw units; steps = updates)."""

    model_config = ConfigDict(extra="forbid")

    family: str
    peak_lr: float
    steps: int
    warmup_steps: int
    final_lr: float = Field(description="LR at the last step (constant: the peak)")
    decay_shape: str | None = Field(default=None, description="WSD only")
    decay_fraction: float | None = Field(default=None, description="WSD: share of the steps")

    def schedule(self) -> Schedule:
        """The LR schedule of this setting."""
        wsd = self.family == "wsd"
        return Schedule(
            family=self.family,  # type: ignore[arg-type]
            peak_lr=self.peak_lr,
            steps=self.steps,
            warmup_steps=self.warmup_steps,
            min_lr=0.0 if self.family == "constant" else self.final_lr,
            decay_shape=self.decay_shape if wsd else "linear",  # type: ignore[arg-type]
            decay_fraction=self.decay_fraction if wsd else None,
        )

    @property
    def decay_start(self) -> int | None:
        """WSD: the last step at the peak LR (the decay runs from there to the end)."""
        return self.schedule().decay_start if self.family == "wsd" else None

    def describe(self) -> str:
        text = self.schedule().describe()
        if self.family == "wsd":
            text += f" (steps {self.decay_start}..{self.steps})"
        return text


class PretrainAssessment(BaseModel):
    """A setting with what the law predicts for its final loss."""

    model_config = ConfigDict(extra="forbid")

    label: str
    setting: PretrainSetting
    schedule: str
    final: float = Field(description="predicted loss at the last step")
    final_lower: float
    final_upper: float
    in_range: bool
    flags: list[str]


class PretrainSpaceReport(BaseModel):
    """The space actually searched."""

    model_config = ConfigDict(extra="forbid")

    peak_lr: tuple[float, float]
    steps: tuple[int, int]
    warmup_steps: int
    families: list[str]
    decay_shapes: list[str]
    decay_fraction: tuple[float, float]
    final_lr: tuple[float, float]
    notes: list[str]


class PretrainRecommendation(BaseModel):
    """The result of :func:`~cptopt.search.pretraining.recommend_pretrain`."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["pretrain"] = "pretrain"
    cptopt_version: str = __version__
    law_digest: str = Field(description="SHA-256 (first 16 hex) of the law file's content")
    level: float
    space: PretrainSpaceReport
    recommended: PretrainAssessment
    alternatives: list[PretrainAssessment] = Field(
        description="the best setting of every other family (and WSD decay shape)"
    )
    baselines: list[PretrainAssessment] = Field(
        description="constant, cosine and a 20 % linear WSD at the recommended budget"
    )
    evaluations: int = Field(description="settings the law evaluated")
    search_seconds: float = Field(description="wall time of the search and assessments")
    notes: list[str]
