"""The Optuna study: ask a batch, evaluate it in one vectorised call, tell the results.

A study lives in memory, or in a storage (:mod:`cptopt.search.storage`) shared by several
processes and resumed after a crash. Its name defaults to a hash of everything that defines
the search (law, weights, space, constraints, sampler), so rerunning the same command
resumes it; loading a study created with other settings, or one whose settings were never
recorded (its creator was stopped first), is an error. The study starts with a
Latin-hypercube batch of seed trials; trials are then asked in batches until the study
holds the requested number of complete trials. Constraints go through Optuna's core API
(``Trial.set_constraint``).

A persisted study is worked on in turns (:class:`_Turns`): under the study's lock a process
reads the trials others added into its in-memory copy of the study, asks, evaluates and
tells a share of the trials that are left there (where the sampler reads them fast), and
writes them finished in one transaction (:func:`~cptopt.search.storage.write_trials`). The
seed batch is one such write, made by whichever process finds it missing (or incomplete,
as older versions could leave it).
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
    trial_states,
    wait_briefly,
    worker_id,
    write_trials,
)

#: A process writes at most this many trials per turn at a persisted study (one transaction;
#: the others wait for the lock meanwhile, a few hundredths of a second).
TURN_TRIALS = 64
#: How long a process waits for the settings of a study it found without them: its creator
#: records them right after creating it.
SETTINGS_WAIT = 3.0


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
    deadline = time.monotonic() + SETTINGS_WAIT
    while stored is None and time.monotonic() < deadline:
        wait_briefly()  # the creator records the settings right after creating the study
        stored = optuna.load_study(storage=storage, study_name=name).user_attrs.get(CONFIG_ATTR)
    if stored is None:
        raise InputError(
            f"study '{name}' in {redact(url)} has no recorded settings (its creator was "
            f"stopped before recording them), so it may hold another search; use another "
            f"{param('study_name')} or delete that study"
        )
    if json.loads(json.dumps(stored)) != json.loads(json.dumps(fingerprint, default=str)):
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


def _seed_trials(space: ResolvedSpace, evaluator: Evaluator, n: int, seed: int) -> list[Any]:
    """The first ``n`` trials of the seed batch: space-filling settings, evaluated in one
    call (the same points whoever computes them)."""
    if n <= 0:
        return []
    import optuna

    batch = space.latin_hypercube(n, seed)
    general, domain, objective, violations = evaluator.evaluate(batch)
    distributions = space.distributions()
    return [
        optuna.trial.create_trial(
            params=space.params_of(batch, i),
            distributions=distributions,
            value=float(objective[i]),
            user_attrs={"general": float(general[i]), "domain": float(domain[i]), "seed": True},
            constraints={k: float(v[i]) for k, v in violations.items()} or None,
        )
        for i in range(len(batch))
    ]


def _seed_study(study: Any, space: ResolvedSpace, evaluator: Evaluator, n: int, seed: int) -> int:
    """Evaluate ``n`` space-filling settings in one call and add them as complete trials."""
    trials = _seed_trials(space, evaluator, n, seed)
    if trials:
        study.add_trials(trials)
    return len(trials)


def _ask_and_tell(
    study: Any,
    space: ResolvedSpace,
    evaluator: Evaluator,
    count: int,
    worker: dict[str, Any] | None = None,
) -> None:
    """Ask ``count`` trials, evaluate them in one call and tell the results (each marked as
    run by ``worker``, if given)."""
    asked = [study.ask(fixed_distributions=space.distributions()) for _ in range(count)]
    batch = space.batch_from_params([t.params for t in asked])
    general, domain, objective, violations = evaluator.evaluate(batch)
    for i, trial in enumerate(asked):
        if worker is not None:
            trial.set_user_attr(WORKER_ATTR, worker)
        trial.set_user_attr("general", float(general[i]))
        trial.set_user_attr("domain", float(domain[i]))
        for cname in evaluator.constraint_names():
            trial.set_constraint(cname, float(violations[cname][i]))
        study.tell(trial, float(objective[i]))


def _run_study(
    study: Any,
    space: ResolvedSpace,
    evaluator: Evaluator,
    trials: int,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Ask/evaluate/tell in vectorised batches until the in-memory ``study`` holds
    ``trials`` complete ones."""
    from optuna.trial import TrialState

    done_here = 0
    while True:
        complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if progress is not None:
            progress(complete, trials)
        if complete >= trials:
            return done_here
        count = min(batch_size, trials - complete)
        _ask_and_tell(study, space, evaluator, count)
        done_here += count


class _Turns:
    """A persisted study worked on in turns (see the module docstring): ``mirror`` is this
    process's in-memory copy, where the sampler works; ``read`` the persisted trials (by
    number) it already holds."""

    def __init__(self, persisted: Any, url: str, name: str, sampler: Any) -> None:
        import optuna

        self.persisted, self.url, self.name = persisted, url, name
        self.mirror = optuna.create_study(sampler=sampler, study_name=name)
        self.read: set[int] = set()

    def _sync(self) -> tuple[int, int, int]:
        """Copy the trials others added into the mirror; ``(trials, complete, running)`` of
        the persisted study."""
        from optuna.trial import TrialState

        states = trial_states(self.persisted)
        for number, state, trial_id in states:
            if number not in self.read and state == TrialState.COMPLETE:
                self.mirror.add_trial(self.persisted._storage.get_trial(trial_id))
            self.read.add(number)
        complete = sum(state == TrialState.COMPLETE for _, state, _ in states)
        running = sum(state == TrialState.RUNNING for _, state, _ in states)
        return len(states), complete, running

    def _write(self, start: int, new: list[Any]) -> None:
        """Write ``new`` (finished in the mirror) through; they become trials ``start...``."""
        if new:
            write_trials(self.persisted, new)
            self.read.update(range(start, start + len(new)))

    def seed(
        self, space: ResolvedSpace, evaluator: Evaluator, n: int, seed: int, trials: int
    ) -> int:
        """Write the seed batch, or the part of it the study lacks (never beyond ``trials``
        in all); how many seed trials were written."""
        with study_lock(self.url, self.name):
            fail_stale_trials(self.persisted)
            total, complete, running = self._sync()
            present = sum(t.user_attrs.get("seed") is True for t in self.mirror.trials)
            room = max(0, trials - complete - running)
            missing = _seed_trials(space, evaluator, n, seed)[present:][:room]
            self.mirror.add_trials(missing)
            self._write(total, missing)
            return len(missing)

    def run(
        self,
        space: ResolvedSpace,
        evaluator: Evaluator,
        trials: int,
        batch_size: int,
        progress: Callable[[int, int], None] | None,
    ) -> int:
        """Turns until the persisted study holds ``trials`` complete trials."""
        done_here, check_stale = 0, False
        while True:
            with study_lock(self.url, self.name):
                if check_stale:  # others' running trials (older cptopts) were in the way
                    fail_stale_trials(self.persisted)
                total, complete, running = self._sync()
                share = min(TURN_TRIALS, trials - complete - running)
                for first in range(0, max(share, 0), batch_size):
                    count = min(batch_size, share - first)
                    _ask_and_tell(self.mirror, space, evaluator, count, worker_id())
                new = self.mirror.get_trials(deepcopy=False)[-share:] if share > 0 else []
                self._write(total, new)
            done_here += len(new)
            if progress is not None:
                progress(complete + len(new), trials)
            if not new:
                if running == 0:
                    with study_lock(self.url, self.name):
                        self._sync()  # everyone's trials, for the result
                    return done_here
                wait_briefly()
                check_stale = True


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
    n_seed = min(settings.seed_trials, settings.trials)
    with _optuna_quiet(verbose):
        sampler = make_sampler(settings.sampler, settings.seed)
        study, created, resumed = _open_study(url, name, fingerprint, sampler)
        if not created:
            # another process (or an earlier run) owns the seed: draw different points
            mixed = np.random.SeedSequence([settings.seed, os.getpid()]).generate_state(1)[0]
            study.sampler = make_sampler(settings.sampler, int(mixed))
        if url is None:
            seeded = _seed_study(study, space, evaluator, n_seed, settings.seed)
            done_here = _run_study(
                study, space, evaluator, settings.trials, settings.batch_size, progress
            )
        else:
            turns = _Turns(study, url, name, study.sampler)
            seeded = turns.seed(space, evaluator, n_seed, settings.seed, settings.trials)
            done_here = turns.run(space, evaluator, settings.trials, settings.batch_size, progress)
            study = turns.mirror
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
