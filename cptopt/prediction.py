"""Predict both loss curves of a CPT schedule from a fitted law, with intervals; or, from a
law fitted to pre-training pilots, the loss curve of a pre-training schedule
(:func:`predict_pretrain`, with the same intervals).

Intervals combine computed sources of error (nothing is assumed):
- the eval noise and the law's misfit: the robust SD of the fit's log residuals (``noise``);
- how much less the fit knows here than at the pilots: the jackknife spread of this
  prediction over the laws refitted with one pilot left out, which grows away from them
  (large where one pilot alone holds a replay ratio or an LR);
- calibrated on the pilots themselves: both together are scaled (``interval_scale``, from
  the fit, :func:`cptopt.fitting.assemble.interval_scale`) so that they cover 90 % of the
  points of each pilot when it was left out of the fit;
- beyond the pilots' longest run, how wrong the law was when it extrapolated the pilots'
  first halves to their ends (``length_rms``, from the fit), once per doubling of length.
All are on the log scale; the interval is
``pred * exp(+-z * sqrt(scale^2 (noise^2 + jackknife^2) + length^2))``.
Without cross-validation (fewer than 3 pilots, or no jackknife) there is neither a scale
nor a spread: the eval noise alone sets the interval, which is then too narrow (the report
says so).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cptopt.exceptions import InputError
from cptopt.law.areas import Areas, CheckpointState
from cptopt.law.fitted import FittedLaw
from cptopt.law.uncertainty import jackknife_variance, z_value
from cptopt.pilots.runs import infer_warmup
from cptopt.schedules import Schedule

#: Relative slack before a peak LR counts as outside the pilots' range.
RANGE_TOLERANCE = 0.01


class LossForecast(BaseModel):
    """Predicted loss of one validation set at ``steps`` with a central interval."""

    model_config = ConfigDict(extra="forbid")

    steps: list[int]
    mean: list[float]
    lower: list[float]
    upper: list[float]
    initial: float = Field(
        description="loss at CPT step 0 (the checkpoint); for a pre-training schedule, at "
        "the first step after its warmup"
    )
    final: float
    final_lower: float
    final_upper: float


class Prediction(BaseModel):
    """What the law predicts for one CPT configuration."""

    model_config = ConfigDict(extra="forbid")

    schedule: str
    peak_lr: float
    steps: int
    replay_ratio: float
    checkpoint: str
    level: float
    general: LossForecast
    domain: LossForecast
    in_range: bool
    flags: list[str] = Field(description="settings outside what the pilots covered")
    notes: list[str]
    general_turning_step: int | None = Field(
        description="first CPT step whose general loss is back at or below its pre-CPT value"
    )
    general_rise: float = Field(description="final general loss minus its pre-CPT value")


def coverage_flags(
    law: FittedLaw,
    *,
    peak_lr: float,
    replay_ratio: float,
    steps: int,
    checkpoint: str,
    tokens_per_step: int | None,
) -> list[str]:
    """One message per setting outside what the pilots covered (empty when all inside)."""
    cov = law.coverage
    flags = _lr_flags(law, peak_lr)
    low, high = min(cov.replay_ratios), max(cov.replay_ratios)
    if not law.replay_terms and abs(replay_ratio - low) > 1e-9:
        flags.append(
            f"replay {replay_ratio:g} differs from the pilots' single ratio {low:g} (replay fixed)"
        )
    elif not low - 1e-9 <= replay_ratio <= high + 1e-9:
        flags.append(f"replay {replay_ratio:g} outside the pilots' {low:g}..{high:g}")
    if steps > cov.steps_max:
        flags.append(f"{steps} steps beyond the longest pilot ({cov.steps_max})")
    flags += _tokens_flags(law, tokens_per_step, "the shift term depends on batch size")
    if law.pretrain is not None and law.pretrain.known and checkpoint not in cov.checkpoints:
        flags.append(f"checkpoint '{checkpoint}' has no pilot run")
    return flags


def _lr_flags(law: FittedLaw, peak_lr: float) -> list[str]:
    """A flag when ``peak_lr`` is outside the pilots' peak LRs (beyond a small slack)."""
    cov = law.coverage
    low, high = cov.peak_lr_min * (1 - RANGE_TOLERANCE), cov.peak_lr_max * (1 + RANGE_TOLERANCE)
    if low <= peak_lr <= high:
        return []
    return [
        f"peak LR {peak_lr:.3g} outside the pilots' {cov.peak_lr_min:.3g}..{cov.peak_lr_max:.3g}"
    ]


def _tokens_flags(law: FittedLaw, tokens_per_step: int | None, why: str) -> list[str]:
    """A flag when ``tokens_per_step`` is not one of the pilots' (when both are known)."""
    used = law.coverage.tokens_per_step
    if not tokens_per_step or not used or tokens_per_step in used:
        return []
    return [
        f"tokens per step {tokens_per_step} differ from the pilots' "
        f"{', '.join(map(str, used))} ({why})"
    ]


def length_extrapolation_sd(
    law: FittedLaw, validation_set: str, steps: np.ndarray
) -> np.ndarray | float:
    """Log-scale SD added at CPT ``steps`` beyond the pilots' longest run.

    The fit measured (``SetFit.length_rms``) the error of a 2x extrapolation in length
    (the law refitted on the pilots' first halves, scored at their ends). A step ``t``
    beyond the longest pilot ``T`` is ``log2(t / T)`` such doublings away: the SD grows by
    ``length_rms`` per doubling. 0 within the pilots' length or without the check.
    """
    rms = law.set_fit(validation_set).length_rms
    longest = law.coverage.steps_max
    if not rms or longest <= 0:
        return 0.0
    return rms * np.log2(np.maximum(np.asarray(steps, dtype=float), longest) / longest)


def _forecast(
    law: FittedLaw,
    validation_set: str,
    areas: Areas,
    curve_steps: np.ndarray,
    report_index: np.ndarray,
    z: float,
    require_positive: bool = True,
) -> tuple[LossForecast, np.ndarray]:
    fit = law.set_fit(validation_set)
    form = law.form_for(validation_set)
    parameter_sets = np.array([fit.values, *fit.jackknife])
    curves = form.evaluate(parameter_sets, areas)
    valid = (curves[0] > 0).all() and np.isfinite(curves[0]).all()
    if require_positive and not valid:
        raise InputError(
            f"the {validation_set} law predicts a non-positive loss for this schedule: "
            "it is far outside what the pilots covered"
        )
    mean = curves[0]
    fit_var = jackknife_variance(np.log(np.maximum(curves[1:], 1e-12)))
    if fit.interval_scale is not None:
        variance = fit.interval_scale**2 * (fit_var + fit.noise**2)
    else:
        scale = fit.cv_rms if fit.cv_rms is not None else fit.noise
        variance = fit_var + scale**2
    length_sd = length_extrapolation_sd(law, validation_set, curve_steps)
    half = z * np.sqrt(variance + np.square(length_sd))
    lower, upper = mean * np.exp(-half), mean * np.exp(half)
    picked = report_index
    forecast = LossForecast(
        steps=[],  # filled by the caller, which knows the step numbers
        mean=mean[picked].tolist(),
        lower=lower[picked].tolist(),
        upper=upper[picked].tolist(),
        initial=float(mean[0]),
        final=float(mean[-1]),
        final_lower=float(lower[-1]),
        final_upper=float(upper[-1]),
    )
    return forecast, mean


def _turning_step(general_curve: np.ndarray) -> int | None:
    """First step after the general loss peaks at which it is back at its step-0 value.

    0 when it never rises above it; None when it has not recovered by the last step.
    """
    start = general_curve[0]
    peak = int(np.argmax(general_curve))
    if general_curve[peak] <= start:
        return 0
    recovered = np.flatnonzero(general_curve[peak:] <= start)
    return int(peak + recovered[0]) if recovered.size else None


#: Laws that sum over the drop history predict a long run's curve on about this many
#: evenly spaced steps (plus the requested ones), then every step only where the turning
#: length is decided; S2 laws and shorter runs get every step directly.
CURVE_SAMPLES = 256


def _curve_steps(law: FittedLaw, total: int, report: np.ndarray) -> np.ndarray:
    if not law.needs_history or total <= 2 * CURVE_SAMPLES:
        return np.arange(total + 1)
    grid = np.linspace(0, total, CURVE_SAMPLES + 1).round().astype(int)
    return np.union1d(grid, report)


def _sampled_turning_step(
    steps: np.ndarray, general_curve: np.ndarray, curve_at: Callable[[np.ndarray], np.ndarray]
) -> int | None:
    """:func:`_turning_step` from a curve sampled at ``steps``, made exact by evaluating
    every step (``curve_at``) between the samples around the recovery."""
    coarse = _turning_step(general_curve)
    if coarse is None or coarse == 0 or steps[coarse] - steps[coarse - 1] <= 1:
        return None if coarse is None else int(steps[coarse])
    between = np.arange(steps[coarse - 1] + 1, steps[coarse] + 1)
    inside = np.flatnonzero(curve_at(between) <= general_curve[0])
    return int(between[inside[0]]) if inside.size else int(steps[coarse])


def predict(
    law: FittedLaw,
    schedule: Schedule,
    replay_ratio: float,
    *,
    checkpoint: str | None = None,
    steps: list[int] | np.ndarray | None = None,
    tokens_per_step: int | None = None,
    domain_tokens: float | None = None,
    level: float = 0.9,
) -> Prediction:
    """Predict the general and domain loss of a CPT run.

    Parameters
    ----------
    law : a fitted law (:func:`cptopt.fit` or :func:`cptopt.load_law`).
    schedule : the CPT LR schedule.
    replay_ratio : share of general (PT-like) data in each CPT batch, in [0, 1].
    checkpoint : which PT checkpoint CPT starts from (needed when the law knows several).
    steps : CPT steps to report (default: 0, 10 evenly spaced steps, and the last).
    tokens_per_step : tokens per CPT step (default: the pilots', when they share one).
    domain_tokens : unique tokens of the domain corpus (default: the manifest's); with
        ``tokens_per_step`` the steps that repeat domain data count less (docs/law.md).
    level : central probability of the intervals (default 0.9).
    """
    law.require_cpt("predicting a CPT run")
    name, state = law.checkpoint_state(checkpoint)
    return predict_from_state(
        law,
        schedule,
        replay_ratio,
        name,
        state,
        steps=steps,
        tokens_per_step=tokens_per_step,
        domain_tokens=domain_tokens,
        level=level,
    )


def predict_from_state(
    law: FittedLaw,
    schedule: Schedule,
    replay_ratio: float,
    checkpoint: str,
    state: CheckpointState,
    *,
    steps: list[int] | np.ndarray | None = None,
    tokens_per_step: int | None = None,
    domain_tokens: float | None = None,
    level: float = 0.9,
    require_positive: bool = True,
) -> Prediction:
    """:func:`predict` from a checkpoint's area state (e.g. a PT step no pilot started from).

    ``require_positive`` False returns predictions whose loss is not positive (far outside
    what the law can predict) instead of raising, for callers that mark them themselves.
    """
    law.require_cpt("predicting a CPT run")
    if not 0.0 <= replay_ratio <= 1.0:
        raise InputError(f"replay_ratio == {replay_ratio!r}, must be in [0, 1]")
    if not 0.0 < level < 1.0:
        raise InputError(f"level == {level!r}, must be in (0, 1)")
    lr = schedule.lr_array()
    total = lr.size
    if steps is None:
        report = np.unique(np.linspace(0, total, 11).round().astype(int))
    else:
        report = np.unique(np.asarray(steps, dtype=int))
        if report.size == 0 or report.min() < 0 or report.max() > total:
            raise InputError(f"report steps must lie in 0..{total}")
    curve_steps = _curve_steps(law, total, report)

    def areas_at(steps: np.ndarray) -> Areas:
        return law.point_areas(lr, steps, state, replay_ratio, tokens_per_step, domain_tokens)

    areas = areas_at(curve_steps)
    z = z_value(level)
    report_index = np.searchsorted(curve_steps, report)
    general, general_curve = _forecast(
        law, "general", areas, curve_steps, report_index, z, require_positive
    )
    domain, _ = _forecast(law, "domain", areas, curve_steps, report_index, z, require_positive)
    general.steps = domain.steps = report.tolist()
    general_law, general_values = law.form_for("general"), np.asarray(law.general.values)

    def general_at(steps: np.ndarray) -> np.ndarray:
        return general_law.evaluate(general_values, areas_at(steps))

    turning_step = _sampled_turning_step(curve_steps, general_curve, general_at)
    flags = coverage_flags(
        law,
        peak_lr=schedule.peak,
        replay_ratio=replay_ratio,
        steps=total,
        checkpoint=checkpoint,
        tokens_per_step=tokens_per_step,
    )
    return Prediction(
        schedule=schedule.describe(),
        peak_lr=schedule.peak,
        steps=total,
        replay_ratio=replay_ratio,
        checkpoint=checkpoint,
        level=level,
        general=general,
        domain=domain,
        in_range=not flags,
        flags=flags,
        notes=list(law.notes),
        general_turning_step=turning_step,
        general_rise=float(general_curve[-1] - general_curve[0]),
    )


# ------------------------------------------------------------------ pre-training schedules


class PretrainPrediction(BaseModel):
    """What a law fitted to pre-training pilots predicts for one pre-training schedule."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["pretrain"] = "pretrain"
    schedule: str
    peak_lr: float
    steps: int
    warmup_steps: int = Field(
        description="the annealing memory starts after it; the law describes the loss after it"
    )
    level: float
    loss: LossForecast = Field(description="the validation loss at the reported steps")
    in_range: bool
    flags: list[str] = Field(description="settings outside what the pilots covered")
    notes: list[str]


def pretrain_coverage_flags(
    law: FittedLaw, *, peak_lr: float, steps: int, tokens_per_step: int | None = None
) -> list[str]:
    """One message per setting of a pre-training schedule outside what the pilots covered."""
    flags = _lr_flags(law, peak_lr)
    longest = law.coverage.steps_max
    if steps > longest:
        flags.append(
            f"{steps} steps beyond the longest pilot ({longest}): "
            f"{steps / longest:.1f}x the longest fitted run"
        )
    return flags + _tokens_flags(law, tokens_per_step, "the law counts steps, not tokens")


def pretrain_warmup(schedule: Schedule) -> int:
    """A schedule's warmup: its own, or (custom) the steps before its LR first peaks."""
    if schedule.family == "custom":
        return infer_warmup(schedule.lr_array())
    return schedule.n_warmup


def predict_pretrain(
    law: FittedLaw,
    schedule: Schedule,
    *,
    steps: list[int] | np.ndarray | None = None,
    warmup_steps: int | None = None,
    tokens_per_step: int | None = None,
    level: float = 0.9,
) -> PretrainPrediction:
    """Predict the loss curve of a pre-training schedule (a law fitted to pre-training pilots).

    Parameters
    ----------
    law : a law fitted to pre-training pilots (``law.kind == "pretrain"``).
    schedule : the whole pre-training schedule, from step 1.
    steps : steps to report, after the warmup (default: the first step after it, 10 evenly
        spaced steps and the last); the law describes the loss after the warmup only.
    warmup_steps : the annealing memory starts after it (default: the schedule's own, or for
        a custom schedule the steps before its LR first reaches its peak).
    tokens_per_step : flagged when it differs from the pilots'.
    level : central probability of the intervals (default 0.9).

    Intervals as for CPT predictions (module docstring); beyond the longest pilot they
    widen by the pilots' own length-extrapolation error per doubling.
    """
    if law.kind != "pretrain":
        raise InputError(
            "this law was fitted to CPT pilots; a pre-training schedule needs a law fitted to "
            "pre-training pilots (manifest 'kind: pretrain')"
        )
    if not 0.0 < level < 1.0:
        raise InputError(f"level == {level!r}, must be in (0, 1)")
    lr = schedule.lr_array()
    total = lr.size
    warmup = pretrain_warmup(schedule) if warmup_steps is None else int(warmup_steps)
    if not 0 <= warmup < total:
        raise InputError(f"warmup_steps == {warmup}, must be in 0..{total - 1}")
    first = warmup + 1
    if steps is None:
        report = np.unique(np.linspace(first, total, 11).round().astype(int))
    else:
        report = np.unique(np.asarray(steps, dtype=int))
        if report.size == 0 or report.min() < first or report.max() > total:
            raise InputError(
                f"report steps must lie in {first}..{total} (after the {warmup}-step warmup: "
                "the law describes the loss after it)"
            )
    curve_steps = np.union1d(report, [first, total])
    areas = law.pretrain_point_areas(lr, warmup, curve_steps)
    report_index = np.searchsorted(curve_steps, report)
    loss, _ = _forecast(law, "general", areas, curve_steps, report_index, z_value(level))
    loss.steps = report.tolist()
    flags = pretrain_coverage_flags(
        law, peak_lr=schedule.peak, steps=total, tokens_per_step=tokens_per_step
    )
    return PretrainPrediction(
        schedule=schedule.describe(),
        peak_lr=schedule.peak,
        steps=total,
        warmup_steps=warmup,
        level=level,
        loss=loss,
        in_range=not flags,
        flags=flags,
        notes=list(law.notes),
    )
