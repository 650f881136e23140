"""Fit jobs: one law variant on the pilots' data, its work spread over the workers.

A variant's general and domain fits are independent problems, so they run side by side,
each handing its refits to the :class:`~cptopt.fitting.workers.Runner` (the workers of the
process pool, or this process). A tied variant is one joint problem. Each set's random
starts come from its own generator, seeded from the fitter's seed and the validation set,
so results do not depend on the pool.

How hard a job tries is its :class:`Effort`: while selecting among variants every candidate
gets a cheap fit (one polished start with a capped budget, short leave-one-out refits);
the chosen variant then gets the final fit (two polished starts to convergence).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from cptopt._progress import Progress, report
from cptopt.fitting.averaging import start_set
from cptopt.fitting.crossval import MAX_FOLDS, PendingSet, SetResult, fit_tied
from cptopt.fitting.data import AUTO_PT_POINTS, FIT_POINTS, SELECTION_POINTS, thin
from cptopt.fitting.optimise import Starts
from cptopt.fitting.workers import Runner, SetData
from cptopt.law.averaged import build_law
from cptopt.law.forms import LawForm
from cptopt.law.scenario import CptScenario, FitData, InputNeeds

#: Tied variants share the multi-power memory between the general and the domain law: how
#: fast an LR drop's credit arrives is a property of the optimiser and the schedule.
TIED_PARAMETERS = ("rate", "gamma", "zeta")


@dataclass(frozen=True)
class Variant:
    """A law variant that model selection can choose: replay form and annealing memory.

    ``annealing`` "s2" uses the m-recursion with factor ``lam``; "mpl" the multi-power
    memory (``lam`` None). ``tied``: the memory is shared by the general and domain laws.
    ``lr_power``: the shift is driven by a power of the LR (:meth:`LawForm.shift_drive`).
    """

    form: str
    lam: float | None
    annealing: str = "s2"
    tied: bool = False
    lr_power: bool = False

    @property
    def shared(self) -> tuple[str, ...]:
        """Parameters the general and domain laws share (tied variants only)."""
        return TIED_PARAMETERS if self.tied else ()

    def untied(self) -> Variant:
        return replace(self, tied=False)

    def warm_key(self, validation_set: str) -> tuple[str, str, bool, str]:
        """Key of this variant's optimum among warm starts (S2 lambdas share theirs)."""
        return (self.form, self.annealing, self.lr_power, validation_set)


@dataclass(frozen=True)
class Effort:
    """How hard a fit tries.

    ``n_polish`` starts are optimised until converged or ``polish_budget`` evaluations
    (None: no cap); each leave-one-pilot-out refit gets ``refit_budget`` evaluations; with
    a warm start (a neighbouring variant's optimum) a fit uses ``warm_starts`` starts, the
    warm one included.
    """

    name: str
    n_polish: int
    refit_budget: int
    polish_budget: int | None
    warm_starts: int
    length_check: bool = False
    points: int = FIT_POINTS
    #: Starts also stop when their cost stalls (:class:`~cptopt.fitting.optimise.Stall`).
    stall: bool = False
    max_folds: int = MAX_FOLDS


#: Choosing among variants: slowly converging forms stop early, a warm start is trusted,
#: curves are thinned harder.
SELECTING = Effort(
    "selecting",
    n_polish=1,
    refit_budget=25,
    polish_budget=150,
    warm_starts=1,
    points=SELECTION_POINTS,
    stall=True,
    max_folds=5,  # 5-fold CV beyond MAX_FOLDS pilots (leave-one-out up to there)
)
#: The chosen variant (or a fixed one): polished to convergence, a fresh start as a check,
#: and the length-extrapolation check that widens intervals beyond the pilots' length.
FINAL = Effort(
    "final", n_polish=2, refit_budget=60, polish_budget=None, warm_starts=2, length_check=True
)
#: The chosen variant after a selection, whose candidates explored the starts already:
#: its optimum and a fresh start are probed, the better one polished to convergence.
FINAL_SELECTED = replace(FINAL, n_polish=1)


@dataclass(frozen=True)
class FitSettings:
    """The fitter's settings every job needs."""

    seed: int
    huber_delta: float
    n_starts: int
    n_screen: int
    domain_forward: str = "frozen"
    pt_points: tuple[tuple[str, str], ...] = (("general", "all"), ("domain", "checkpoint"))

    def pt_points_of(self, validation_set: str, resolve: bool = True) -> str:
        """The PT-point policy of a set; "auto" (not yet chosen) as its prior side unless
        ``resolve`` is False."""
        policy = dict(self.pt_points).get(validation_set, "all")
        return AUTO_PT_POINTS[0] if policy == "auto" and resolve else policy


#: Warm starts by :meth:`Variant.warm_key`: a fitted parameter vector.
WarmStarts = dict[tuple[str, str, bool, str], np.ndarray]


def law_for(
    variant: Variant, validation_set: str, scenario: CptScenario, settings: FitSettings
) -> LawForm:
    """The law form of one validation set under ``variant`` and the fitter's settings (an
    averaged law when ``variant.form`` names members: :func:`~cptopt.law.averaged.build_law`)."""
    return build_law(
        variant.form,
        validation_set,
        scenario.replay_terms,
        scenario.checkpoint_known,
        variant.annealing,
        domain_forward=settings.domain_forward,
        lr_power=variant.lr_power,
    )


def fit_with_effort(
    law: LawForm,
    data: FitData | SetData,
    settings: FitSettings,
    effort: Effort,
    rng: np.random.Generator,
    *,
    start: np.ndarray | None = None,
    jackknife: bool = True,
    length_check: bool = False,
    runner: Runner | None = None,
) -> PendingSet:
    """One set's fit with ``effort``: its points thinned to the effort's (the points, or a
    recipe the runner builds them from), fresh starts (``settings.n_starts``) or the warm
    ``start`` (``effort.warm_starts`` in all, it included), the effort's budgets, and its
    leave-one-pilot-out refits (``jackknife``), which run on while the caller goes on."""
    n_starts = settings.n_starts if start is None else effort.warm_starts
    if isinstance(data, SetData):
        thinned: FitData | SetData = replace(data, points=effort.points)
    else:
        thinned = thin(data, effort.points)
    return start_set(
        law,
        thinned,
        delta=settings.huber_delta,
        rng=rng,
        starts=Starts(
            n_starts, settings.n_screen, effort.n_polish, effort.polish_budget, effort.stall
        ),
        refit_budget=effort.refit_budget,
        max_folds=effort.max_folds,
        jackknife=jackknife,
        warm_start=start,
        length_check=length_check,
        runner=runner,
    )


def set_data(
    scenario: CptScenario, variant: Variant, validation_set: str, settings: FitSettings, points: int
) -> SetData:
    """The recipe of one set's fit data under ``variant``, thinned to ``points``."""
    law = law_for(variant, validation_set, scenario, settings)
    needs = InputNeeds(variant.lam, law.needs_history, law.needs_steps)
    return SetData(validation_set, needs, settings.pt_points_of(validation_set), points)


def _fit_group(
    scenario: CptScenario,
    variants: dict[str, Variant],
    settings: FitSettings,
    effort: Effort,
    n_starts: int,
    jackknife: bool,
    warm_start: dict[str, np.ndarray] | None,
    runner: Runner,
) -> dict[str, SetResult]:
    """One set under its variant, or both sets at once under a tied variant."""
    names = tuple(variants)
    variant = variants[names[0]]
    laws = {name: law_for(variants[name], name, scenario, settings) for name in names}
    datas: dict[str, SetData | FitData] = {
        name: set_data(scenario, variants[name], name, settings, effort.points) for name in names
    }
    # One stream per set (tied: per pair), whatever the pool does.
    stream = scenario.validation_sets.index(names[0]) if not variant.tied else 2
    rng = np.random.default_rng([settings.seed, stream])
    starts = Starts(
        n_starts, settings.n_screen, effort.n_polish, effort.polish_budget, effort.stall
    )
    if variant.tied:
        return fit_tied(
            laws,
            datas,
            variant.shared,
            delta=settings.huber_delta,
            rng=rng,
            starts=starts,
            refit_budget=effort.refit_budget,
            jackknife=jackknife,
            warm_start=warm_start,
            max_folds=effort.max_folds,
            runner=runner,
        )
    (name,) = names
    result = start_set(
        laws[name],
        datas[name],
        delta=settings.huber_delta,
        rng=rng,
        starts=starts,
        refit_budget=effort.refit_budget,
        jackknife=jackknife,
        warm_start=None if warm_start is None else warm_start[name],
        length_check=effort.length_check and jackknife,
        max_folds=effort.max_folds,
        runner=runner,
    )
    return {name: result.result()}


T = TypeVar("T")


class Counter:
    """Counts finished steps of one stage for ``progress`` (from any thread)."""

    def __init__(self, progress: Progress | None, stage: str, total: int) -> None:
        self.progress, self.stage, self.total, self.done = progress, stage, total, 0
        self.lock = threading.Lock()
        report(progress, stage, 0, total)

    def tick(self) -> None:
        with self.lock:
            self.done += 1
            report(self.progress, self.stage, self.done, self.total)

    def counted(self, call: Callable[[], T]) -> Callable[[], T]:
        """``call``, counted when it returns."""

        def counted_call() -> T:
            result = call()
            self.tick()
            return result

        return counted_call


def side_by_side(runner: Runner, calls: list[Callable[[], T]]) -> list[T]:
    """The results of ``calls``: each in a thread of its own when the runner has workers
    to keep busy (each call waits on the tasks it hands the runner), else one by one."""
    if not runner.parallel or len(calls) < 2:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=len(calls)) as threads:
        futures = [threads.submit(call) for call in calls]
        return [future.result() for future in futures]


def fit_variant(
    scenario: CptScenario,
    variant: Variant | dict[str, Variant],
    warm: WarmStarts,
    settings: FitSettings,
    effort: Effort,
    *,
    jackknife: bool = True,
    runner: Runner | None = None,
    n_starts: int | None = None,
    progress: Progress | None = None,
) -> dict[str, SetResult]:
    """Fit both validation sets under ``variant`` (or a variant per set), warm-started from
    ``warm`` where it has that variant's optimum; record the results in ``warm``.

    ``n_starts`` overrides the effort's choice (``settings.n_starts`` without a warm start,
    ``effort.warm_starts`` with one). A tied variant is one joint problem for both sets;
    untied, the two sets run side by side. ``progress`` hears "final fit" of each set.
    """
    runner = runner or Runner()
    sets = scenario.validation_sets
    variants = variant if isinstance(variant, dict) else dict.fromkeys(sets, variant)
    tied = variants["general"].tied
    keys = {name: variants[name].warm_key(name) for name in sets}
    groups = [sets] if tied else [(name,) for name in sets]
    calls = []
    for group in groups:
        # A tied variant starts from the untied optimum (tied values from the general law).
        warm_ok = all(keys[name] in warm for name in group)
        calls.append(
            _call_group(
                scenario,
                {name: variants[name] for name in group},
                settings,
                effort,
                n_starts or (effort.warm_starts if warm_ok else settings.n_starts),
                jackknife,
                {name: warm[keys[name]] for name in group} if warm_ok else None,
                runner,
            )
        )
    counter = Counter(progress, "final fit", len(calls))
    per_set: dict[str, SetResult] = {}
    for results in side_by_side(runner, [counter.counted(call) for call in calls]):
        per_set.update(results)
    if not tied:
        for name, result in per_set.items():
            warm[keys[name]] = result.best.values
    return per_set


def _call_group(*args: object) -> Callable[[], dict[str, SetResult]]:
    return lambda: _fit_group(*args)  # type: ignore[arg-type]
