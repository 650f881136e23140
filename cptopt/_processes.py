"""Processes: which are alive, the cores this one may use, and worker processes that never
outlive their parent.

cptopt runs its general and domain fits in two forked workers. If the parent is killed
(SIGKILL, SIGTERM, a CI job's timeout), orphaned workers would keep computing, holding
memory and the parent's stdout (a CI step that pipes the output would hang). Workers
therefore ask the kernel to kill them when their parent dies (Linux ``PR_SET_PDEATHSIG``),
and watch the parent's pid as well (every system); a parent that leaves by an exception
terminates its workers at once instead of waiting for them.

Signals: workers are forked with SIGTERM and SIGINT held back (:func:`start_workers`), so
that the parent's handler never runs inside the fork's bookkeeping (where an exception is
only printed and the signal lost); workers then die of SIGTERM silently and leave SIGINT
(Ctrl-C reaches the whole process group) to the parent, which stops them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

#: The signals held back while workers are forked, and that workers leave to the parent.
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}

#: ``prctl`` option: the signal a process gets when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: How often a worker checks that its parent is still there, in seconds.
WATCH_INTERVAL = 0.5


def usable_cores() -> int:
    """The cores this process may run on (``taskset``, cgroup cpusets), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: trust kill(0)
    return state not in ("Z", "X")


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(WATCH_INTERVAL)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGTERM and SIGINT held back in this thread while the block runs (delivered when it
    ends; a no-op where signal masks are not supported)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_workers(pool: ProcessPoolExecutor) -> None:
    """Fork a new fork-context pool's workers now, from this thread alone, with SIGTERM and
    SIGINT held back (CPython forks every worker of such a pool at its first submission)."""
    with signals_held():
        ready = pool.submit(int)
    ready.result()


def die_with_parent(parent: int) -> None:
    """Worker initializer: end this process when process ``parent`` ends; die of SIGTERM
    silently, ignore SIGINT (the parent stops its workers)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # held while forking
    library = ctypes.util.find_library("c")
    if library is not None:
        try:
            prctl = ctypes.CDLL(library, use_errno=True).prctl
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # not Linux: the watcher below does it
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate a pool's workers now (on an error or a signal in the parent).

    A worker killed while sending its result leaves the pool's reader thread waiting for
    the rest, which the parent's own end of the result pipe would keep open forever (and
    the exit, which joins that thread, with it): that end is closed once the workers are
    gone, so the reader sees the pipe end and the pool winds down.
    """
    # no public API before 3.14 (and shutdown() forgets both)
    workers = list((getattr(pool, "_processes", None) or {}).values())
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        if worker.is_alive():
            worker.kill()
    for worker in workers:
        worker.join(timeout=5)
    if writer is not None:
        with contextlib.suppress(OSError):
            writer.close()
