"""Start-up: ``import cptopt`` and ``import cptopt.cli`` load no stage, and each command
loads only the stages it runs (issue 25: ``cptopt fit`` under a second)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: The stages that ``cptopt fit`` does not run.
NOT_FIT = ("cptopt.search", "cptopt.design", "cptopt.limits", "cptopt.prediction")


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys; print(); print(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return set(result.stdout.splitlines()[-1].split())  # the last line: after any output


def test_import_cptopt_loads_only_its_version():
    """The API's functions and types are loaded on first use (``cptopt.__getattr__``)."""
    loaded = _modules_after("import cptopt")
    assert sorted(m for m in loaded if m.startswith("cptopt")) == ["cptopt", "cptopt._version"]


def test_importing_the_command_line_loads_no_stage():
    """``cptopt --help`` pays for Typer and rich only: the option declarations take the
    library's defaults from ``cptopt.cli._defaults``, and each command imports the stages
    it runs in its body."""
    loaded = _modules_after("import cptopt.cli")
    stages = sorted(m for m in loaded if m.startswith("cptopt.") and not m.startswith("cptopt.cli"))
    assert stages == ["cptopt._version", "cptopt.exceptions"]
    assert not loaded & {"numpy", "pydantic", "yaml", "optuna", "scipy"}


def test_fit_loads_no_search_design_limits_or_prediction(tmp_path):
    manifest = EXAMPLES / "pilots" / "unannealed.yaml"
    output = tmp_path / "law.json"
    loaded = _modules_after(
        "from cptopt.cli import run\n"
        f"code = run(['fit', {str(manifest)!r}, '-o', {str(output)!r}, '--starts', '1', "
        "'--no-jackknife', '--form', 'paper', '--format', 'json'])\n"
        "assert code == 0, code"
    )
    assert output.exists()
    assert "cptopt.fitting" in loaded and "cptopt.report.fit" in loaded
    unneeded = sorted(m for m in loaded if m.startswith(NOT_FIT))
    assert not unneeded, unneeded


def test_a_command_is_built_alone_and_help_builds_them_all():
    """``run`` hands click only the command it runs (Typer builds every option of every
    command it holds); the top-level help and an unknown command see them all."""
    from cptopt.cli import _click_command, app

    every = {info.name for info in app.registered_commands}
    assert set(_click_command(["fit", "x.yaml"]).commands) == {"fit"}
    assert set(_click_command(["next-pilot", "--help"]).commands) == {"next-pilot"}
    for argv in ([], ["--help"], ["-V"], ["fi"], ["--", "fit"]):
        assert set(_click_command(argv).commands) == every, argv
