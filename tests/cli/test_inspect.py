"""``cptopt inspect``: the rich table and the JSON, on the committed fixture logs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cptopt.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "logs"
REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real-logs"
NATIVE = (
    Path(__file__).resolve().parents[2] / "examples/data/cpt-code/runs/code_U_lr1x_r25_wsd_1000.csv"
)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "3000"})


def test_table_shows_series_roles_and_lr_coverage():
    result = invoke("inspect", str(FIXTURES / "hf-every10"), str(FIXTURES / "tensorboard"))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    text = " ".join(out.split())  # titles and captions wrap to the table's width
    assert "trainer_state.json (hf, step = 'step')" in text
    assert (
        "LR at 101 of 1000 steps (largest gap 10): they pin down WSD linear decay "
        "(cptopt step convention): warmup 20, peak 0.002, decay from step 800" in text
    )
    assert "(tensorboard, step = 'step')" in text
    assert "LR at every step 1..1000" in text
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["eval_general_loss"][1:3] == ["general", "0..1000"]
    assert rows["train/learning_rate"][1] == "lr" and "1001" in rows["train/learning_rate"]
    assert rows["eval_general_runtime"][1] == "0..1000"  # no role: the steps come next


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
    path.write_text("step,lr,eval_loss_a,eval_loss_b\n0,0,2.0,2.1\n10,1e-3,1.9,2.0\n")
    result = invoke("inspect", str(path))
    assert result.exit_code == 2
    assert "eval_loss_a" in result.stdout  # the table is printed so the user can fix the map
    # the footer does not claim the run has no LR: nothing was read
    assert "no LR series" not in result.stdout
    assert "nothing read: the mapping failed (the error says why)" in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot tell which series" in lines[0]
    assert "series present: lr, eval_loss_a, eval_loss_b" in lines[0]


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
    assert len(commands) == 9
    monkeypatch.chdir(root)
    for command in commands:
        result = invoke(*shlex.split(command)[1:], "--format", "json")
        assert result.exit_code == 0, (command, result.stderr)
        for summary in json.loads(result.stdout)["logs"]:
            assert summary["mapping"]["general"] and summary["mapping"]["domain"], command


# --------------------------------------------------------------------------- real-library logs


def _true_lr(folder: str) -> np.ndarray:
    return np.asarray(json.loads((REAL / folder / "true_lr.json").read_text()), dtype=float)


def test_json_reports_the_per_step_lr_of_real_logs():
    pytest.importorskip("tensorboard")
    logs = [REAL / "hf-B", REAL / "hf-C/runs", REAL / "pl/L1/version_0"]
    result = invoke("inspect", *map(str, logs), "--format", "json")
    assert result.exit_code == 0, result.stderr
    summaries = json.loads(result.stdout)["logs"]
    for summary, folder in zip(summaries, ("hf-B", "hf-C", "pl/L1/version_0"), strict=True):
        per_step = np.asarray(summary["lr_per_step"])
        np.testing.assert_allclose(per_step, _true_lr(folder), rtol=0, atol=1e-9)
        assert per_step[0] == 0.0  # update 1 first: the first warmup update runs at LR 0
        assert summary["lr_source"] == "matched" and summary["lr_s1_bound"] == 0
        assert "they pin down" in summary["lr_description"]
    assert [summary["step_offset"] for summary in summaries] == [0, 0, 1]
    assert summaries[0]["notes"] and "eval_on_start=True" in summaries[0]["notes"][-1]
    assert not summaries[1]["notes"]  # hf-C evaluates at step 0


def _inspect_l5(*options: str):
    """Lightning run L5 (two val dataloaders, LR every 50 steps), its losses named."""
    general, domain = "val_loss/dataloader_idx_0", "val_loss/dataloader_idx_1"
    log = str(REAL / "pl/L5/version_0")
    return invoke("inspect", log, "--general", general, "--domain", domain, *options)


def test_json_bound_for_an_lr_the_points_cannot_pin_down():
    result = _inspect_l5("--format", "json")
    assert result.exit_code == 0, result.stderr
    (summary,) = json.loads(result.stdout)["logs"]
    assert summary["lr_source"] == "interpolated"
    error = np.asarray(summary["lr_per_step"]).sum() / _true_lr("pl/L5/version_0").sum() - 1
    assert 0 < error <= summary["lr_s1_bound"]


def test_table_says_how_the_lr_was_found_and_the_lightning_offset():
    result = invoke("inspect", str(REAL / "pl/L1/version_0"), str(REAL / "pl/L2/version_0"))
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "(lightning, step = 'step' + 1 (0-based in the file))" in text
    assert "LR at 20 of 200 steps (largest gap 10): they pin down cosine (PyTorch/HF" in text
    text = " ".join(_inspect_l5().stdout.split())
    assert "interpolated, S1 error up to 14 %; describe the schedule (schedule:)" in text


def test_lightning_dataloader_index_names_get_a_suggested_mapping():
    result = invoke("inspect", str(REAL / "pl/L5/version_0"), "--format", "json")
    assert result.exit_code == 2
    (summary,) = json.loads(result.stdout)["logs"]
    suggestion = "columns: {general: val_loss/dataloader_idx_0, domain: val_loss/dataloader_idx_1}"
    assert summary["suggested_columns"] == suggestion
    assert suggestion in summary["error"] and "val_dataloaders" in summary["error"]
    table = invoke("inspect", str(REAL / "pl/L5/version_0"))
    # Whitespace-normalised: the table wraps at the terminal's width (80 under pytest-xdist).
    text = " ".join(table.stdout.split())
    assert f"suggested mapping (val_dataloaders order): {suggestion}" in text


def test_several_tensorboard_runs_are_one_line_listing_them():
    pytest.importorskip("tensorboard")
    result = invoke("inspect", str(REAL / "hf-A2/runs"), "--format", "json")
    assert result.exit_code == 2
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert "holds 2 runs (Dec02_00-42-16_vm, Dec02_00-43-09_vm)" in line
    assert "give one run's folder as the log" in line
    (summary,) = json.loads(result.stdout)["logs"]
    assert summary["runs"] == ["Dec02_00-42-16_vm", "Dec02_00-43-09_vm"]


def test_wandb_run_folder():
    pytest.importorskip("wandb")
    result = invoke("inspect", str(REAL / "wandb-pl"), "--format", "json")
    assert result.exit_code == 0, result.stderr
    (summary,) = json.loads(result.stdout)["logs"]
    assert summary["format"] == "wandb-run" and summary["step"] == "trainer/global_step"
    assert summary["step_offset"] == 1 and summary["lr_source"] == "matched"
