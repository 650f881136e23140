"""The Optuna study: ask a batch, evaluate it in one vectorised call, tell the results.

A study lives in memory, or in a storage (:mod:`cptopt.search.storage`) shared by several
processes and resumed after a crash. Its name defaults to a hash of everything that defines
the search (law, weights, space, constraints, sampler), so rerunning the same command
resumes it; loading a study created with other settings is an error. The creator of a new
study seeds it with a Latin-hypercube batch (``Study.add_trials``); every process then asks
trials in batches until the study holds the requested number of complete trials.
Constraints go through Optuna's core API (``Trial.set_constraint``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cptopt.exceptions import InputError, param
from cptopt.law.fitted import LawRecord
from cptopt.search.evaluate import Evaluator
from cptopt.search.models import SearchSettings
from cptopt.search.shapes import Batch
from cptopt.search.space import ResolvedSpace
from cptopt.search.storage import (
    CONFIG_ATTR,
    WORKER_ATTR,
    fail_stale_trials,
    open_storage,
    redact,
    study_lock,
    wait_briefly,
    worker_id,
)


@contextlib.contextmanager
def _optuna_quiet(verbose: bool) -> Iterator[None]:
    """Silence Optuna's log lines and warnings unless ``verbose``."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.INFO if verbose else logging.ERROR)
    with warnings.catch_warnings():
        if not verbose:
            warnings.simplefilter("ignore")
        try:
            yield
        finally:
            optuna.logging.set_verbosity(previous)


def _require(module: str, message: str) -> None:
    """Import ``module`` (an optional dependency of a sampler) or raise ``message``."""
    import importlib

    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        raise InputError(message) from None


def make_sampler(name: str, seed: int) -> Any:
    """An Optuna sampler by name (``tpe``, ``cmaes``, ``gp``, ``qmc``), seeded."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "cmaes":
        _require("cmaes", f"{param('sampler')} cmaes needs the 'cmaes' package (pip install cmaes)")
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        _require(
            "torch",
            f"{param('sampler')} gp needs PyTorch (pip install torch); use tpe, cmaes or qmc",
        )
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
    raise InputError(f"{param('sampler')} == {name!r}, must be one of tpe, cmaes, gp, qmc")


def study_name_for(fingerprint: dict[str, Any]) -> str:
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return "cptopt-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def law_digest(law: LawRecord) -> str:
    return hashlib.sha256(law.model_dump_json().encode()).hexdigest()[:16]


def _open_study(
    url: str | None, name: str, fingerprint: dict[str, Any], sampler: Any
) -> tuple[Any, bool, bool]:
    """``(study, created, resumed)``; the creator of a new study is the one that seeds it."""
    import optuna

    if url is None:
        return optuna.create_study(sampler=sampler, study_name=name), True, False
    storage = open_storage(url)
    try:
        study = optuna.create_study(
            storage=storage, sampler=sampler, study_name=name, load_if_exists=False
        )
        study.set_user_attr(CONFIG_ATTR, fingerprint)
        return study, True, False
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(storage=storage, sampler=sampler, study_name=name)
    stored = study.user_attrs.get(CONFIG_ATTR)
    for _ in range(40):  # the creator writes the attribute right after creating the study
        if stored is not None:
            break
        wait_briefly()
        stored = optuna.load_study(storage=storage, study_name=name).user_attrs.get(CONFIG_ATTR)
    if stored is not None and json.loads(json.dumps(stored)) != json.loads(
        json.dumps(fingerprint, default=str)
    ):
        differing = sorted(
            k
            for k in set(stored) | set(fingerprint)
            if stored.get(k) != jsonable(fingerprint.get(k))
        )
        raise InputError(
            f"study '{name}' in {redact(url)} was created with other settings "
            f"({', '.join(differing)}); use another {param('study_name')}"
        )
    return study, False, True


def _run_study(
    study: Any,
    url: str | None,
    name: str,
    space: ResolvedSpace,
    evaluator: Evaluator,
    trials: int,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Ask/evaluate/tell in vectorised batches until the study holds ``trials`` complete."""
    from optuna.trial import TrialState

    distributions = space.distributions()
    names = evaluator.constraint_names()
    shared = url is not None
    me = worker_id()
    done_here = 0
    check_stale = shared
    while True:
        with study_lock(url, name):
            if check_stale:  # at the start, and whenever others' running trials block us
                fail_stale_trials(study)
                check_stale = False
            states = [t.state for t in study.get_trials(deepcopy=False)]
            complete = sum(s == TrialState.COMPLETE for s in states)
            running = sum(s == TrialState.RUNNING for s in states)
            remaining = trials - complete - running
            asked = []
            if remaining > 0:
                for _ in range(min(batch_size, remaining)):
                    trial = study.ask(fixed_distributions=distributions)
                    if shared:
                        trial.set_user_attr(WORKER_ATTR, me)
                    asked.append(trial)
        if progress is not None:
            progress(complete, trials)
        if not asked:
            if running == 0:
                break
            wait_briefly()
            check_stale = True
            continue
        batch = space.batch_from_params([t.params for t in asked])
        general, domain, objective, violations = evaluator.evaluate(batch)
        for i, trial in enumerate(asked):
            trial.set_user_attr("general", float(general[i]))
            trial.set_user_attr("domain", float(domain[i]))
            for cname in names:
                trial.set_constraint(cname, float(violations[cname][i]))
            study.tell(trial, float(objective[i]))
        done_here += len(asked)
    return done_here


def _seed_study(study: Any, space: ResolvedSpace, evaluator: Evaluator, n: int, seed: int) -> int:
    """Evaluate ``n`` space-filling settings in one call and add them as complete trials."""
    if n <= 0:
        return 0
    import optuna

    batch = space.latin_hypercube(n, seed)
    general, domain, objective, violations = evaluator.evaluate(batch)
    distributions = space.distributions()
    trials = []
    for i in range(len(batch)):
        trials.append(
            optuna.trial.create_trial(
                params=space.params_of(batch, i),
                distributions=distributions,
                value=float(objective[i]),
                user_attrs={"general": float(general[i]), "domain": float(domain[i]), "seed": True},
                constraints={k: float(v[i]) for k, v in violations.items()} or None,
            )
        )
    study.add_trials(trials)
    return len(trials)


def _study_best(study: Any, space: ResolvedSpace, per_group: int = 2) -> tuple[Batch, float] | None:
    """The ``per_group`` best feasible trials of each (family, checkpoint), best value overall."""
    from optuna.trial import TrialState

    groups: dict[tuple, list[Any]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if any(v > 0 for v in trial.constraints.values()):
            continue
        key = (trial.params.get("family"), trial.params.get("checkpoint"))
        groups.setdefault(key, []).append(trial)
    if not groups:
        return None
    chosen: dict[int, Any] = {}
    for trials in groups.values():
        for trial in sorted(trials, key=lambda t: t.value)[:per_group]:
            chosen[trial.number] = trial
    everything = sorted((t for ts in groups.values() for t in ts), key=lambda t: t.value)
    for trial in everything[:8]:
        chosen[trial.number] = trial
    chosen = sorted(chosen.values(), key=lambda t: t.value)  # type: ignore[assignment]
    return space.batch_from_params([t.params for t in chosen]), float(chosen[0].value)


def _study_top(study: Any, space: ResolvedSpace, k: int) -> Batch | None:
    from optuna.trial import TrialState

    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if all(v <= 0 for v in t.constraints.values())
    ]
    trials.sort(key=lambda t: t.value)
    if not trials:
        return None
    return space.batch_from_params([t.params for t in trials[: max(k * 8, 1)]])


@dataclass(frozen=True)
class StudyOutcome:
    """What a study run leaves for the recommendation."""

    name: str
    resumed: bool
    complete: int
    done_here: int
    seeded: int
    seconds: float
    best: tuple[Batch, float] | None
    top: Batch | None


def jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, others strings)."""
    return json.loads(json.dumps(value, default=str))


def run_study(
    url: str | None,
    space: ResolvedSpace,
    evaluator: Evaluator,
    settings: SearchSettings,
    fingerprint: dict[str, Any],
    *,
    top_k: int,
    verbose: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> StudyOutcome:
    """Open (or resume) the study, seed it if this process created it, run it to
    ``settings.trials`` complete trials, and collect its best and top feasible trials."""
    from optuna.trial import TrialState

    name = settings.study_name or study_name_for(fingerprint)
    started = time.perf_counter()
    with _optuna_quiet(verbose):
        sampler = make_sampler(settings.sampler, settings.seed)
        study, created, resumed = _open_study(url, name, fingerprint, sampler)
        if not created:
            # another process (or an earlier run) owns the seed: draw different points
            mixed = np.random.SeedSequence([settings.seed, os.getpid()]).generate_state(1)[0]
            study.sampler = make_sampler(settings.sampler, int(mixed))
        seeded = 0
        if created:
            n_seed = min(settings.seed_trials, settings.trials)
            seeded = _seed_study(study, space, evaluator, n_seed, settings.seed)
        done_here = _run_study(
            study, url, name, space, evaluator, settings.trials, settings.batch_size, progress
        )
        seconds = time.perf_counter() - started
        complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        return StudyOutcome(
            name=name,
            resumed=resumed,
            complete=complete,
            done_here=done_here,
            seeded=seeded,
            seconds=seconds,
            best=_study_best(study, space),
            top=_study_top(study, space, top_k),
        )
