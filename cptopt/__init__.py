"""cptopt: fit the CPT scaling law to pilot runs, predict any CPT schedule, choose settings.

Choose the peak LR, replay ratio and length of a continual pre-training (CPT) run from a
few short pilot runs: cptopt fits the CPT law of Wang et al. (ICML 2025) to the pilots'
general and domain validation curves, predicts both losses of any schedule with intervals,
searches the settings with Optuna, and says which pilot to run next. Pilots may also be
pre-training runs (a manifest with ``kind: pretrain``): the law is then its pre-training
part, ``predict`` predicts pre-training runs and ``recommend`` searches their schedule.

Quick start (the command line does the same: ``cptopt fit``, ``cptopt predict``, ...)::

    from cptopt import Schedule, fit, predict, recommend
    law = fit("examples/pilots/unannealed.yaml")            # a CptLaw
    schedule = Schedule(family="wsd", peak_lr=1e-3, steps=1000, warmup_fraction=0.02)
    predict(law, schedule, replay_ratio=0.25).domain.final  # with .final_lower/.final_upper
    recommend(law, "0.3,0.7").recommended.setting.describe()
    law.save("cptopt-law.json"); load_law("cptopt-law.json")

The functions (below, in full)
    fit          pilots (a manifest path or a pilot set) -> a fitted law
    predict      a law and a planned run (config, path or schedule) -> its loss curves
    recommend    a CPT law and objective weights -> the best settings, how sure, the baselines;
                 a pre-training law -> the schedule with the lowest final loss
    next_pilot   a CPT law and weights -> which pilot run to launch next, when to stop
    design_pilots  a search space and a pilot length, before any fit -> the first pilots
    check        training configs and limits -> verdicts for CI
    load_law, load_cpt_law, load_manifest, load_config, load_pretrain_config, read_log

The types (``help(cptopt.NAME)`` shows each; they are loaded when first used)
    manifests    PilotManifest (the YAML file), ColumnMap (which log series is what),
                 Schedule (a per-step LR array), TrainingConfig, PretrainConfig
    pilots       PilotSet and Run (CPT pilots), PretrainPilots and PretrainRun
    laws         FittedLaw: CptLaw (general and domain sets) or PretrainRunsLaw (one set,
                 ``loss``), both a LawRecord; LawFitter (scikit-learn style); each law's
                 ``scenario`` builds its inputs
    results      Prediction, PretrainPrediction, Recommendation, PretrainRecommendation,
                 NextPilot, PilotDesign, CheckReport
    errors       CptoptError > InputError (> SchemaVersionError, IdentifiabilityError),
                 FitError, InfeasibleError, NotFittedError; an InputError's ``fields``
                 are the parameters its message names

The stages, one package each (the data flows one way; docs/architecture.md)
    pilots   logs -> runs: log readers, manifests, pilot sets
    law      runs -> areas -> law: areas, forms, scenarios (one per kind of pilot), law files
    fitting  law -> fit: LawFitter, cross-validation, the variant's selection
    prediction, search (recommend, rank_candidates), design (next_pilot, design_pilots),
    limits (check)
    report   renderers; cli: the ``cptopt`` command
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cptopt._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

    from cptopt.design import NextPilot, PilotDesign
    from cptopt.law import DEFAULT_LAW_PATH, CptLaw, FittedLaw, load_cpt_law, load_law
    from cptopt.limits import check
    from cptopt.pilots import PilotSet, PretrainPilots, load_manifest, read_log
    from cptopt.plan import PretrainConfig, TrainingConfig, load_config, load_pretrain_config
    from cptopt.prediction import Prediction, PretrainPrediction
    from cptopt.schedules import Schedule
    from cptopt.search import PretrainRecommendation, Recommendation

#: The types, by the module that defines them: loaded on first use, and not rendered in
#: full by ``help(cptopt)`` (pydantic models are long), which lists them instead.
_TYPES = {
    "cptopt.exceptions": (
        "CptoptError",
        "FitError",
        "IdentifiabilityError",
        "InfeasibleError",
        "InputError",
        "NotFittedError",
        "SchemaVersionError",
    ),
    "cptopt.pilots": (
        "ColumnMap",
        "PilotManifest",
        "PilotSet",
        "PretrainPilots",
        "PretrainRun",
        "Run",
    ),
    "cptopt.schedules": ("Schedule",),
    "cptopt.plan": ("PretrainConfig", "TrainingConfig"),
    "cptopt.law": ("CptLaw", "FittedLaw", "LawRecord", "PretrainRunsLaw"),
    "cptopt.fitting": ("LawFitter",),
    "cptopt.prediction": ("Prediction", "PretrainPrediction"),
    "cptopt.search": ("PretrainRecommendation", "Recommendation"),
    "cptopt.design": ("NextPilot", "PilotDesign"),
    "cptopt.limits": ("CheckReport",),
}
#: The functions and constants that other modules define, by module: loaded on first use
#: too (``import cptopt``, and so every ``cptopt`` command, loads no stage it does not run:
#: ``cptopt fit`` never imports the search, the design or the limits), and rendered by
#: ``help(cptopt)`` as before (``__dir__`` lists them, not the types).
_FUNCTIONS = {
    "cptopt.law": ("DEFAULT_LAW_PATH", "cpt_law", "load_cpt_law", "load_law"),
    "cptopt.limits": ("check",),
    "cptopt.pilots": ("load_manifest", "read_log"),
    "cptopt.plan": ("load_config", "load_pretrain_config"),
}
_HOME = {
    name: module
    for table in (_TYPES, _FUNCTIONS)
    for module, names in table.items()
    for name in names
}
#: The stage packages and shared modules, reachable as attributes (``cptopt.law.CptLaw``)
#: as when this module imported them eagerly.
_SUBMODULES = frozenset(
    {"design", "exceptions", "fitting", "law", "limits", "pilots", "plan", "prediction"}
    | {"report", "schedules", "search", "testing", "_io", "_processes", "_progress"}
    | {"_validation"}
)

__all__ = [
    "CheckReport",
    "ColumnMap",
    "CptLaw",
    "CptoptError",
    "DEFAULT_LAW_PATH",
    "FitError",
    "FittedLaw",
    "IdentifiabilityError",
    "InfeasibleError",
    "InputError",
    "LawFitter",
    "LawRecord",
    "NextPilot",
    "NotFittedError",
    "PilotDesign",
    "PilotManifest",
    "PilotSet",
    "Prediction",
    "PretrainConfig",
    "PretrainPilots",
    "PretrainPrediction",
    "PretrainRecommendation",
    "PretrainRun",
    "PretrainRunsLaw",
    "Recommendation",
    "Run",
    "Schedule",
    "SchemaVersionError",
    "TrainingConfig",
    "__version__",
    "check",
    "design_pilots",
    "fit",
    "load_config",
    "load_cpt_law",
    "load_law",
    "load_manifest",
    "load_pretrain_config",
    "next_pilot",
    "predict",
    "read_log",
    "recommend",
]


def __getattr__(name: str) -> Any:
    """The types and the other modules' functions (see the module docstring), loaded when
    first used."""
    if name in _HOME:
        return getattr(import_module(_HOME[name]), name)
    if name in _SUBMODULES:
        return import_module(f"cptopt.{name}")
    raise AttributeError(f"module 'cptopt' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The names ``dir(cptopt)`` lists: the functions loaded on first use too, so that
    ``help(cptopt)`` renders them; the types only by name (the module docstring)."""
    return sorted({*globals(), *(name for names in _FUNCTIONS.values() for name in names)})


def fit(
    pilots: PilotSet | PretrainPilots | str | Path,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    **settings: object,
) -> FittedLaw:
    """Fit the law to pilot runs: a manifest path, a ``PilotSet`` (CPT pilots: a ``CptLaw``)
    or ``PretrainPilots`` (pre-training runs, ``kind: pretrain``: a ``PretrainRunsLaw``).

    ``settings`` are ``LawFitter`` arguments (``form``, ``lam``, ``annealing``, ``seed``, ...).
    ``progress(stage, done, total)``, if given, hears what runs: "reading logs" (k of n),
    "reading the pre-training history", "selecting the general law" and "... domain law"
    (candidates, the final fit last; both at once), "final fit" (of a fixed variant), ...
    """
    from cptopt.fitting import LawFitter
    from cptopt.pilots import PilotSet, PretrainPilots, load_manifest

    if not isinstance(pilots, (PilotSet, PretrainPilots)):
        pilots = load_manifest(pilots, progress=progress)
    return LawFitter(**settings).fit(pilots, progress).law_  # type: ignore[arg-type]


def predict(
    law: FittedLaw | str | Path,
    config: TrainingConfig | PretrainConfig | Schedule | str | Path,
    replay_ratio: float | None = None,
    **options: object,
) -> Prediction | PretrainPrediction:
    """Predict a planned run from a config (object or YAML path) or a schedule.

    A CPT law predicts both losses of a CPT run (with a ``Schedule``, pass
    ``replay_ratio``); a law fitted to pre-training pilots the loss of a pre-training run
    (a ``PretrainPrediction``; no replay ratio). ``options`` go to
    ``cptopt.prediction.predict`` (``checkpoint``, ``steps``, ``level``,
    ``tokens_per_step``, ``warmup_steps``); the law's scenario says which apply.
    """
    from cptopt.law import LawRecord, load_law
    from cptopt.plan import PretrainConfig, TrainingConfig
    from cptopt.prediction import predict as _predict
    from cptopt.schedules import Schedule

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
        from cptopt.exceptions import InputError

        raise InputError("predict: needs a Schedule, a training config or its path")
    return _predict(law, config, replay_ratio, **options)  # type: ignore[arg-type]


def recommend(
    law: FittedLaw | str | Path,
    weights: str | tuple[float, float] | None = None,
    **options: object,
) -> Recommendation | PretrainRecommendation:
    """Search the settings the law's kind chooses (``cptopt.search.LAW_SEARCHES``).

    A ``CptLaw`` (or its file): the CPT settings minimising
    ``w_g * L_general(T) + w_d * L_domain(T)``; ``weights`` is ``(w_general, w_domain)``
    or ``"0.3,0.7"`` (default 0.5,0.5); ``options`` go to ``cptopt.search.recommend``
    (``space``, ``constraints``, ``settings``, ``allow_extrapolation``, ``top_k``,
    ``level``, ``pareto``). A ``PretrainRunsLaw``: the pre-training schedule with the
    lowest predicted final loss (no weights: one loss); ``options`` go to
    ``cptopt.search.recommend_pretrain`` (``space``, a ``PretrainSearchSpace``;
    ``allow_extrapolation``, ``level``).
    """
    from cptopt.law import LawRecord, load_law
    from cptopt.search import recommend_for

    if not isinstance(law, LawRecord):
        law = load_law(law)
    return recommend_for(law, weights, **options)  # type: ignore[arg-type]


def next_pilot(
    law: FittedLaw | str | Path,
    weights: str | tuple[float, float] = (0.5, 0.5),
    **options: object,
) -> NextPilot:
    """Which pilot run to launch next to improve the decision, and whether to stop piloting.

    ``law`` is a ``CptLaw`` or a law-file path; ``weights`` as for ``recommend``;
    ``options`` go to ``cptopt.design.next_pilot`` (``pilots`` (a ``PilotSet`` or a
    manifest path), ``candidate_pilots``, ``options``, ``space``, ``constraints``,
    ``pilot_steps``, ``top_k``, ``tolerance``, ...).
    """
    from cptopt.design import next_pilot as _next_pilot
    from cptopt.pilots import load_manifest

    pilots = options.get("pilots")
    if isinstance(pilots, (str, Path)):
        options["pilots"] = load_manifest(pilots, kind="cpt", name="pilots")
    law = _cpt_law(law, "next_pilot()")
    return _next_pilot(law, weights, **options)  # type: ignore[arg-type]


def design_pilots(
    space: object = None, constraints: object = None, pilot_steps: int = 1000, **options: object
) -> PilotDesign:
    """The first ``n_pilots`` pilot runs to launch, before any fit, and why each.

    ``space`` and ``constraints``: the ``SearchSpace`` and ``Constraints`` that ``recommend``
    will search (``space.peak_lr`` is required unless ``candidate_pilots`` are given);
    ``options`` go to ``cptopt.design.design_pilots`` (``n_pilots``, ``prior`` (law files
    fitted on other domains; default the bundled code and cyr laws), ``weights``,
    ``pretrain_lr``, ``candidate_pilots``, ``criterion``, ``seed``).
    """
    from cptopt.design import design_pilots as _design_pilots

    return _design_pilots(space, constraints, pilot_steps, **options)  # type: ignore[arg-type]


def _cpt_law(law: FittedLaw | str | Path, purpose: str) -> CptLaw:
    """A CPT law from a law or its path, narrowed once (a one-line error otherwise)."""
    from cptopt.law import LawRecord, cpt_law, load_cpt_law

    if isinstance(law, LawRecord):
        return cpt_law(law, purpose)
    return load_cpt_law(law, purpose)
