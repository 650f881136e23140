"""cptopt: fit the CPT scaling law to pilot runs, predict any CPT schedule, choose settings.

Pilots that are pre-training runs (a manifest with ``kind: pretrain``) get the law's
pre-training part, and ``predict`` then predicts pre-training schedules.

The data flows one way: logs -> runs -> areas -> law -> fit -> search -> report.

>>> from cptopt import fit, predict, load_manifest, Schedule
>>> law = fit("examples/pilots/unannealed.yaml")                      # doctest: +SKIP
>>> schedule = Schedule(family="wsd", peak_lr=2e-3, steps=1000, warmup_steps=20)
>>> predict(law, schedule, replay_ratio=0.25).domain.final           # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from cptopt._version import __version__
from cptopt.design.next_pilot import NextPilot
from cptopt.exceptions import (
    CptoptError,
    FitError,
    IdentifiabilityError,
    InfeasibleError,
    InputError,
    NotFittedError,
    SchemaVersionError,
)
from cptopt.fitting.estimator import LawFitter
from cptopt.law.fitted import (
    DEFAULT_LAW_PATH,
    CptLaw,
    FittedLaw,
    LawRecord,
    cpt_law,
    load_cpt_law,
    load_law,
)
from cptopt.limits import CheckReport, check
from cptopt.pilots import PilotSet, PretrainPilots, PretrainRun, Run, load_manifest
from cptopt.pilots.logs import read_log
from cptopt.plan import PretrainConfig, TrainingConfig, load_config, load_pretrain_config
from cptopt.prediction import Prediction, PretrainPrediction
from cptopt.prediction import predict as _predict
from cptopt.schedules import Schedule
from cptopt.search.recommendation import Recommendation

__all__ = [
    "DEFAULT_LAW_PATH",
    "CheckReport",
    "CptoptError",
    "FitError",
    "FittedLaw",
    "IdentifiabilityError",
    "InfeasibleError",
    "InputError",
    "LawFitter",
    "NextPilot",
    "NotFittedError",
    "PilotSet",
    "Prediction",
    "PretrainConfig",
    "PretrainPilots",
    "PretrainPrediction",
    "PretrainRun",
    "Recommendation",
    "Run",
    "Schedule",
    "SchemaVersionError",
    "TrainingConfig",
    "__version__",
    "check",
    "fit",
    "load_config",
    "load_law",
    "load_manifest",
    "load_pretrain_config",
    "next_pilot",
    "predict",
    "read_log",
    "recommend",
]


def fit(pilots: PilotSet | PretrainPilots | str | Path, **settings: object) -> FittedLaw:
    """Fit the CPT law to pilot runs (a :class:`PilotSet` or a manifest path); to
    pre-training runs (:class:`PretrainPilots`, ``kind: pretrain``), its pre-training part.

    ``settings`` are :class:`LawFitter` arguments (``form``, ``lam``, ``seed``, ...).
    """
    if not isinstance(pilots, (PilotSet, PretrainPilots)):
        pilots = load_manifest(pilots)
    return LawFitter(**settings).fit(pilots).law_  # type: ignore[arg-type]


def predict(
    law: FittedLaw | str | Path,
    config: TrainingConfig | PretrainConfig | Schedule | str | Path,
    replay_ratio: float | None = None,
    **options: object,
) -> Prediction | PretrainPrediction:
    """Predict a planned run from a config (object or YAML path) or a schedule.

    A CPT law predicts both losses of a CPT run (with a :class:`Schedule`, pass
    ``replay_ratio``); a law fitted to pre-training pilots the loss of a pre-training run
    (a :class:`PretrainPrediction`; no replay ratio). ``options`` go to
    :func:`cptopt.prediction.predict` (``checkpoint``, ``steps``, ``level``,
    ``tokens_per_step``, ``warmup_steps``); the law's scenario says which apply.
    """
    if not isinstance(law, LawRecord):
        law = load_law(law)
    if isinstance(config, (str, Path)):
        config = law.scenario.read_plan(config)
    if isinstance(config, (TrainingConfig, PretrainConfig)):
        planned = config.model_dump(include={"replay_ratio", "checkpoint", "tokens_per_step"})
        replay_ratio = planned.pop("replay_ratio", replay_ratio)
        options = {**planned, **options}
        config = config.schedule
    if not isinstance(config, Schedule):
        raise InputError("predict: needs a Schedule, a training config or its path")
    return _predict(law, config, replay_ratio, **options)  # type: ignore[arg-type]


def recommend(
    law: FittedLaw | str | Path,
    weights: str | tuple[float, float] = (0.5, 0.5),
    **options: object,
) -> Recommendation:
    """Search the CPT settings minimising ``w_g * L_general(T) + w_d * L_domain(T)``.

    ``law`` is a :class:`FittedLaw` or a law-file path; ``weights`` is ``(w_general,
    w_domain)`` or ``"0.3,0.7"``; ``options`` go to :func:`cptopt.search.recommend`
    (``space``, ``constraints``, ``settings``, ``allow_extrapolation``, ``top_k``, ``level``,
    ``pareto``).
    """
    from cptopt.search.recommendation import recommend as _recommend

    return _recommend(_cpt_law(law, "recommend()"), weights, **options)  # type: ignore[arg-type]


def next_pilot(
    law: FittedLaw | str | Path,
    weights: str | tuple[float, float] = (0.5, 0.5),
    **options: object,
) -> NextPilot:
    """Which pilot run to launch next to improve the decision, and whether to stop piloting.

    ``law`` is a :class:`FittedLaw` or a law-file path; ``weights`` as for :func:`recommend`;
    ``options`` go to :func:`cptopt.search.next_pilot` (``pilots`` (a :class:`PilotSet` or a
    manifest path), ``candidates``, ``options``, ``space``, ``constraints``, ``pilot_steps``,
    ``top_k``, ``tolerance``, ...).
    """
    from cptopt.design.next_pilot import next_pilot as _next_pilot

    pilots = options.get("pilots")
    if isinstance(pilots, (str, Path)):
        options["pilots"] = load_manifest(pilots, kind="cpt", name="pilots")
    law = _cpt_law(law, "next_pilot()")
    return _next_pilot(law, weights, **options)  # type: ignore[arg-type]


def _cpt_law(law: FittedLaw | str | Path, purpose: str) -> CptLaw:
    """A CPT law from a law or its path, narrowed once (a one-line error otherwise)."""
    if isinstance(law, LawRecord):
        return cpt_law(law, purpose)
    return load_cpt_law(law, purpose)
