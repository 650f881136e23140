"""Where a fit's work runs: in this process, or spread over forked worker processes.

A fit is cut into tasks (a set's fit, each leave-one-pilot-out refit, the length check:
:mod:`cptopt.fitting.crossval`), which a :class:`Runner` runs in this process or in a pool
of forked workers, one per core this process may use (:func:`usable_cores`). A task names
its data by a recipe (:class:`SetData`: the validation set, what the law reads, the PT-point
policy and the thinning) that every process turns into the same points once and keeps
(:class:`FitContext`, a cache by content): the workers fork after the parent built the
data it knows it needs, so they inherit it, and build any other recipe themselves. Nothing
random is drawn in a worker that the parent's stream would not draw in the same order, so
results do not depend on the number of workers.

The workers end with the parent, however it ends (:mod:`cptopt._processes`).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from cptopt._processes import die_with_parent, start_workers, stop_workers, usable_cores
from cptopt.exceptions import FitError, param
from cptopt.fitting.data import thin
from cptopt.law.scenario import FitData, InputNeeds

T = TypeVar("T")

#: Fold data a process keeps (the most recent): two data sets' folds. A long PT history
#: makes each tens of MB; more would grow the workers, not save time.
KEPT_FOLDS = 12


@dataclass(frozen=True)
class SetData:
    """A recipe for fit data: the scenario's points of ``validation_set`` with the inputs
    ``needs`` asks for, the PT-phase points of policy ``pt_points``, thinned to about
    ``points`` CPT points (:func:`~cptopt.fitting.data.thin`)."""

    validation_set: str
    needs: InputNeeds
    pt_points: str
    points: int


class FitContext:
    """The scenario a fit reads (None: tasks carry their data) and, per process, the fit
    data built from it by recipe, and the data of each fold (the points a refit keeps)."""

    def __init__(self, scenario: Any = None) -> None:
        self.scenario = scenario
        self._pooled: dict[tuple[str, InputNeeds, str], FitData] = {}
        self._data: dict[SetData, FitData] = {}
        self._kept: dict[tuple[SetData, tuple[int, ...]], FitData] = {}

    def data(self, source: SetData | FitData) -> FitData:
        """The data of a recipe (built once per process), or ``source`` itself."""
        if isinstance(source, FitData):
            return source
        if source not in self._data:
            key = (source.validation_set, source.needs, source.pt_points)
            if key not in self._pooled:
                self._pooled[key] = self.scenario.fit_data(*key)
            self._data[source] = thin(self._pooled[key], source.points)
        return self._data[source]

    def kept(self, source: SetData | FitData, fold: tuple[int, ...]) -> FitData:
        """The points of ``source`` outside the pilots of ``fold`` (the latest few kept for
        recipes: the variants fitted to the same data leave out the same folds)."""
        if isinstance(source, FitData):
            return source.take(~np.isin(source.run_index, fold))
        key = (source, fold)
        kept = self._kept.pop(key, None)
        if kept is None:
            data = self.data(source)
            kept = data.take(~np.isin(data.run_index, fold))
        self._kept[key] = kept  # the most recent last
        while len(self._kept) > KEPT_FOLDS:
            del self._kept[next(iter(self._kept))]
        return kept


#: The context of this worker process (set when the pool starts it).
_WORKER_CONTEXT: FitContext | None = None


def one_blas_thread() -> Any:
    """A context (threadpoolctl's) in which every BLAS the fit uses runs on one thread.

    The fit's arrays are small: threaded BLAS only adds overhead and contention (an SVD of
    a 1,000 x 14 Jacobian took 40 ms on two busy cores instead of 1 ms). The fit's linear
    algebra is numpy's (:mod:`cptopt.fitting.trf`, :mod:`cptopt.fitting.nnls`), loaded with
    numpy itself, so the limit covers it. SciPy is not imported: it cost 0.2-0.3 s of every
    command's start.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _start_worker(parent: int, context: FitContext) -> None:
    global _WORKER_CONTEXT
    die_with_parent(parent)
    _WORKER_CONTEXT = context
    one_blas_thread()  # for the worker's life


def _in_worker(task: Callable[[FitContext], T]) -> T:
    assert _WORKER_CONTEXT is not None, "the worker was not started by process_pool"
    return task(_WORKER_CONTEXT)


class Runner:
    """Runs tasks (callables of a :class:`FitContext`) in this process, or in ``pool``."""

    def __init__(self, context: FitContext | None = None, pool: ProcessPoolExecutor | None = None):
        self.context = context or FitContext()
        self.pool = pool

    @property
    def parallel(self) -> bool:
        return self.pool is not None

    def submit(self, task: Callable[[FitContext], T]) -> Future[T]:
        if self.pool is not None:
            return self.pool.submit(_in_worker, task)
        future: Future[T] = Future()
        _settle(future, lambda: task(self.context))
        return future

    def background(self, call: Callable[[], T]) -> Future[T]:
        """``call``'s result: computed in a thread of its own when the runner has workers
        (``call`` waits on the tasks it hands them), else here and now."""
        future: Future[T] = Future()
        if self.pool is None:
            _settle(future, call)
        else:
            threading.Thread(target=_settle, args=(future, call), daemon=True).start()
        return future


def _settle(future: Future[T], call: Callable[[], T]) -> None:
    try:
        future.set_result(call())
    except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
        future.set_exception(exc)


#: At most this many workers by default: a fit has about this much work to hand out at once
#: (two validation sets, a handful of refits each), so more workers would mostly wait.
MAX_DEFAULT_JOBS = 8


def default_jobs() -> int:
    """Workers by default: one per usable core, at most :data:`MAX_DEFAULT_JOBS`."""
    return min(usable_cores(), MAX_DEFAULT_JOBS)


@contextmanager
def process_pool(n_jobs: int | None, context: FitContext) -> Iterator[Runner]:
    """A :class:`Runner` over ``n_jobs`` forked workers (default: :func:`default_jobs`), or
    over this process when that is 1 or processes cannot be forked.

    The workers are forked here, before the caller starts any thread, and inherit
    ``context`` (and the data it holds) without copying it through a pipe.
    """
    n_jobs = default_jobs() if n_jobs is None else n_jobs
    if n_jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield Runner(context)
        return
    pool = ProcessPoolExecutor(
        max_workers=n_jobs,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_start_worker,
        initargs=(os.getpid(), context),
    )
    try:
        start_workers(pool)
        yield Runner(context, pool)
    except BrokenProcessPool:
        stop_workers(pool)
        raise FitError(
            f"a fit worker process ended abruptly (killed, or out of memory); rerun, or fit "
            f"in this process with {param('n_jobs')} 1"
        ) from None
    except BaseException:
        stop_workers(pool)  # an error or a signal: no waiting for the running fits
        raise
    pool.shutdown(wait=True)
