"""``cptopt fit`` on pilots as the real libraries logged them: HF, TensorBoard, Lightning, W&B.

``tests/fixtures/real-logs/pilots.yaml`` lists each log as the tool wrote it, with no
``columns:`` but Lightning's indexed loss names (the README shows it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cptopt.cli import app

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real-logs"


@pytest.mark.slow
def test_fit_on_a_manifest_of_every_format(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    out = tmp_path / "law.json"
    result = CliRunner().invoke(
        app,
        ["fit", str(REAL / "pilots.yaml"), "--law", "paper", "-o", str(out)],
        env={"COLUMNS": "80", "CPTOPT_DEBUG": ""},
    )
    assert result.exit_code == 0, result.stderr
    law = json.loads(out.read_text())
    names = [item["name"] for item in law["inputs"] if item["name"] != "pretrain"]
    assert names == ["hf-B", "hf-C", "hf-A2", "L1", "L2", "L5", "wandb-pl"]
    assert not [note for note in law["notes"] if "interpolated" in note]
    # how the LR was pinned down is information (a note), not a warning
    assert any("pin down" in line for line in law["info"])
    assert not [note for note in law["notes"] if "pin down" in note]
    assert "note: " in result.stdout and "warning: LR logged" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    # the only mapping is Lightning's indexed loss names, as the README shows it
    manifest = yaml.safe_load((REAL / "pilots.yaml").read_text())
    assert "columns" not in manifest
    (mapped,) = [run for run in manifest["runs"] if "columns" in run]
    columns = ", ".join(f"{role}: {name}" for role, name in mapped["columns"].items())
    assert f"columns: {{{columns}}}" in (REAL.parents[2] / "README.md").read_text()
