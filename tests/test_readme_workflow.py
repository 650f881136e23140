"""The README's GitHub Actions workflow works as pasted (issues #14, #23): it installs cptopt
from where users get it, pinned to a commit that exists, and its steps run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _workflow() -> dict:
    text = README.read_text()
    block = text.split("```yaml\nname: cptopt check\n", 1)[1].split("```", 1)[0]
    return yaml.safe_load("name: cptopt check\n" + block)


def _commands() -> list[str]:
    steps = _workflow()["jobs"]["check"]["steps"]
    return [step["run"] for step in steps if "run" in step]


def test_workflow_installs_cptopt_from_its_repository_pinned_to_a_commit():
    """No tag exists: the workflow pins a full commit SHA (a placeholder the user replaces),
    and installs from the repository (a direct reference, not PyPI)."""
    env = _workflow()["env"]
    assert env["CPTOPT_REPO"].startswith("https://")
    assert re.fullmatch(r"[0-9a-f]{40}", str(env["CPTOPT_COMMIT"]))
    install, version, check = _commands()
    assert install == 'pip install "cptopt @ git+${CPTOPT_REPO}@${CPTOPT_COMMIT}"'
    assert version == "cptopt --version"
    assert check.startswith("cptopt check configs/*.yaml") and "--format github" in check
    # the wheel route names what builds the wheel
    assert "pip install build && python -m build --wheel" in README.read_text()


def _can_build_offline() -> bool:
    """setuptools >= 70.1 (or the wheel package) builds cptopt's wheel without fetching the
    build backend from the package index."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    try:
        import wheel  # noqa: F401
    except ImportError:
        return (major, minor) >= (70, 1)
    return True


def _run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_workflow_steps_run_as_pasted_against_a_clone(tmp_path, law_file):
    """The install line, as written, installs cptopt from a clone of this repository at its
    HEAD commit into a fresh virtual environment; `cptopt --version` then names that commit,
    and the check line judges a configs/ folder like the examples' (non-configs skipped).

    The environment sees the system's packages (cptopt's dependencies, so nothing but the
    build backend comes from the package index) and pip gets --no-deps; the build backend
    is the system's when it can build offline (--no-build-isolation), else pip fetches it.
    """
    if shutil.which("git") is None:
        pytest.skip("needs git")
    clone = tmp_path / "cptopt"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=300)
    commit = subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        # the workflow's two values: a clone (PEP 508 wants a host in a file URL) at HEAD
        CPTOPT_REPO=f"file://localhost{clone}",
        CPTOPT_COMMIT=commit,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    install, version, check = _commands()
    flags = "--no-deps --no-build-isolation" if _can_build_offline() else "--no-deps"
    installed = _run(install.replace("pip install", f"pip install {flags}", 1), tmp_path, env)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    shown = _run(version, tmp_path, env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"cptopt 0.1.0 (commit {commit}, file://localhost{clone})"

    project = tmp_path / "project"  # the user's repository
    shutil.copytree(ROOT / "examples" / "configs", project / "configs")
    shutil.copy(law_file, project / "cptopt-law.json")
    shutil.copy(ROOT / "examples" / "cptopt.toml", project / "cptopt.toml")
    judged = _run(check, project, env)
    assert judged.returncode == 1, judged.stderr  # limits broken, no bad input
    annotations = judged.stdout.splitlines()
    assert annotations[-1] == (
        "cptopt check: 5 configs, 2 passed, 3 failed, 0 errors, 4 skipped (not training configs)"
    )
    notices = [line for line in annotations if line.startswith("::notice ")]
    assert [line.split(",", 1)[0] for line in notices] == [
        f"::notice file=configs/{name}.yaml"
        for name in ("candidates", "pretrain-search", "pretrain-wsd", "search")
    ]
    assert any(line.startswith("::error file=configs/const-noreplay.yaml") for line in annotations)
