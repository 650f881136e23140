"""Optuna storages for ``cptopt recommend`` (private to :mod:`cptopt.search`).

Storage URLs
------------
- none (and ``OPTUNA_STORAGE`` unset): an in-memory study, gone when the process ends;
- ``sqlite:///study.db``, ``postgresql://user:pw@host/db``, ``mysql://...``: an Optuna
  RDB storage (SQLAlchemy URL); PostgreSQL needs ``pip install 'cptopt[postgres]'``;
- ``journal:PATH`` (e.g. ``journal:study.log`` or ``journal:///abs/study.log``): an Optuna
  JournalStorage in an append-only file, for several processes on one machine.

Several processes on one study
------------------------------
Each process asks trials in batches. To finish exactly the requested number of trials, the
"how many are left, ask that many" step (and the creation of an RDB storage's tables, which
two processes opening a fresh database would both attempt) runs under a lock: a file lock
next to the journal or SQLite file, a PostgreSQL advisory lock for PostgreSQL. (Other RDBs
have no lock: two processes may then overshoot the total by up to one batch.) Trials record
which process runs them (``cptopt_worker`` = host and pid); a RUNNING trial whose process
is gone (killed with SIGKILL, say) is marked FAIL when the next process looks, so a rerun
of the same command finishes the study with the completed trials intact.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cptopt._io import os_error_line
from cptopt._processes import pid_alive
from cptopt.exceptions import InputError, param

#: Study attribute holding the settings a study was created with.
CONFIG_ATTR = "cptopt_config"
#: Lock name under which a storage's tables are created (see :func:`open_storage`).
SCHEMA_LOCK = "cptopt-storage-schema"
#: Trial attribute naming the process that runs a trial.
WORKER_ATTR = "cptopt_worker"
#: A RUNNING trial this old is taken as abandoned (a batch of trials takes milliseconds).
STALE_AFTER = timedelta(minutes=10)
#: A RUNNING trial without a worker attribute this old is abandoned: cptopt sets the
#: attribute right after asking, under the study lock, so only a process killed in between
#: leaves one behind.
UNCLAIMED_AFTER = timedelta(seconds=20)


def storage_url(url: str | None) -> str | None:
    """The storage to use: ``url``, else ``$OPTUNA_STORAGE``, else None (in memory)."""
    if url:
        return url
    env = os.environ.get("OPTUNA_STORAGE", "").strip()
    return env or None


def redact(url: str | None) -> str | None:
    """The URL with any password replaced by ``***`` (safe to print and log)."""
    if url is None or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    if ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}://{credentials}@{host}"


def journal_path(url: str) -> Path:
    """``journal:PATH`` / ``journal://PATH`` / ``journal:///abs`` -> the journal file path."""
    rest = url[len("journal:") :]
    if rest.startswith("//"):
        rest = rest[2:]
    if not rest:
        raise InputError(
            f"{param('storage')} {url!r}: name the journal file, e.g. journal:study.log"
        )
    return Path(rest)


def sqlite_path(url: str) -> Path | None:
    rest = url.split("://", 1)[1] if "://" in url else ""
    if not rest.startswith("/") or rest in ("/", "/:memory:"):
        return None
    return Path(rest[1:])


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` with the driver that is installed (SQLAlchemy 2.1 assumes psycopg 3).

    ``postgres://`` is accepted as an alias. URLs naming a driver (``postgresql+x://``) and
    other databases are returned unchanged.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("postgresql", "postgres"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is not None:
        return f"postgresql+psycopg://{rest}"
    if importlib.util.find_spec("psycopg2") is not None:
        return f"postgresql+psycopg2://{rest}"
    return f"postgresql://{rest}"


def open_storage(url: str) -> Any:
    """An Optuna storage object for ``url`` (a one-line InputError when it cannot be used)."""
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = journal_path(url)
        if path.parent and not path.parent.is_dir():
            raise InputError(f"{param('storage')} {url}: folder {path.parent} does not exist")
        if path.is_dir():
            raise InputError(f"{param('storage')} {url}: {path} is a directory")
        try:
            _check_journal(path)
            return JournalStorage(JournalFileBackend(str(path), lock_obj=FlockJournalLock(path)))
        except OSError as exc:
            raise InputError(f"{param('storage')} {url}: {os_error_line(exc, path)}") from None
        except Exception as exc:  # noqa: BLE001 - Optuna raises plain errors for bad journals
            raise InputError(
                f"{param('storage')} {url}: not a readable journal ({_reason(exc)})"
            ) from None
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql"):
        raise InputError(
            f"{param('storage')} {redact(url)!r}: not a storage URL; use sqlite:///FILE, "
            "postgresql://USER:PW@HOST/DB or journal:FILE"
        )
    if scheme == "sqlite":
        path = sqlite_path(url)
        if path is not None and path.parent and not path.parent.is_dir():
            raise InputError(f"{param('storage')} {url}: folder {path.parent} does not exist")
    try:
        # Optuna creates its tables when a storage is first opened; two processes opening a
        # fresh database at once both try (PostgreSQL: "relation studies already exists").
        with study_lock(url, SCHEMA_LOCK):
            return optuna.storages.RDBStorage(
                sqlalchemy_url(url), engine_kwargs=_engine_kwargs(scheme)
            )
    except ImportError as exc:
        hint = " (pip install 'cptopt[postgres]')" if scheme.startswith("postgres") else ""
        missing = getattr(exc.__cause__, "name", None) or getattr(exc, "name", None) or "?"
        raise InputError(
            f"{param('storage')} {redact(url)}: database driver missing: {missing}{hint}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds
        reason = _reason(exc)
        raise InputError(f"{param('storage')} {redact(url)}: cannot open ({reason})") from None


#: SQLAlchemy's pointer to its documentation, which ends every message it raises.
_BACKGROUND = re.compile(r"\s*\(Background on this error at: [^)]*\)")
#: The longest reason an error line quotes from a driver (cut between words beyond it).
REASON_CHARS = 300


def _reason(exc: BaseException) -> str:
    """A driver's message on one line, without SQLAlchemy's documentation link, cut only
    between words (a URL or a host name in it stays whole)."""
    text = _BACKGROUND.sub("", " ".join(str(exc).split()))
    if len(text) <= REASON_CHARS:
        return text
    return text[: text.rfind(" ", 0, REASON_CHARS)] + " ..."


def _check_journal(path: Path) -> None:
    """Raise unless every complete line of an existing journal is JSON.

    Optuna skips a broken last line (another process may be writing it) and fails only on
    a later read, deep inside a study; a file that is not a journal is refused here.
    """
    if not path.exists():
        return
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                break  # a line being written
            try:
                json.loads(line)
            except ValueError:
                raise InputError(
                    f"{param('storage')} journal:{path}: not a readable journal (line {number} "
                    "is not JSON)"
                ) from None


def _engine_kwargs(scheme: str) -> dict[str, Any]:
    if scheme == "sqlite":
        # Concurrent writers wait for the lock instead of failing at once.
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


@contextlib.contextmanager
def study_lock(url: str | None, study_name: str) -> Iterator[None]:
    """Serialise "count trials, then ask" across processes sharing one study."""
    if url is None:
        yield
        return
    lock_file: Path | None = None
    if url.startswith("journal:"):
        lock_file = Path(f"{journal_path(url)}.cptopt-lock")
    elif url.lower().startswith("sqlite"):
        path = sqlite_path(url)
        lock_file = Path(f"{path}.cptopt-lock") if path is not None else None
    if lock_file is not None:
        with FileLock(lock_file):
            yield
        return
    if url.lower().startswith("postgres"):
        with _pg_advisory_lock(url, study_name):
            yield
        return
    yield


class FileLock:
    """An exclusive lock held with ``flock`` on a file that exists only while it is held.

    The kernel releases a ``flock`` when its holder dies, so a killed process never leaves
    a stale lock for the next run to wait out; the holder removes the file when it releases
    it, so no lock file outlives a run. A waiter that wakes up holding the lock on a file
    that has since been removed (and perhaps replaced) starts over.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as exc:
                raise InputError(f"cannot lock: {os_error_line(exc, self.path)}") from None
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for people
                self._fd = fd
                return True
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class FlockJournalLock(FileLock):
    """The journal file's write lock for Optuna (``JournalFileBackend(lock_obj=...)``).

    Optuna's own locks are files created with ``O_EXCL``: when their holder is killed the
    next process waits out a 30 s grace period, silently. This one is a :class:`FileLock`.
    """

    def __init__(self, journal: str | os.PathLike[str]) -> None:
        super().__init__(f"{journal}.lock")


_PG_ENGINES: dict[str, Any] = {}


@contextlib.contextmanager
def _pg_advisory_lock(url: str, study_name: str) -> Iterator[None]:
    import sqlalchemy

    engine = _PG_ENGINES.get(url)
    if engine is None:
        engine = sqlalchemy.create_engine(sqlalchemy_url(url), pool_size=1, pool_pre_ping=True)
        _PG_ENGINES[url] = engine
    key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            connection.commit()


def worker_id() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def is_stale(trial: Any, now: datetime | None = None) -> bool:
    """Whether a RUNNING trial was abandoned (its process is gone, or it is very old)."""
    now = now or datetime.now()
    started = trial.datetime_start
    age = now - started if started is not None else timedelta(0)
    worker = trial.user_attrs.get(WORKER_ATTR)
    if not isinstance(worker, dict):
        return age > UNCLAIMED_AFTER
    if worker.get("host") == socket.gethostname():
        pid = int(worker.get("pid", -1))
        if pid != os.getpid() and not pid_alive(pid):
            return True
    return age > STALE_AFTER


def fail_stale_trials(study: Any) -> int:
    """Mark abandoned RUNNING trials as FAIL; returns how many."""
    from optuna.trial import TrialState

    count = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_stale(trial):
            with contextlib.suppress(Exception):  # another process may have done it
                study.tell(trial.number, state=TrialState.FAIL)
                count += 1
    return count


def wait_briefly() -> None:
    time.sleep(0.05)
