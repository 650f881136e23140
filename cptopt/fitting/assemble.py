"""Law-file assembly: turn the fit results into the records of a law file.

The records of each validation set (parameters with jackknife standard errors, per-pilot
fit and CV errors, the interval scale) are computed here from a
:class:`~cptopt.fitting.crossval.SetResult`; what the pilots covered, their inputs and
notes come from their scenario.
"""

from __future__ import annotations

import numpy as np

from cptopt.fitting.crossval import SetResult
from cptopt.fitting.optimise import at_bound, relative_residuals
from cptopt.law.forms import LawForm
from cptopt.law.parameters import Parameter
from cptopt.law.records import PretrainRecord, RunFit, SetFit
from cptopt.law.scenario import Scenario
from cptopt.law.uncertainty import jackknife_variance, robust_sd, z_value
from cptopt.pilots.runs import PretrainHistory


def set_fit_record(
    result: SetResult, scenario: Scenario, with_jackknife: bool, pt_points: str = "all"
) -> SetFit:
    """The law-file record of one validation set's fit (``pt_points``: those pooled), its
    pilots named as the ``scenario`` names them."""
    law, data, best = result.law, result.data, result.best
    residuals = relative_residuals(law, best.values, data)
    cpt_points = (data.run_index >= 0) & (data.step > 0)
    replica_array = np.array(result.replicas) if result.replicas and with_jackknife else None
    stderr = np.sqrt(jackknife_variance(replica_array)) if replica_array is not None else None
    run_fits, names = [], scenario.run_names
    for index in sorted({int(i) for i in data.run_index if i >= 0}):
        mask = (data.run_index == index) & (data.step > 0)
        if not mask.any():
            continue
        errors = residuals[mask]
        held = result.held_out.get(index)
        run_fits.append(
            RunFit(
                name=names[index],
                n_points=int(mask.sum()),
                mean_abs_error=float(np.abs(errors).mean()),
                max_abs_error=float(np.abs(errors).max()),
                final_error=float(errors[-1]),
                cv_mean_abs_error=None if held is None else float(np.abs(held).mean()),
                cv_final_error=None if held is None else float(held[-1]),
            )
        )
    bound_names = at_bound(law, best.values)
    parameters, weak = parameter_records(law, best.values, stderr, bound_names)
    named = dict(zip(law.names, best.values.tolist(), strict=True))
    total = float(((data.loss - data.loss.mean()) ** 2).sum())
    predicted = law.evaluate(best.values, data.areas)
    r2 = 1.0 - float(((predicted - data.loss) ** 2).sum()) / total if total > 0 else float("nan")
    shared = scenario.shared_replay_folds() or None
    cv_rms = result.cv_rms(shared)
    noise = robust_sd(np.log1p(residuals[cpt_points])) if cpt_points.any() else 0.0
    return SetFit(
        validation_set=law.validation_set,
        form=law.name,
        lr_power=law.lr_power,
        pt_points=pt_points,  # type: ignore[arg-type]
        parameter_names=law.names,
        values=best.values.tolist(),
        parameters=parameters,
        derived=law.derived(named),
        jackknife=[] if replica_array is None else replica_array.tolist(),
        noise=noise,
        n_points=int(data.loss.size),
        n_pretrain_points=int((data.run_index < 0).sum()),
        r2=r2,
        mean_abs_error=float(np.abs(residuals[cpt_points]).mean()) if cpt_points.any() else 0.0,
        huber_cost=best.cost,
        cv_error=result.cv_error,
        # The held-out error where a prediction stays inside the pilots' replay range (as
        # a decision's candidates do); leaving out the only pilot at a replay ratio
        # measures replay extrapolation, which the jackknife spread covers.
        cv_rms=cv_rms,
        interval_scale=interval_scale(result, noise),
        length_rms=result.length_rms,
        runs=run_fits,
        at_bound=bound_names,
        weakly_identified=weak,
        starts_agree=best.starts_agree,
    )


#: Interval calibration: the intervals are scaled to cover this share of the pilots' own
#: left-out points (the level of the intervals ``predict`` reports by default) ...
CALIBRATION_LEVEL = 0.9


def parameter_records(
    law: LawForm, values: np.ndarray, stderr: np.ndarray | None, bound_names: list[str]
) -> tuple[list[Parameter], list[str]]:
    """Each parameter with its jackknife standard error, and the weakly identified ones
    (standard error above the value's size)."""
    parameters, weak = [], []
    for i, spec in enumerate(law.specs):
        se = None if stderr is None else float(stderr[i])
        value = float(values[i])
        if se is not None and (value == 0 or se > abs(value)):
            weak.append(spec.name)
        parameters.append(
            Parameter(
                name=spec.name,
                value=value,
                min=spec.lower,
                max=spec.upper,
                stderr=se,
                at_bound=spec.name in bound_names,
                description=spec.description,
            )
        )
    return parameters, weak


def interval_scale(result: SetResult, noise: float) -> float | None:
    """Factor that makes ``sqrt(noise^2 + jackknife spread^2)`` cover the pilots' left-out
    points at :data:`CALIBRATION_LEVEL` (None without cross-validation).

    For every pilot left out, each of its points' log error under the refit is divided by
    the spread the law gives that point (eval noise and misfit, ``noise``, with the
    jackknife spread of its prediction, which is large where leaving a pilot out changes
    the fit, as for the only pilot at a replay ratio or an LR). The factor is the
    :data:`CALIBRATION_LEVEL` quantile of those ratios over the normal quantile, each pilot
    weighted equally: the pilots' own held-out errors calibrate the intervals, with no
    target run involved.
    """
    if not result.held_out or len(result.replicas) < 2:
        return None
    data, replicas = result.data, np.array(result.replicas)
    # Every left-out pilot's points in one evaluation: a point's prediction does not depend
    # on the others evaluated with it, and each evaluation runs over every pilot's steps.
    held = {run: (data.run_index == run) & (data.step > 0) for run in result.held_out}
    union = np.logical_or.reduce(list(held.values()))
    spreads = jackknife_variance(
        np.log(np.maximum(result.law.evaluate(replicas, data.areas.take(union)), 1e-12))
    )
    ratios, weights = [], []
    for run, errors in result.held_out.items():
        spread = spreads[held[run][union]]
        ratios.append(np.abs(np.log1p(errors)) / np.sqrt(noise**2 + spread + 1e-12))
        weights.append(np.full(errors.size, 1.0 / errors.size))
    quantile = np.quantile(
        np.concatenate(ratios),
        CALIBRATION_LEVEL,
        weights=np.concatenate(weights),
        method="inverted_cdf",
    )
    return float(quantile / z_value(CALIBRATION_LEVEL))


def pretrain_record(history: PretrainHistory) -> PretrainRecord:
    """The PT history a law needs to continue the areas."""
    return PretrainRecord(
        known=history.known,
        warmup_steps=history.warmup_steps,
        checkpoints=dict(history.checkpoints),
        final_lr=history.final_lr,
        lr=None if history.lr is None else history.lr.tolist(),
    )
