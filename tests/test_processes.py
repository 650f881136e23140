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
        # two workers whatever the machine's cores (the default starts none on one core)
        [*command, "fit", str(MANIFEST), "-o", str(tmp_path / "law.json"), "--jobs", "2"],
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
    process.communicate(timeout=120)
    assert process.returncode in (-signal.SIGKILL, 128 + signal.SIGTERM, -signal.SIGTERM)
    deadline = time.monotonic() + 5
    while any(pid_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if pid_alive(pid)]
    assert not list(tmp_path.glob(".law.json.*.tmp"))


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
