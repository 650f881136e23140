"""Killed processes leave nothing behind: no worker, no temporary file, no held pipe.

``cptopt fit`` runs its fits in two forked workers. These tests start a real fit, kill it
with SIGKILL or SIGTERM at several moments, and check that its workers are gone within
seconds, that a reader of its output pipe is not left waiting, and that no temporary file
of the law file survives (removed at once on SIGTERM, by the next write after SIGKILL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cptopt._io import atomic_write_text
from cptopt._processes import pid_alive

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "examples" / "pilots" / "unannealed.yaml"

pytestmark = pytest.mark.slow


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _start_fit(tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", "from cptopt.cli import main; main()"]
    return subprocess.Popen(
        # two workers whatever the machine's cores (the default starts none on one core);
        # 30 starts keep the fit running about 2 s after its workers start, so that the
        # signal lands mid-fit (the default fit can end within 0.8 s of them)
        [*command, "fit", str(MANIFEST), "-o", str(tmp_path / "law.json"), "--jobs", "2"]
        + ["--starts", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )


def _wait_for_workers(process: subprocess.Popen, timeout: float = 20.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = _children(process.pid)
        if len(workers) >= 2:
            return workers
        time.sleep(0.05)
    raise AssertionError("the fit did not start its workers")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.parametrize("delay", [0.0, 0.8])
def test_killed_fit_leaves_no_worker_and_no_held_pipe(tmp_path, signum, delay):
    process = _start_fit(tmp_path)
    workers = _wait_for_workers(process)
    time.sleep(delay)
    process.send_signal(signum)
    # returns only when no process holds the pipes; the timeout only guards against a hang
    _, err = process.communicate(timeout=120)
    assert process.returncode in (-signal.SIGKILL, 128 + signal.SIGTERM, -signal.SIGTERM)
    deadline = time.monotonic() + 5
    while any(pid_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if pid_alive(pid)]
    assert not list(tmp_path.glob(".law.json.*.tmp"))
    assert b"Traceback" not in err, err.decode()


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".law.json.{dead.pid}.abc123.tmp"
    stale.write_text("half a law")
    mine = tmp_path / f".law.json.{os.getpid()}.def456.tmp"  # a live writer's: kept
    mine.write_text("being written")
    atomic_write_text(tmp_path / "law.json", "{}\n")
    assert not stale.exists() and mine.exists()
    assert (tmp_path / "law.json").read_text() == "{}\n"


WRITER = """
import sys, time
from cptopt._io import atomic_writer
with atomic_writer(sys.argv[1]) as handle:
    handle.write("half a law")
    handle.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="Linux O_TMPFILE")
def test_a_writer_killed_while_writing_leaves_nothing(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    target = tmp_path / "law.json"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, env=env
    )
    assert writer.stdout.readline() == b"writing\n"  # inside the block, the data written
    writer.kill()
    writer.wait()
    assert list(tmp_path.iterdir()) == []  # the file had no name while being written


def test_a_killed_writers_temp_file_is_removed_by_the_next_read_of_the_law(tmp_path):
    from cptopt.exceptions import InputError
    from cptopt.law import load_law

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".cptopt-law.json.{dead.pid}.abc123.tmp"
    stale.write_text("half a law")
    with pytest.raises(InputError, match="law file not found"):
        load_law(tmp_path / "cptopt-law.json")
    assert not stale.exists()


def _signal_state(context: object) -> tuple:
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    stop = {signal.SIGTERM, signal.SIGINT}
    return signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT), stop & blocked


def _die(context: object) -> None:
    os._exit(9)


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_workers_die_of_sigterm_silently_and_leave_sigint_to_the_parent():
    from cptopt.fitting.workers import FitContext, process_pool

    with process_pool(2, FitContext()) as runner:
        assert runner.parallel
        # forked with the stop signals held back, then: SIGTERM kills (no handler raising
        # SystemExit in a worker), SIGINT is the parent's, nothing left blocked
        expected = (signal.SIG_DFL, signal.SIG_IGN, set())
        assert runner.submit(_signal_state).result() == expected
        assert not {signal.SIGTERM, signal.SIGINT} & signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_worker_that_dies_is_a_fit_error_not_a_broken_pool():
    from cptopt.exceptions import FitError
    from cptopt.fitting.workers import FitContext, process_pool

    with (
        pytest.raises(FitError, match="worker process ended abruptly"),
        process_pool(2, FitContext()) as runner,
    ):
        runner.submit(_die).result()


HALF_A_REPLY = """
import multiprocessing, os, signal, struct, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from cptopt._processes import stop_workers

POOL = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))

def half_a_reply():
    # a worker that dies while sending its result: a header, 10 of 1,000,000 bytes, then
    # frozen until the parent kills it
    os.write(POOL._result_queue._writer.fileno(), struct.pack("!i", 1_000_000) + b"x" * 10)
    os.kill(os.getpid(), signal.SIGSTOP)

def stopped(pid):
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"

POOL.submit(half_a_reply)
while not any(stopped(worker.pid) for worker in POOL._processes.values()):
    time.sleep(0.05)
stop_workers(POOL)  # as process_pool does on SIGTERM
print("exiting", flush=True)
"""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_a_worker_killed_mid_reply_does_not_hold_the_exit():
    # the pool's reader thread, waiting for the rest of the reply, was joined at exit
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.run(
        [sys.executable, "-c", HALF_A_REPLY], capture_output=True, env=env, timeout=120
    )
    assert process.stdout == b"exiting\n" and process.returncode == 0, process.stderr.decode()
