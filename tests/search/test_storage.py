"""Optuna storages: resume after SIGKILL, several processes on one study, PostgreSQL.

These run ``cptopt recommend`` as real subprocesses. The PostgreSQL test needs the server
that ``.ci/start-postgres.sh`` starts (``.ci/run`` exports ``CPTOPT_TEST_POSTGRES_URL``); it is
skipped only outside CI when that variable is unset.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from cptopt.search.storage import open_storage

ENTRY = "from cptopt.cli import main; main()"


def _command(law_file: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        ENTRY,
        "recommend",
        "--law",
        str(law_file),
        "--weights",
        "0.4,0.6",
        "--format",
        "json",
        *args,
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OPTUNA_STORAGE", None)
    env["COLUMNS"] = "3000"
    return env


def _complete(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            (count,) = connection.execute(
                "SELECT count(*) FROM trials WHERE state = 'COMPLETE'"
            ).fetchone()
            return int(count)
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    return study.get_trials(deepcopy=False)


@pytest.mark.slow
def test_resume_after_sigkill_keeps_completed_trials(law_file, tmp_path) -> None:
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    total = 400  # a process writes up to 64 trials per turn: room for the kill to land
    args = _command(law_file, "--storage", url, "--study-name", "resume", "--trials", str(total))
    process = subprocess.Popen(
        args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    )
    deadline = time.monotonic() + 120
    try:
        # wait until the seed batch (64) and some sampler trials are in, then kill -9
        while _complete(db) < 72:
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the search did not start"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    before = {t.number: t for t in _trials(url, "resume") if t.state == TrialState.COMPLETE}
    assert 72 <= len(before) < total, "the kill did not land mid-search"

    rerun = subprocess.run(
        args, env=_env(), capture_output=True, text=True, cwd=tmp_path, timeout=180
    )
    assert rerun.returncode == 0, rerun.stderr
    payload = json.loads(rerun.stdout)
    assert payload["search"]["resumed"] is True
    assert payload["search"]["trials_complete"] == total
    assert payload["search"]["seed_trials_added"] == 0

    after = _trials(url, "resume")
    complete = {t.number: t for t in after if t.state == TrialState.COMPLETE}
    assert len(complete) == total
    for number, trial in before.items():  # the completed trials are intact
        assert complete[number].params == trial.params
        assert complete[number].value == trial.value
    assert not [t for t in after if t.state == TrialState.RUNNING]
    assert sum(1 for t in after if t.user_attrs.get("seed")) == 64


def _run_two(url: str, law_file: Path, tmp_path: Path, name: str, total: int) -> None:
    args = _command(law_file, "--storage", url, "--study-name", name, "--trials", str(total))
    processes = [
        subprocess.Popen(
            args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
        )
        for _ in range(2)
    ]
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr.decode()
        outputs.append(json.loads(stdout))
    trials = _trials(url, name)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == total, f"{len(complete)} complete trials, asked for {total}"
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials)))  # no trial lost or duplicated
    assert sum(1 for t in complete if t.user_attrs.get("seed")) == 64  # seeded once
    sampled = [tuple(sorted(t.params.items())) for t in complete if not t.user_attrs.get("seed")]
    assert len(set(sampled)) == len(sampled)  # the two processes did not repeat each other
    # Which process ran how many trials is up to the scheduler: one may even find the study
    # finished when it starts. Every trial is claimed by one of the two, that is what holds.
    pids = {process.pid for process in processes}
    workers = {
        t.user_attrs["cptopt_worker"]["pid"] for t in complete if not t.user_attrs.get("seed")
    }
    assert workers <= pids
    assert {o["search"]["trials_complete"] for o in outputs} == {total}
    assert sorted(o["search"]["resumed"] for o in outputs) == [False, True]


@pytest.mark.slow
def test_two_processes_share_one_journal_study(law_file, tmp_path) -> None:
    url = f"journal:{tmp_path / 'study.log'}"
    _run_two(url, law_file, tmp_path, "shared", 128)


def _postgres_url() -> str | None:
    url = os.environ.get("CPTOPT_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but CPTOPT_TEST_POSTGRES_URL is unset: .ci/run must start PostgreSQL")
    pytest.skip("no PostgreSQL (set CPTOPT_TEST_POSTGRES_URL; .ci/run does)")
    return None


@pytest.mark.slow
def test_two_processes_share_one_postgresql_study(law_file, tmp_path) -> None:
    url = _postgres_url()
    assert url is not None
    name = f"cptopt-test-{uuid.uuid4().hex[:12]}"
    try:
        _run_two(url, law_file, tmp_path, name, 112)
    finally:
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=name, storage=open_storage(url))


def test_stale_running_trials_are_recognised() -> None:
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from cptopt.search.storage import WORKER_ATTR, is_stale, worker_id

    now = datetime.now()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    def trial(age_s: float, worker: dict | None) -> SimpleNamespace:
        attrs = {} if worker is None else {WORKER_ATTR: worker}
        return SimpleNamespace(datetime_start=now - timedelta(seconds=age_s), user_attrs=attrs)

    me = worker_id()
    assert not is_stale(trial(1, me), now)  # this process, running
    assert not is_stale(trial(5, None), now)  # just asked, attribute not yet written
    assert is_stale(trial(60, None), now)  # asker died before claiming it
    assert is_stale(trial(1, {**me, "pid": dead.pid}), now)  # its process is gone
    assert not is_stale(trial(60, {"host": "elsewhere", "pid": 1}), now)  # another machine
    assert is_stale(trial(3600, {"host": "elsewhere", "pid": 1}), now)  # ... for an hour


def test_a_zombie_counts_as_dead() -> None:
    from cptopt._processes import pid_alive

    child = os.fork()
    if child == 0:  # the child exits at once; nobody reaps it yet: a zombie
        os._exit(0)
    try:
        deadline = time.monotonic() + 5
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not pid_alive(child)
        assert pid_alive(os.getpid())
    finally:
        os.waitpid(child, 0)


def test_a_lock_held_by_a_killed_process_is_free_at_once(tmp_path) -> None:
    from cptopt.search.storage import FileLock

    lock_path = tmp_path / "study.log.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from cptopt.search.storage import FileLock; "
            f"FileLock({str(lock_path)!r}).acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        env=_env(),
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    # free at once: a non-blocking flock succeeds (no grace period to wait out, whatever
    # the machine's load), and FileLock takes it
    descriptor = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
    with FileLock(lock_path):
        assert lock_path.exists()
    assert not lock_path.exists()  # released locks leave no file
