"""``cptopt inspect``: the rich table and the JSON, on the committed fixture logs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cptopt.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "logs"
NATIVE = (
    Path(__file__).resolve().parents[2]
    / "examples/data/cpt-code/runs/code_U_lr1x_r25_wsd_1000.csv"
)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "3000"})


def test_table_shows_series_roles_and_lr_coverage():
    result = invoke("inspect", str(FIXTURES / "hf-every10"), str(FIXTURES / "tensorboard"))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    text = " ".join(out.split())  # titles and captions wrap to the table's width
    assert "trainer_state.json (hf, step = 'step')" in text
    assert "LR at 101 of 1000 steps (largest gap 10): interpolated unless a schedule" in text
    assert "(tensorboard, step = 'step')" in text
    assert "LR at every step 1..1000" in text
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    assert "general" in rows["eval_general_loss"] and "0..1000" in rows["eval_general_loss"]
    assert "lr" in rows["train/learning_rate"] and "1001" in rows["train/learning_rate"]
    assert rows["eval_general_runtime"].split("│")[2].strip() == ""  # no role


def test_json_is_parseable_and_complete():
    result = invoke("inspect", str(FIXTURES / "lightning-every50"), str(NATIVE), "--format", "json")
    assert result.exit_code == 0, result.stderr
    first, second = json.loads(result.stdout)["logs"]
    assert first["format"] == "lightning" and second["format"] == "csv"
    assert first["mapping"] == {
        "general": "val_loss_general",
        "domain": "val_loss_domain",
        "lr": "lr-AdamW",
    }
    assert first["lr_coverage"]["largest_gap"] == 50
    assert second["lr_coverage"]["per_step"] is True
    assert len(second["sha256"]) == 64
    loss = next(s for s in second["series"] if s["name"] == "loss_general")
    assert (loss["first_step"], loss["last_step"], loss["points"]) == (0, 1000, 25)


def test_mapping_options_change_roles():
    result = invoke(
        "inspect",
        str(FIXTURES / "hf"),
        "--general",
        "general",
        "--domain",
        "none",
        "--lr",
        "none",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    (summary,) = json.loads(result.stdout)["logs"]
    assert summary["mapping"] == {"general": "eval_general_loss", "domain": None, "lr": None}
    assert summary["lr_coverage"] is None


def test_mapping_error_still_shows_the_series_then_exits_2(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("step,lr,eval_loss\n0,0,2.0\n10,1e-3,1.9\n")
    result = invoke("inspect", str(path))
    assert result.exit_code == 2
    assert "eval_loss" in result.stdout  # the table is printed so the user can fix the map
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot tell which series" in lines[0]
    assert "series present: lr, eval_loss" in lines[0]


def test_help_lists_formats():
    result = invoke("inspect", "--help")
    assert result.exit_code == 0
    for name in ("tensorboard", "lightning", "wandb-history", "jsonl"):
        assert name in result.stdout


def test_readme_log_commands_run(monkeypatch):
    """Every ``cptopt inspect`` example of the README's logs section runs and exits 0."""
    import shlex

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    section = readme.split("<!-- section:logs -->")[1].split("<!-- /section:logs -->")[0]
    commands = [line for line in section.splitlines() if line.startswith("cptopt inspect ")]
    assert len(commands) == 6
    monkeypatch.chdir(root)
    for command in commands:
        result = invoke(*shlex.split(command)[1:], "--format", "json")
        assert result.exit_code == 0, (command, result.stderr)
        (summary,) = json.loads(result.stdout)["logs"]
        assert summary["mapping"]["general"] and summary["mapping"]["domain"], command
