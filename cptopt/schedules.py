"""Learning-rate schedules: a validated description in, a per-step LR array out.

Convention (the same as the bundled data): ``lr[s - 1]`` is the LR used for the update of
step ``s``, for ``s = 1..steps``; step 0 is the starting checkpoint and has no update.
LRs are in raw units (``2e-4``, not normalised).

Families
--------
- ``constant``: warmup, then the peak until the end.
- ``cosine``: warmup, then a half cosine from the peak to ``min_lr`` at the last step.
- ``linear``: warmup, then a straight line from the peak to ``min_lr`` at the last step.
- ``wsd`` (warmup-stable-decay): warmup, the peak until the decay starts, then a decay of
  shape ``decay_shape`` (``linear``, ``cosine`` or ``exponential``) to ``min_lr`` at the last step.
- ``step``: warmup, then the peak, multiplied by ``step_factor`` after each step listed in
  ``milestones`` (each milestone is the last step at the level before it): PyTorch's
  ``MultiStepLR(milestones, gamma=step_factor)`` stepped once per update, e.g. a two-stage
  pre-training run ``milestones: [8000], step_factor: 0.3``.
- ``custom``: the per-step array ``lr`` given verbatim.

Warmup is linear from ``warmup_start_lr`` (0 by default; set it to the checkpoint's final LR
for a re-warmup that starts where pre-training stopped) to the peak: step ``s <= W`` gets
``start + (peak - start) * s / W``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cptopt._validation import MAX_LR, MAX_STEPS

Family = Literal["constant", "cosine", "wsd", "linear", "step", "custom"]
DecayShape = Literal["linear", "cosine", "exponential"]

#: Where an exponential decay ends when ``min_lr`` is 0 (a geometric decay never reaches 0).
EXPONENTIAL_FLOOR_RATIO = 0.01


class Schedule(BaseModel):
    """A learning-rate schedule of ``steps`` updates. See the module docstring for families."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    family: Family = Field(description="Schedule family.")
    peak_lr: float | None = Field(
        default=None,
        gt=0,
        le=MAX_LR,
        description="Peak LR in raw units (e.g. 2e-3). Not for custom.",
    )
    steps: int | None = Field(
        default=None, gt=0, le=MAX_STEPS, description="Number of updates (steps)."
    )
    warmup_steps: int | None = Field(
        default=None, ge=0, le=MAX_STEPS, description="Linear warmup length."
    )
    warmup_fraction: float | None = Field(
        default=None, ge=0, lt=1, description="Warmup length as a share of steps."
    )
    warmup_start_lr: float = Field(
        default=0.0, ge=0, le=MAX_LR, description="LR warmup starts from."
    )
    decay_fraction: float | None = Field(
        default=None, gt=0, le=1, description="WSD: share of steps spent decaying (default 0.2)."
    )
    decay_start_step: int | None = Field(
        default=None,
        ge=0,
        description="WSD: last step at the peak (alternative to decay_fraction).",
    )
    decay_shape: DecayShape = Field(default="linear", description="WSD decay shape.")
    min_lr: float = Field(default=0.0, ge=0, description="LR floor reached at the last step.")
    lr: tuple[float, ...] | None = Field(default=None, description="custom: per-step LR array.")
    milestones: tuple[int, ...] | None = Field(
        default=None, description="step: the LR is multiplied by step_factor after each."
    )
    step_factor: float | None = Field(
        default=None, gt=0, lt=1, description="step: LR factor at each milestone."
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> Schedule:
        if self.family != "step" and (self.milestones is not None or self.step_factor is not None):
            raise ValueError("'milestones'/'step_factor' apply to family 'step' only")
        if self.family == "custom":
            if self.lr is None or len(self.lr) == 0:
                raise ValueError("family 'custom' needs a non-empty 'lr' list")
            if len(self.lr) > MAX_STEPS:
                raise ValueError(f"'lr' has {len(self.lr)} steps, more than {MAX_STEPS}")
            array = np.asarray(self.lr, dtype=float)
            if not np.isfinite(array).all() or (array < 0).any() or array.max() > MAX_LR:
                raise ValueError(f"custom 'lr' values must be finite and in 0..{MAX_LR:g}")
            if array.max() <= 0:
                raise ValueError("custom 'lr' has no step with LR > 0 (peak LR must be > 0)")
            if self.steps is not None and self.steps != len(self.lr):
                raise ValueError(f"'steps' == {self.steps} but 'lr' has {len(self.lr)} values")
            return self
        if self.lr is not None:
            raise ValueError("'lr' is only allowed with family 'custom'")
        if self.peak_lr is None:
            raise ValueError(f"family '{self.family}' needs 'peak_lr' > 0")
        if self.steps is None:
            raise ValueError(f"family '{self.family}' needs 'steps' > 0")
        if self.warmup_steps is not None and self.warmup_fraction is not None:
            raise ValueError("give 'warmup_steps' or 'warmup_fraction', not both")
        if self.n_warmup >= self.steps:
            raise ValueError(
                f"warmup ({self.n_warmup} steps) must be shorter than steps ({self.steps})"
            )
        if self.min_lr >= self.peak_lr:
            raise ValueError(f"min_lr == {self.min_lr} must be below peak_lr == {self.peak_lr}")
        if self.family == "step":
            self._check_steps()
        if self.family != "wsd" and (
            self.decay_fraction is not None or self.decay_start_step is not None
        ):
            raise ValueError("'decay_fraction'/'decay_start_step' apply to family 'wsd' only")
        if self.family == "wsd":
            if self.decay_fraction is not None and self.decay_start_step is not None:
                raise ValueError("give 'decay_fraction' or 'decay_start_step', not both")
            if not self.n_warmup <= self.decay_start < self.steps:
                raise ValueError(
                    f"WSD decay must start between the end of warmup ({self.n_warmup}) and the "
                    f"last step ({self.steps}), got {self.decay_start}"
                )
        return self

    def _check_steps(self) -> None:
        """The ``step`` family's keys: milestones after the warmup, before the last step."""
        if not self.milestones or self.step_factor is None:
            raise ValueError("family 'step' needs 'milestones' and 'step_factor'")
        if self.min_lr > 0:
            raise ValueError("'min_lr' does not apply to family 'step' (use step_factor)")
        edges = (self.n_warmup, *self.milestones, self.n_steps)
        if any(b <= a for a, b in zip(edges[:-1], edges[1:], strict=False)):
            raise ValueError(
                "step 'milestones' must increase strictly, after the warmup "
                f"({self.n_warmup}) and before the last step ({self.n_steps}), "
                f"got {list(self.milestones)}"
            )

    @property
    def n_steps(self) -> int:
        """Number of updates."""
        return len(self.lr) if self.family == "custom" else int(self.steps)  # type: ignore[arg-type]

    @property
    def peak(self) -> float:
        """Peak LR (for custom schedules, the largest value)."""
        if self.family == "custom":
            return float(max(self.lr))  # type: ignore[arg-type]
        return float(self.peak_lr)  # type: ignore[arg-type]

    @property
    def n_warmup(self) -> int:
        """Warmup length in steps."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        if self.warmup_fraction is not None:
            return int(round(self.warmup_fraction * self.n_steps))
        return 0

    @property
    def decay_start(self) -> int:
        """WSD: the last step at the peak LR."""
        if self.decay_start_step is not None:
            return self.decay_start_step
        fraction = 0.2 if self.decay_fraction is None else self.decay_fraction
        return self.n_steps - int(round(fraction * self.n_steps))

    def lr_array(self) -> np.ndarray:
        """Per-step LR, shape ``(steps,)``; entry ``s - 1`` is the LR of update ``s``."""
        if self.family == "custom":
            return np.asarray(self.lr, dtype=float)
        if self.family == "step":
            return step_lr_array(
                self.peak,
                self.n_steps,
                self.n_warmup,
                self.warmup_start_lr,
                self.milestones or (),
                float(self.step_factor or 1.0),
            )
        return family_lr_array(
            family=self.family,
            peak_lr=self.peak,
            steps=self.n_steps,
            warmup_steps=self.n_warmup,
            warmup_start_lr=self.warmup_start_lr,
            decay_start=self.decay_start if self.family == "wsd" else self.n_warmup,
            decay_shape=self.decay_shape,
            min_lr=self.min_lr,
        )

    def describe(self) -> str:
        """Short human description, e.g. ``wsd 1000 steps, peak 2e-03, warmup 20, decay 20 %``."""
        if self.family == "custom":
            return f"custom {self.n_steps} steps, peak {self.peak:.3g}"
        text = f"{self.family} {self.n_steps} steps, peak {self.peak:.3g}, warmup {self.n_warmup}"
        if self.family == "wsd":
            share = (self.n_steps - self.decay_start) / self.n_steps
            text += f", {self.decay_shape} decay {share:.0%}"
        if self.family == "step":
            milestones = ",".join(str(m) for m in self.milestones or ())
            text += f", x{self.step_factor:g} after step {milestones}"
        if self.min_lr > 0:
            text += f", min {self.min_lr:.3g}"
        return text


def _decay_profile(progress: np.ndarray, shape: str, peak_lr: float, min_lr: float) -> np.ndarray:
    """LR along a decay from ``peak_lr`` (progress 0) to its end (progress 1)."""
    if shape == "linear":
        return min_lr + (peak_lr - min_lr) * (1.0 - progress)
    if shape == "cosine":
        return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + np.cos(np.pi * progress))
    floor = min_lr if min_lr > 0 else EXPONENTIAL_FLOOR_RATIO * peak_lr
    return peak_lr * (floor / peak_lr) ** progress


def family_lr_array(
    *,
    family: str,
    peak_lr: float,
    steps: int,
    warmup_steps: int,
    warmup_start_lr: float,
    decay_start: int,
    decay_shape: str,
    min_lr: float,
) -> np.ndarray:
    """Per-step LR of a non-custom schedule, shape ``(steps,)`` (see the module docstring).

    ``decay_start`` is the last step at the peak (WSD only). No validation: callers that
    build thousands of shapes (the search) come here directly, :class:`Schedule` checks.
    """
    step = np.arange(1, steps + 1, dtype=float)
    lr = np.full(steps, peak_lr, dtype=float)
    if family in ("cosine", "linear"):
        progress = (step - warmup_steps) / (steps - warmup_steps)
        shape = "cosine" if family == "cosine" else "linear"
        lr = _decay_profile(progress, shape, peak_lr, min_lr)
    elif family == "wsd":
        progress = np.clip((step - decay_start) / (steps - decay_start), 0.0, 1.0)
        lr = np.where(
            step > decay_start, _decay_profile(progress, decay_shape, peak_lr, min_lr), lr
        )
    if warmup_steps > 0:
        in_warmup = step <= warmup_steps
        ramp = warmup_start_lr + (peak_lr - warmup_start_lr) * step / warmup_steps
        lr = np.where(in_warmup, ramp, lr)
    return lr


def step_lr_array(
    peak_lr: float,
    steps: int,
    warmup_steps: int,
    warmup_start_lr: float,
    milestones: tuple[int, ...],
    step_factor: float,
) -> np.ndarray:
    """Per-step LR of a ``step`` schedule: the constant family's, times ``step_factor`` to
    the number of milestones before each step (update ``m + 1`` is the first after ``m``)."""
    lr = family_lr_array(
        family="constant",
        peak_lr=peak_lr,
        steps=steps,
        warmup_steps=warmup_steps,
        warmup_start_lr=warmup_start_lr,
        decay_start=warmup_steps,
        decay_shape="linear",
        min_lr=0.0,
    )
    passed = np.searchsorted(np.asarray(milestones), np.arange(1, steps + 1), side="left")
    return lr * step_factor**passed
