"""``cptopt predict``: text and JSON output, out-of-range flags, --plot, and bad input."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cptopt.cli import app
from cptopt.prediction import Prediction, PretrainPrediction

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "examples" / "configs"
EXAMPLES = sorted(
    name
    for name in (
        "wsd-replay25.yaml",
        "hf-cosine-replay25.yaml",
        "wsd-lr1e-3-replay25.yaml",
        "const-noreplay.yaml",
        "wsd-3x-lr.yaml",
    )
)
runner = CliRunner()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("name", EXAMPLES)
def test_predict_every_example_config_as_json(law_file, name: str) -> None:
    result = runner.invoke(
        app, ["predict", str(CONFIGS / name), "--law", str(law_file), "--format", "json"]
    )
    assert result.exit_code == 0, result.stderr
    prediction = Prediction.model_validate(json.loads(result.stdout))
    assert prediction.in_range == (not prediction.flags)
    assert prediction.general.steps[0] == 0
    assert prediction.general.steps[-1] == prediction.steps


def test_out_of_range_settings_are_flagged(law_file) -> None:
    longer = runner.invoke(
        app,
        ["predict", str(CONFIGS / "wsd-replay25.yaml"), "--law", str(law_file), "--format", "json"],
    )
    flags = Prediction.model_validate_json(longer.stdout).flags
    assert any("2000 steps beyond the longest pilot" in flag for flag in flags)
    high = runner.invoke(
        app,
        ["predict", str(CONFIGS / "wsd-3x-lr.yaml"), "--law", str(law_file), "--format", "json"],
    )
    prediction = Prediction.model_validate_json(high.stdout)
    assert not prediction.in_range
    assert any(flag.startswith("peak LR 0.006 outside") for flag in prediction.flags)


def test_text_output_reports_turning_point_and_flags(law_file) -> None:
    result = runner.invoke(
        app, ["predict", str(CONFIGS / "wsd-replay25.yaml"), "--law", str(law_file)]
    )
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "general loss" in text and (
        "back at its start" in text or "does not recover" in text or "never rises" in text
    )
    assert "outside the pilots: 2000 steps beyond the longest pilot" in text


def test_predict_plot(law_file, unannealed_manifest, tmp_path: Path) -> None:
    out = tmp_path / "pred.png"
    result = runner.invoke(
        app,
        [
            "predict",
            str(CONFIGS / "wsd-replay25.yaml"),
            "--law",
            str(law_file),
            "--format",
            "json",
            "--plot",
            str(out),
            "--pilots",
            str(unannealed_manifest),
            "--plot-size",
            "1000x600",
        ],
    )
    assert result.exit_code == 0, result.stderr
    Prediction.model_validate_json(result.stdout)  # the plot does not disturb stdout
    assert f"plot written to {out}" in " ".join(result.stderr.split())
    assert _png_size(out) == (1000, 600)
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--pilots", "x.yaml"], "--pilots is only used with --plot"),
        (["--plot", "p.png", "--plot-size", "wide"], "--plot-size == 'wide'"),
    ],
)
def test_plot_option_errors(law_file, extra, expected) -> None:
    result = runner.invoke(
        app, ["predict", str(CONFIGS / "wsd-lr1e-3-replay25.yaml"), "--law", str(law_file), *extra]
    )
    assert result.exit_code == 2
    assert expected in " ".join(result.stderr.split())
    assert result.stdout == ""


def test_predict_plot_without_matplotlib(law_file, tmp_path, monkeypatch) -> None:
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = runner.invoke(
        app,
        [
            "predict",
            str(CONFIGS / "wsd-lr1e-3-replay25.yaml"),
            "--law",
            str(law_file),
            "--plot",
            str(tmp_path / "p.png"),
        ],
    )
    assert result.exit_code == 2
    assert "pip install 'cptopt[plot]'" in " ".join(result.stderr.split())
    assert not (tmp_path / "p.png").exists()


def test_predict_bad_config_and_law(law_file, tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("schedule: {family: wsd, peak_lr: 2.0e-3, steps: 0}\nreplay_ratio: 0\n")
    result = runner.invoke(app, ["predict", str(bad), "--law", str(law_file)])
    assert result.exit_code == 2
    assert "schedule.steps" in " ".join(result.stderr.split())
    missing = runner.invoke(
        app,
        ["predict", str(CONFIGS / "wsd-lr1e-3-replay25.yaml"), "--law", str(tmp_path / "no.json")],
    )
    assert missing.exit_code == 2
    assert "law file not found" in missing.stderr


# ------------------------------------------------------------- pre-training schedules


def test_predict_a_pretraining_schedule(pretrain_law_file) -> None:
    config = CONFIGS / "pretrain-wsd.yaml"
    result = runner.invoke(
        app, ["predict", str(config), "--law", str(pretrain_law_file), "--format", "json"]
    )
    assert result.exit_code == 0, result.stderr
    prediction = PretrainPrediction.model_validate(json.loads(result.stdout))
    assert prediction.steps == 24000 and prediction.warmup_steps == 2160
    assert prediction.loss.steps[0] == 2161 and prediction.loss.steps[-1] == 24000
    # the run itself (wsd_20000_24000, a test run of pt-mpl25) ends at 3.2766
    assert prediction.loss.final == pytest.approx(3.2766, rel=0.005)
    assert prediction.flags == [] and prediction.in_range
    text = runner.invoke(
        app, ["predict", str(config), "--law", str(pretrain_law_file), "--steps", "3000,24000"]
    )
    assert text.exit_code == 0, text.stderr
    assert "pre-training wsd 24000 steps" in text.stdout and "validation" in text.stdout
    assert "general" not in text.stdout and "domain" not in text.stdout


def test_predict_refuses_to_mix_kinds_of_law_and_run(pretrain_law_file, law_file) -> None:
    cpt_config = CONFIGS / "wsd-replay25.yaml"
    result = runner.invoke(app, ["predict", str(cpt_config), "--law", str(pretrain_law_file)])
    assert result.exit_code == 2
    assert "replay_ratio: a pre-training run has no replay ratio" in result.stderr
    pretrain_config = CONFIGS / "pretrain-wsd.yaml"
    result = runner.invoke(
        app, ["predict", str(pretrain_config), "--law", str(pretrain_law_file), "--plot", "x.png"]
    )
    assert result.exit_code == 2 and "kind: --plot needs a CPT law" in result.stderr
    assert result.stdout == ""
    result = runner.invoke(app, ["predict", str(pretrain_config), "--law", str(law_file)])
    assert result.exit_code == 2 and "replay_ratio" in result.stderr
