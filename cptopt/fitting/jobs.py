"""Fit jobs: one law variant on the pilots' data, run in-process or in a pool of two workers.

A variant's general and domain fits are independent problems, so they run side by side in
two forked processes (the machine's two cores). A tied variant is one joint problem. Each
job seeds its own generator from the fitter's seed and the validation set, so results do
not depend on the pool.

How hard a job tries is its :class:`Effort`: while selecting among variants every candidate
gets a cheap fit (one polished start with a capped budget, short leave-one-out refits);
the chosen variant then gets the final fit (two polished starts to convergence).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from cptopt._processes import die_with_parent, stop_workers
from cptopt.fitting.averaging import fit_set
from cptopt.fitting.crossval import MAX_FOLDS, SetResult, fit_tied
from cptopt.fitting.data import AUTO_PT_POINTS, FIT_POINTS, SELECTION_POINTS, thin
from cptopt.fitting.optimise import Starts
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
    data: FitData,
    settings: FitSettings,
    effort: Effort,
    rng: np.random.Generator,
    *,
    start: np.ndarray | None = None,
    jackknife: bool = True,
    length_check: bool = False,
) -> SetResult:
    """One set's fit with ``effort``: its points thinned to the effort's, fresh starts
    (``settings.n_starts``) or the warm ``start`` (``effort.warm_starts`` in all, it
    included), the effort's budgets, and its leave-one-pilot-out refits (``jackknife``)."""
    n_starts = settings.n_starts if start is None else effort.warm_starts
    return fit_set(
        law,
        thin(data, effort.points),
        delta=settings.huber_delta,
        rng=rng,
        starts=Starts(n_starts, settings.n_screen, effort.n_polish, effort.polish_budget),
        refit_budget=effort.refit_budget,
        max_folds=effort.max_folds,
        jackknife=jackknife,
        warm_start=start,
        length_check=length_check,
    )


@dataclass(frozen=True)
class FitJob:
    """One picklable unit of work: ``validation_sets`` of the pilots (their ``scenario``
    gives the data), each under its variant.

    One set (an untied variant), or both at once for a tied variant (one joint problem).
    """

    scenario: CptScenario
    variants: tuple[Variant, ...]
    validation_sets: tuple[str, ...]
    settings: FitSettings
    effort: Effort
    n_starts: int
    jackknife: bool
    warm_start: dict[str, np.ndarray] | None

    def __call__(self) -> dict[str, SetResult]:
        from threadpoolctl import threadpool_limits

        settings, effort, scenario = self.settings, self.effort, self.scenario
        variants = dict(zip(self.validation_sets, self.variants, strict=True))
        variant = self.variants[0]
        laws = {name: law_for(variants[name], name, scenario, settings) for name in variants}
        needs = {
            name: InputNeeds(variants[name].lam, law.needs_history, law.needs_steps)
            for name, law in laws.items()
        }
        datas = {
            name: thin(
                scenario.fit_data(name, needs[name], settings.pt_points_of(name)), effort.points
            )
            for name in self.validation_sets
        }
        # One stream per set (tied: per pair), whatever the pool does.
        stream = scenario.validation_sets.index(self.validation_sets[0]) if not variant.tied else 2
        rng = np.random.default_rng([settings.seed, stream])
        starts = Starts(self.n_starts, settings.n_screen, effort.n_polish, effort.polish_budget)
        budgets = {
            "delta": settings.huber_delta,
            "rng": rng,
            "starts": starts,
            "refit_budget": effort.refit_budget,
            "jackknife": self.jackknife,
            "max_folds": effort.max_folds,
        }
        # Small arrays: multi-threaded BLAS only adds overhead (and contention) here.
        with threadpool_limits(limits=1):
            if variant.tied:
                return fit_tied(laws, datas, variant.shared, warm_start=self.warm_start, **budgets)
            (name,) = self.validation_sets
            warm = None if self.warm_start is None else self.warm_start[name]
            result = fit_set(
                laws[name],
                datas[name],
                warm_start=warm,
                length_check=effort.length_check and self.jackknife,
                **budgets,
            )
            return {name: result}


def usable_cores() -> int:
    """The cores this process may run on (``taskset``, cgroup cpusets), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@contextmanager
def process_pool(n_jobs: int | None) -> Iterator[ProcessPoolExecutor | None]:
    """Two forked workers when asked for (or by default when this process may run on >= 2
    cores), else None.

    The workers end with the parent, however it ends (:mod:`cptopt._processes`).
    """
    if n_jobs is None:
        n_jobs = min(2, usable_cores())
    if n_jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    pool = ProcessPoolExecutor(
        max_workers=min(n_jobs, 2),
        mp_context=multiprocessing.get_context("fork"),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )
    try:
        yield pool
    except BaseException:
        stop_workers(pool)  # an error or a signal: no waiting for the running fits
        raise
    pool.shutdown(wait=True)


def fit_variant(
    scenario: CptScenario,
    variant: Variant | dict[str, Variant],
    warm: WarmStarts,
    settings: FitSettings,
    effort: Effort,
    *,
    jackknife: bool = True,
    pool: ProcessPoolExecutor | None = None,
    n_starts: int | None = None,
) -> dict[str, SetResult]:
    """Fit both validation sets under ``variant`` (or a variant per set), warm-started from
    ``warm`` where it has that variant's optimum; record the results in ``warm``.

    ``n_starts`` overrides the effort's choice (``settings.n_starts`` without a warm start,
    ``effort.warm_starts`` with one). A tied variant is one joint problem for both sets.
    """
    sets = scenario.validation_sets
    variants = variant if isinstance(variant, dict) else dict.fromkeys(sets, variant)
    tied = variants["general"].tied
    keys = {name: variants[name].warm_key(name) for name in sets}
    groups = [sets] if tied else [(name,) for name in sets]
    futures = []
    for group in groups:
        # A tied variant starts from the untied optimum (tied values from the general law).
        warm_ok = all(keys[name] in warm for name in group)
        job = FitJob(
            scenario=scenario,
            variants=tuple(variants[name] for name in group),
            validation_sets=group,
            settings=settings,
            effort=effort,
            n_starts=n_starts or (effort.warm_starts if warm_ok else settings.n_starts),
            jackknife=jackknife,
            warm_start={name: warm[keys[name]] for name in group} if warm_ok else None,
        )
        futures.append(pool.submit(job) if pool else job)
    per_set: dict[str, SetResult] = {}
    for future in futures:
        per_set.update(future.result() if isinstance(future, Future) else future())
    if not tied:
        for name, result in per_set.items():
            warm[keys[name]] = result.best.values
    return per_set
