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
A process works on a study in turns: under a lock it reads the trials others added, asks
and evaluates a share of the trials that are left in memory (Optuna's in-memory storage,
where the sampler reads them fast) and writes them, finished, in one transaction
(:func:`write_trials`: one commit or one journal append, instead of a dozen per trial), so
that the study holds exactly the requested number and a killed process leaves either its
whole share or nothing. The lock is a file lock next to the journal or SQLite file, a
PostgreSQL advisory lock for PostgreSQL (other RDBs have none: two processes may then
overshoot the total by up to one share); it also covers the creation of an RDB storage's
tables, which two processes opening a fresh database would both attempt. A RUNNING trial
(left by an older cptopt, which wrote trials as it asked them, with ``cptopt_worker`` =
host and pid) whose process is gone is marked FAIL when the next process looks.
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
from datetime import datetime, timedelta, timezone
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


def write_trials(study: Any, trials: list[Any]) -> None:
    """Add finished trials (Optuna ``FrozenTrial``) to a persisted study in one transaction:
    a single commit for an RDB storage, a single append (and fsync) for a journal; one by one
    for any other storage."""
    import optuna

    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # RDB storages come wrapped in a cache
    if isinstance(backend, optuna.storages.RDBStorage):
        _write_rdb(backend, study._study_id, trials)
    elif isinstance(storage, optuna.storages.JournalStorage):
        _write_journal(storage, study._study_id, trials)
    else:
        study.add_trials(trials)


def trial_states(study: Any) -> list[tuple[int, Any, int]]:
    """``(number, state, trial id)`` of every trial of a persisted study, without loading
    the trials themselves (an RDB storage's trials table directly: loading what this process
    wrote itself would cost more than writing it)."""
    import optuna

    backend = getattr(study._storage, "_backend", study._storage)
    if not isinstance(backend, optuna.storages.RDBStorage):
        return [(t.number, t.state, t._trial_id) for t in study.get_trials(deepcopy=False)]
    import sqlalchemy
    from optuna.storages._rdb import models

    table = models.TrialModel.__table__
    query = sqlalchemy.select(table.c.number, table.c.state, table.c.trial_id).where(
        table.c.study_id == study._study_id
    )
    with backend.engine.connect() as connection:
        return [(row[0], row[1], row[2]) for row in connection.execute(query)]


def _utc(moment: datetime | None) -> datetime | None:
    """A naive local time as the naive UTC time Optuna's RDB tables hold."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _write_rdb(storage: Any, study_id: int, trials: list[Any]) -> None:
    """The rows Optuna's ``RDBStorage.create_new_trial(template_trial=...)`` writes for each
    trial, in one transaction (numbers follow the study's trials, as Optuna numbers them)."""
    import sqlalchemy
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models

    table = models.TrialModel.__table__
    rows: dict[Any, list[dict[str, Any]]] = {
        models.TrialParamModel: [],
        models.TrialValueModel: [],
        models.TrialUserAttributeModel: [],
        models.TrialSystemAttributeModel: [],
    }
    with storage.engine.begin() as connection:
        count = connection.execute(
            sqlalchemy.select(sqlalchemy.func.count())
            .select_from(table)
            .where(table.c.study_id == study_id)
        ).scalar_one()
        inserted = connection.execute(
            table.insert().returning(table.c.trial_id, sort_by_parameter_order=True),
            [
                {
                    "number": count + offset,
                    "study_id": study_id,
                    "state": trial.state,
                    "datetime_start": _utc(trial.datetime_start),
                    "datetime_complete": _utc(trial.datetime_complete),
                }
                for offset, trial in enumerate(trials)
            ],
        )
        trial_ids = [row[0] for row in inserted]
        for trial, trial_id in zip(trials, trial_ids, strict=True):
            for objective, value in enumerate(trial.values or []):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                rows[models.TrialValueModel].append(
                    {
                        "trial_id": trial_id,
                        "objective": objective,
                        "value": stored,
                        "value_type": kind,
                    }
                )
            for name, value in trial.params.items():
                distribution = trial.distributions[name]
                rows[models.TrialParamModel].append(
                    {
                        "trial_id": trial_id,
                        "param_name": name,
                        "param_value": distribution.to_internal_repr(value),
                        "distribution_json": distribution_to_json(distribution),
                    }
                )
            for model, attrs in (
                (models.TrialUserAttributeModel, trial.user_attrs),
                (models.TrialSystemAttributeModel, trial.system_attrs),
            ):
                rows[model] += [
                    {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                    for key, value in attrs.items()
                ]
        for model, values in rows.items():
            if values:
                connection.execute(model.__table__.insert(), values)


def _write_journal(storage: Any, study_id: int, trials: list[Any]) -> None:
    """The log lines Optuna's ``JournalStorage.create_new_trial(template_trial=...)`` writes
    for each trial, appended at once."""
    from optuna.distributions import distribution_to_json
    from optuna.storages.journal._storage import JournalOperation

    worker = storage._replay_result.worker_id
    logs = []
    for trial in trials:
        values = trial.values or []
        log: dict[str, Any] = {
            "op_code": JournalOperation.CREATE_TRIAL,
            "worker_id": worker,
            "study_id": study_id,
            "state": trial.state,
            "value": values[0] if len(values) == 1 else None,
            "values": values if len(values) > 1 else None,
            "datetime_start": _iso(trial.datetime_start),
            "distributions": {
                name: distribution_to_json(d) for name, d in trial.distributions.items()
            },
            "params": {
                name: trial.distributions[name].to_internal_repr(value)
                for name, value in trial.params.items()
            },
            "user_attrs": trial.user_attrs,
            "system_attrs": trial.system_attrs,
            "intermediate_values": trial.intermediate_values,
        }
        if trial.datetime_complete is not None:
            log["datetime_complete"] = _iso(trial.datetime_complete)
        logs.append(log)
    with storage._thread_lock:
        storage._backend.append_logs(logs)
        storage._sync_with_backend()


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


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
