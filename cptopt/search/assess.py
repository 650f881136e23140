"""Assessments: a setting with everything the law predicts for it, for the report.

The search finds settings with the vectorised :class:`~cptopt.search.evaluate.Evaluator`;
the few it reports (the recommendation, alternatives, baselines, ranked candidates) are
then predicted in full (:func:`~cptopt.prediction.predict_run`): intervals, the
general loss's turning step, and the flags of settings outside what the pilots covered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cptopt.law.fitted import CptLaw
from cptopt.law.uncertainty import jackknife_variance, z_value
from cptopt.prediction import predict_run
from cptopt.schedules import Schedule
from cptopt.search.evaluate import CheckpointChoice, Evaluator, violation_text
from cptopt.search.models import Assessment, Constraints, Setting
from cptopt.search.shapes import Batch
from cptopt.search.space import ResolvedSpace

INVALID_FLAG = "the law predicts a non-positive loss here: far outside what it can predict"


@dataclass(frozen=True)
class Scored:
    """What the evaluator found for one setting: objective, its standard error, and the
    constraints it breaks (one line each)."""

    objective: float
    objective_se: float
    violations: list[str]


def broken_constraints(
    violations: dict[str, np.ndarray], index: int, constraints: Constraints
) -> list[str]:
    """One line per constraint that setting ``index`` breaks."""
    return [
        violation_text(name, float(values[index]), constraints)
        for name, values in violations.items()
        if values[index] > 0
    ]


def assess(
    law: CptLaw,
    label: str,
    schedule: Schedule,
    replay_ratio: float,
    checkpoint: CheckpointChoice,
    scored: Scored,
    *,
    level: float,
    tokens_per_step: int | None,
    domain_tokens: float | None,
    setting: Setting | None = None,
) -> Assessment:
    """The full assessment of one setting (see the module docstring)."""
    z = z_value(level)
    steps = schedule.n_steps
    run = law.scenario.run(
        schedule.lr_array(),
        replay_ratio,
        checkpoint.label,
        state=checkpoint.state,
        tokens_per_step=tokens_per_step,
        domain_tokens=domain_tokens,
    )
    prediction = predict_run(
        run, law, schedule, steps=[0, steps], level=level, require_positive=False
    )
    general, domain = prediction.general, prediction.domain
    finals = (general.final, domain.final)
    invalid = [] if np.isfinite(finals).all() and min(finals) > 0 else [INVALID_FLAG]
    flags = invalid + prediction.flags
    tokens = steps * tokens_per_step if tokens_per_step else None
    epochs = None
    if domain_tokens and tokens_per_step:
        epochs = (1 - replay_ratio) * steps * tokens_per_step / domain_tokens
    turning = prediction.general_turning_step
    return Assessment(
        label=label,
        setting=setting,
        schedule=f"{schedule.describe()}, replay {replay_ratio:.3g}, from '{checkpoint.label}'",
        objective=scored.objective,
        objective_lower=scored.objective - z * scored.objective_se,
        objective_upper=scored.objective + z * scored.objective_se,
        objective_se=scored.objective_se,
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
        feasible=not scored.violations,
        violations=scored.violations,
        in_range=not flags,
        flags=flags,
    )


def assess_batch(
    evaluator: Evaluator,
    space: ResolvedSpace,
    batch: Batch,
    labels: list[str],
    constraints: Constraints,
    level: float,
) -> list[Assessment]:
    """:func:`assess` every setting of ``batch`` (``labels[i]`` names setting ``i``)."""
    general, domain, objective = evaluator.losses(batch, replicas=True)
    se = np.sqrt(jackknife_variance(objective[1:]))
    violations = evaluator.violations(
        batch.steps, batch.replay_ratio, batch.checkpoint, general[0], domain[0]
    )
    out = []
    for i, label in enumerate(labels):
        setting = space.setting(batch, i)
        scored = Scored(
            float(objective[0][i]), float(se[i]), broken_constraints(violations, i, constraints)
        )
        out.append(
            assess(
                evaluator.law,
                label,
                setting.schedule(),
                setting.replay_ratio,
                space.checkpoints[int(batch.checkpoint[i])],
                scored,
                level=level,
                tokens_per_step=space.tokens_per_step,
                domain_tokens=constraints.domain_tokens,
                setting=setting,
            )
        )
    return out
