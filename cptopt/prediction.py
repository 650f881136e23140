"""Predict a planned run's loss curves from a fitted law, with intervals: both losses of a
CPT run from a CPT law, the loss of a pre-training run from a law fitted to pre-training
pilots. One path for both: the law's scenario turns the run into the law's inputs and
names the validation sets, each forecast the same way (:func:`predict_run`).

Intervals combine computed sources of error (nothing is assumed):
- the eval noise and the law's misfit: the robust SD of the fit's log residuals (``noise``);
- how much less the fit knows here than at the pilots: the jackknife spread of this
  prediction over the laws refitted with one pilot left out, which grows away from them
  (large where one pilot alone holds a replay ratio or an LR);
- calibrated on the pilots themselves: both together are scaled (``interval_scale``, from
  the fit, :func:`cptopt.fitting.assemble.interval_scale`) so that they cover 90 % of the
  points of each pilot when it was left out of the fit;
- where the law is an average of forms (:class:`~cptopt.law.averaged.AveragedLaw`, the
  default fit's), how much its members disagree here: the between-member variance of the
  model average, ``sum_k w_k (log mu_k - log mu)^2`` (``between``), which is near 0 where
  the pilots are (the members were fitted to them) and grows where they extrapolate
  differently. It is added as it is, not scaled: ``interval_scale`` calibrates the
  within-member spread on the average's own left-out errors, and the pilots cannot tell
  the two apart (nested leave-one-pilot-out on the bundled domains: 90.3 % of the pilots'
  points covered with it unscaled, 89.3 % inside a scale recalibrated with it), while
  unscaled needs no change to the calibration nor to law files. At the left-out pilots'
  final points it was a median 0.16 of the calibrated spread, largest (3-5 %) where their
  error was small (0.2-0.5 %, cyr's domain loss). It cannot widen where the members agree
  and are wrong together (code's domain loss at 3x the pilots' LR);
- beyond the pilots' longest run, how wrong the law was when it extrapolated the pilots'
  first halves to their ends (``length_rms``, from the fit), once per doubling of length;
- pre-training schedules: where the schedule anneals unlike any pilot, the SD the pilots'
  left-out runs showed per unit of anneal-depth gap (``depth_sd``, from the fit; the gap,
  :mod:`cptopt.law.anneal_coverage`).
All are on the log scale; the interval is
``pred * exp(+-z * sqrt(scale^2 (noise^2 + jackknife^2) + between + length^2 + gap^2))``
(``between`` 0 for a single form).
Without cross-validation (fewer than 3 pilots, or no jackknife) there is neither a scale
nor a spread: the eval noise (and ``between``) alone set the interval, which is then too
narrow (the report says so).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import singledispatch
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cptopt._version import __version__
from cptopt.exceptions import InputError, param
from cptopt.law.areas import Areas
from cptopt.law.averaged import AveragedLaw
from cptopt.law.fitted import CptLaw, LawRecord, PretrainRunsLaw
from cptopt.law.forms import LawForm
from cptopt.law.scenario import CptRunInput, PretrainRunInput, RunInput
from cptopt.law.uncertainty import between_member_variance, jackknife_variance, z_value
from cptopt.schedules import Schedule


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

    cptopt_version: str = __version__
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

    def forecasts(self) -> dict[str, LossForecast]:
        """The forecast of each validation set."""
        return {"general": self.general, "domain": self.domain}


class PretrainPrediction(BaseModel):
    """What a law fitted to pre-training pilots predicts for one pre-training schedule."""

    model_config = ConfigDict(extra="forbid")

    cptopt_version: str = __version__
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

    def forecasts(self) -> dict[str, LossForecast]:
        """The forecast of each validation set (one: the loss)."""
        return {"loss": self.loss}


def length_extrapolation_sd(
    law: LawRecord, validation_set: str, steps: np.ndarray
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


def member_variance(form: LawForm, values: list[float], areas: Areas) -> np.ndarray | float:
    """Log-scale variance between the members of an averaged law at ``areas``
    (:func:`~cptopt.law.uncertainty.between_member_variance`, the members under the fit's
    ``values`` and weights); 0 for a single form (every pre-training law)."""
    if not isinstance(form, AveragedLaw):
        return 0.0
    return between_member_variance(*form.member_predictions(np.asarray(values), areas))


def _forecast(
    law: LawRecord,
    validation_set: str,
    areas: Areas,
    curve_steps: np.ndarray,
    report_index: np.ndarray,
    z: float,
    require_positive: bool = True,
    extra_sd: np.ndarray | float = 0.0,
) -> tuple[LossForecast, np.ndarray]:
    """The forecast at ``curve_steps``; ``extra_sd``: a log-scale SD per point added to the
    interval (pre-training schedules: the anneal-depth gap's)."""
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
    # the members' disagreement, outside the scale (the module docstring says why)
    between = member_variance(form, fit.values, areas)
    if fit.interval_scale is not None:
        variance = fit.interval_scale**2 * (fit_var + fit.noise**2) + between
    else:
        scale = fit.cv_rms if fit.cv_rms is not None else fit.noise
        variance = fit_var + scale**2 + between
    length_sd = length_extrapolation_sd(law, validation_set, curve_steps)
    half = z * np.sqrt(variance + np.square(length_sd) + np.square(extra_sd))
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


def _curve_steps(law: LawRecord, total: int, report: np.ndarray) -> np.ndarray:
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


def _forecasts(
    law: LawRecord,
    run: RunInput,
    curve_steps: np.ndarray,
    report: np.ndarray,
    level: float,
    require_positive: bool,
    extra_sd: np.ndarray | float = 0.0,
) -> tuple[dict[str, LossForecast], dict[str, np.ndarray]]:
    """Every validation set's forecast at the ``report`` steps and its curve at
    ``curve_steps``: the one path of every prediction (the scenario builds the inputs;
    ``extra_sd``, a log-scale SD added at each of ``curve_steps``)."""
    areas = law.scenario.inputs(run, curve_steps, law.needs)  # type: ignore[arg-type]
    index = np.searchsorted(curve_steps, report)
    forecasts, curves = {}, {}
    for name in law.validation_sets:
        forecast, curve = _forecast(
            law, name, areas, curve_steps, index, z_value(level), require_positive, extra_sd
        )
        forecast.steps = report.tolist()
        forecasts[name], curves[name] = forecast, curve
    return forecasts, curves


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise InputError(f"{param('level')} == {level!r}, must be in (0, 1)")


def predict(
    law: CptLaw | PretrainRunsLaw,
    schedule: Schedule,
    replay_ratio: float | None = None,
    *,
    checkpoint: str | None = None,
    steps: list[int] | np.ndarray | None = None,
    tokens_per_step: int | None = None,
    domain_tokens: float | None = None,
    warmup_steps: int | None = None,
    level: float = 0.9,
) -> Prediction | PretrainPrediction:
    """Predict a planned run: both losses of a CPT run (a :class:`CptLaw`), or the loss of
    a pre-training run (a :class:`PretrainRunsLaw`).

    Parameters
    ----------
    law : a fitted law (:func:`cptopt.fit` or :func:`cptopt.load_law`).
    schedule : the run's LR schedule (a pre-training run's whole schedule, from step 1).
    replay_ratio : CPT runs: share of general (PT-like) data in each batch, in [0, 1].
    checkpoint : CPT runs: the PT checkpoint CPT starts from (needed when the law knows
        several).
    steps : steps to report (default: CPT, step 0, 10 evenly spaced steps and the last;
        pre-training, the first step after the warmup, 10 evenly spaced steps and the last:
        the law describes the loss after the warmup only).
    tokens_per_step : tokens per step (CPT default: the pilots', when they share one);
        flagged when it differs from the pilots'.
    domain_tokens : CPT runs: unique tokens of the domain corpus (default: the manifest's);
        with ``tokens_per_step`` the steps that repeat domain data count less (docs/law.md).
    warmup_steps : pre-training runs: the annealing memory starts after it (default: the
        schedule's own, or for a custom schedule the steps before its LR first peaks).
    level : central probability of the intervals (default 0.9).

    The law's scenario decides which options apply (a replay ratio is required for a CPT
    run and refused for a pre-training one).
    """
    run = law.scenario.planned(
        schedule,
        replay_ratio,
        checkpoint=checkpoint,
        tokens_per_step=tokens_per_step,
        domain_tokens=domain_tokens,
        warmup_steps=warmup_steps,
    )
    return predict_run(run, law, schedule, steps=steps, level=level)


@singledispatch
def predict_run(
    run: RunInput,
    law: CptLaw | PretrainRunsLaw,
    schedule: Schedule,
    *,
    steps: list[int] | np.ndarray | None = None,
    level: float = 0.9,
    require_positive: bool = True,
) -> Prediction | PretrainPrediction:
    """Predict ``run`` (from ``law.scenario``: ``planned``, ``plan_run`` or ``run``) of
    ``schedule`` with ``law`` (see :func:`predict`). ``require_positive`` False returns
    predictions whose loss is not positive (far outside what the law can predict) instead
    of raising, for callers that mark them themselves."""
    raise TypeError(f"not a run a law reads: {type(run).__name__}")


@predict_run.register
def _predict_cpt_run(
    run: CptRunInput,
    law: CptLaw,
    schedule: Schedule,
    *,
    steps: list[int] | np.ndarray | None = None,
    level: float = 0.9,
    require_positive: bool = True,
) -> Prediction:
    _check_level(level)
    report = run.report_steps(steps)
    total = run.steps
    curve_steps = _curve_steps(law, total, report)
    forecasts, curves = _forecasts(law, run, curve_steps, report, level, require_positive)
    general_law, general_values = law.form_for("general"), np.asarray(law.general.values)

    def general_at(steps: np.ndarray) -> np.ndarray:
        return general_law.evaluate(general_values, law.run_inputs(run, steps))

    general_curve = curves["general"]
    turning_step = _sampled_turning_step(curve_steps, general_curve, general_at)
    flags = law.scenario.coverage_flags(
        peak_lr=schedule.peak,
        replay_ratio=run.replay_ratio,
        steps=total,
        checkpoint=run.checkpoint,
        tokens_per_step=run.tokens_per_step,
    )
    return Prediction(
        schedule=schedule.describe(),
        peak_lr=schedule.peak,
        steps=total,
        replay_ratio=run.replay_ratio,
        checkpoint=run.checkpoint,
        level=level,
        general=forecasts["general"],
        domain=forecasts["domain"],
        in_range=not flags,
        flags=flags,
        notes=list(law.notes),
        general_turning_step=turning_step,
        general_rise=float(general_curve[-1] - general_curve[0]),
    )


@predict_run.register
def _predict_pretrain_run(
    run: PretrainRunInput,
    law: PretrainRunsLaw,
    schedule: Schedule,
    *,
    steps: list[int] | np.ndarray | None = None,
    level: float = 0.9,
    require_positive: bool = True,
) -> PretrainPrediction:
    _check_level(level)
    report = run.report_steps(steps)
    curve_steps = np.union1d(report, [run.warmup_steps + 1, run.steps])
    gap_sd = law.anneal_sd(run, curve_steps)
    forecasts, _ = _forecasts(law, run, curve_steps, report, level, require_positive, gap_sd)
    flags = law.scenario.coverage_flags(
        peak_lr=schedule.peak,
        steps=run.steps,
        tokens_per_step=run.tokens_per_step,
        lowest_lr=float(run.lr[run.warmup_steps :].min()),
    )
    return PretrainPrediction(
        schedule=schedule.describe(),
        peak_lr=schedule.peak,
        steps=run.steps,
        warmup_steps=run.warmup_steps,
        level=level,
        loss=forecasts["loss"],
        in_range=not flags,
        flags=flags,
        notes=list(law.notes),
    )
