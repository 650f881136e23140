"""Plots: each one rendered to a PNG of the requested size with something drawn on it."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cptopt.cli import app
from cptopt.exceptions import InputError
from cptopt.pilots.manifest import load_manifest
from cptopt.plan import load_config
from cptopt.prediction import predict
from cptopt.report.plot import dense_steps, fitted_curve, parse_size, plot_fit, plot_prediction

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "examples" / "configs"
runner = CliRunner()


def assert_png(path: Path, width: int, height: int) -> None:
    """``path`` is a PNG of exactly ``width`` x ``height`` pixels that is not one flat colour."""
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (width, height)
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width)
    assert np.ptp(pixels[..., :3]) > 0.5  # lines and text, not a blank canvas


@pytest.fixture(scope="module")
def pilots(unannealed_manifest):
    return load_manifest(unannealed_manifest)


def test_fit_plot_with_pilots(fitted_law, pilots, tmp_path: Path) -> None:
    path = plot_fit(fitted_law, tmp_path / "fit.png", pilots, size=(900, 600))
    assert_png(path, 900, 600)


def test_fit_plot_without_pilots_shows_stored_errors(fitted_law, tmp_path: Path) -> None:
    path = plot_fit(fitted_law, tmp_path / "sub" / "errors.png", size=(640, 480), dpi=80)
    assert_png(path, 640, 480)


def test_prediction_plot(fitted_law, pilots, tmp_path: Path) -> None:
    config = load_config(CONFIGS / "wsd-replay25.yaml")
    steps = dense_steps(config.schedule.n_steps)
    prediction = predict(
        fitted_law, config.schedule, config.replay_ratio, checkpoint=config.checkpoint, steps=steps
    )
    assert_png(plot_prediction(prediction, tmp_path / "a.png", size=(800, 500)), 800, 500)
    assert_png(plot_prediction(prediction, tmp_path / "b.png", pilots), 1200, 800)


def test_fitted_curve_matches_predict_for_a_pilot_schedule(fitted_law, pilots) -> None:
    run = pilots.runs[0]
    from cptopt.schedules import Schedule

    schedule = Schedule(family="custom", lr=tuple(run.cpt_lr))
    steps = np.array([0, 100, run.steps])
    expected = predict(
        fitted_law, schedule, run.replay_ratio, checkpoint=run.checkpoint, steps=steps
    )
    np.testing.assert_allclose(
        fitted_curve(fitted_law, run, "domain", steps), expected.domain.mean, rtol=1e-12
    )


def test_cli_plot(law_file, unannealed_manifest, tmp_path: Path) -> None:
    out = tmp_path / "fit.png"
    args = ["plot", str(law_file), "--pilots", str(unannealed_manifest), "-o", str(out)]
    result = runner.invoke(app, [*args, "--size", "1000x700"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "plot written to" in result.stderr
    assert_png(out, 1000, 700)
    result = runner.invoke(app, ["plot", str(law_file), "-o", str(tmp_path / "e.png")])
    assert result.exit_code == 0, result.stderr
    assert_png(tmp_path / "e.png", 1200, 800)


def test_cli_plot_takes_the_law_as_the_other_commands_do(law_file, tmp_path: Path) -> None:
    out = tmp_path / "fit.png"
    result = runner.invoke(app, ["plot", "--law", str(law_file), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert_png(out, 1200, 800)
    twice = ["plot", str(tmp_path / "other.json"), "--law", str(law_file), "-o", str(out)]
    result = runner.invoke(app, twice)
    assert result.exit_code == 2
    assert "the law file is given twice" in " ".join(result.stderr.split())


def test_cli_plot_svg(law_file, tmp_path: Path) -> None:
    out = tmp_path / "fit.svg"
    assert runner.invoke(app, ["plot", str(law_file), "-o", str(out)]).exit_code == 0
    assert out.read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--size", "big"], "--size == 'big'"),
        (["--size", "10x10"], "100..10000"),
        (["-o", "fit.nosuchformat"], "cannot write this image format"),
        (["--pilots", "missing.yaml"], "missing.yaml"),
    ],
)
def test_cli_plot_bad_input_is_exit_2(law_file, tmp_path, monkeypatch, args, expected) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["plot", str(law_file), *args])
    assert result.exit_code == 2
    assert expected in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_cli_plot_missing_law_is_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plot", str(tmp_path / "law.json"), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "law file not found" in result.stderr


def test_missing_matplotlib_says_how_to_install(fitted_law, tmp_path, monkeypatch) -> None:
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(InputError, match=r"pip install 'cptopt\[plot\]'"):
        plot_fit(fitted_law, tmp_path / "fit.png")
    result = runner.invoke(app, ["plot", "--help"])
    assert result.exit_code == 0  # the CLI itself does not need matplotlib


@pytest.mark.parametrize(("text", "size"), [("1200x800", (1200, 800)), ("640X480", (640, 480))])
def test_parse_size(text: str, size: tuple[int, int]) -> None:
    assert parse_size(text) == size


def test_dense_steps() -> None:
    assert dense_steps(10).tolist() == list(range(11))
    steps = dense_steps(2000)
    assert steps[0] == 0 and steps[-1] == 2000 and steps.size <= 400


def test_readme_embeds_real_plots_made_from_the_bundled_data() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("docs/fit.png", "docs/predict.png"):
        assert f"]({name})" in readme
        data = (ROOT / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == (1200, 800)
    assert "--pilots examples/pilots/unannealed.yaml -o docs/fit.png" in readme


def test_a_pretraining_fit_is_drawn_over_its_pilots(pretrain_law, pretrain_manifest, tmp_path):
    pilots = load_manifest(pretrain_manifest)
    path = plot_fit(pretrain_law, tmp_path / "pt.png", pilots, size=(900, 600))
    assert_png(path, 900, 600)
    assert_png(plot_fit(pretrain_law, tmp_path / "errors.png", size=(500, 400)), 500, 400)


def test_a_pretraining_pilots_fitted_curve_is_what_predict_says(pretrain_law, pretrain_manifest):
    from cptopt.schedules import Schedule

    run = load_manifest(pretrain_manifest).runs[2]  # the two-stage pilot
    steps = np.array([run.warmup_steps + 1, 8000, 8100, run.steps])
    schedule = Schedule(family="custom", lr=tuple(run.lr))
    expected = predict(pretrain_law, schedule, steps=steps, warmup_steps=run.warmup_steps)
    np.testing.assert_allclose(
        fitted_curve(pretrain_law, run, "loss", steps), expected.loss.mean, rtol=1e-12
    )


def test_cli_plot_of_a_pretraining_law(pretrain_law_file, pretrain_manifest, tmp_path) -> None:
    out = tmp_path / "pt.png"
    args = ["plot", str(pretrain_law_file), "--pilots", str(pretrain_manifest), "-o", str(out)]
    result = runner.invoke(app, [*args, "--size", "800x600"])
    assert result.exit_code == 0, result.stderr
    assert_png(out, 800, 600)
    mixed = runner.invoke(
        app,
        [
            "plot",
            str(pretrain_law_file),
            "--pilots",
            str(ROOT / "examples/pilots/unannealed.yaml"),
            "-o",
            str(tmp_path / "x.png"),
        ],
    )
    assert (
        mixed.exit_code == 2
        and "--pilots: CPT runs (kind: cpt), not pre-training pilots" in mixed.stderr
    )
    assert not (tmp_path / "x.png").exists()
