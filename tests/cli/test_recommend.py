"""``cptopt recommend``: tables, JSON, the default law path, config files and every error path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cptopt.cli import app
from cptopt.search import CandidateRanking, Recommendation

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "examples" / "configs"
runner = CliRunner(env={"COLUMNS": "3000"})  # one-line errors: no wrapping at 80

FAST = ["--trials", "40"]


def _one_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture()
def in_project(tmp_path, law_file, monkeypatch) -> Path:
    """A working folder holding the law where ``cptopt fit`` writes it by default."""
    shutil.copy(law_file, tmp_path / "cptopt-law.json")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_default_law_path_and_table(in_project) -> None:
    result = runner.invoke(app, ["recommend", "--weights", "0.3,0.7", *FAST])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for text in (
        "recommended CPT settings",
        "peak LR",
        "replay ratio",
        "general back at start",
        "top alternatives",
        "pilot-like",
        "thumb r=5%",
        "thumb r=10%",
        "dense cross-check",
    ):
        assert text in out
    assert result.stderr.strip() == ""


def test_json_matches_the_model(in_project) -> None:
    result = runner.invoke(app, ["recommend", "--weights", "0.5,0.5", "--format", "json", *FAST])
    assert result.exit_code == 0, result.stderr
    payload = Recommendation.model_validate(json.loads(result.stdout))
    assert payload.weights == (0.5, 0.5)
    assert payload.search.trials_complete == 40
    assert len(payload.baselines) == 3
    assert payload.recommended.setting is not None


def test_missing_default_law_names_it(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["recommend", "--weights", "0.3,0.7"])
    assert result.exit_code == 2
    line = _one_line(result)
    assert "cptopt-law.json" in line and "cptopt fit" in line


@pytest.mark.parametrize(
    "weights", ["0.3", "a,b", "-0.3,1.3", "0,0", "0.2,0.3,0.5", "nan,1", "0.3;0.7"]
)
def test_bad_weights_exit_2_one_line(in_project, weights: str) -> None:
    result = runner.invoke(app, ["recommend", "--weights", weights])
    assert result.exit_code == 2
    assert "--weights" in _one_line(result)


def test_weights_not_summing_to_one_are_normalised_with_a_notice(in_project) -> None:
    result = runner.invoke(app, ["recommend", "--weights", "3,7", "--format", "json", *FAST])
    assert result.exit_code == 0, result.stderr
    assert "normalised to 0.3,0.7" in result.stderr
    assert Recommendation.model_validate_json(result.stdout).weights == pytest.approx((0.3, 0.7))


def test_infeasible_exits_1(in_project) -> None:
    result = runner.invoke(
        app, ["recommend", "--weights", "0.5,0.5", "--max-general-rise", "-5", *FAST]
    )
    assert result.exit_code == 1
    assert "no setting" in _one_line(result)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sampler", "annealing"], "sampler"),
        (["--peak-lr", "abc"], "--peak-lr"),
        (["--peak-lr", "2e-3,1e-3"], "--peak-lr: low 0.002 > high 0.001"),
        (["--replay", "0.1,1.5"], "replay"),
        (["--steps", "1,2,3"], "--steps"),
        (["--families", "cosine,triangle"], "families"),
        (["--checkpoints", "nowhere"], "checkpoints"),
        (["--max-epochs", "1"], "--domain-tokens"),
        (["--max-tokens", "5"], "max-tokens"),
        (["--trials", "0"], "trials"),
        (["--storage", "redis://localhost"], "storage"),
        (["--storage", "sqlite:////no/such/folder/s.db"], "does not exist"),
        (["--storage", "journal:/no/such/folder/s.log"], "does not exist"),
        (["--config", "missing.yaml"], "not found"),
        (["--candidates", "missing.csv"], "not found"),
        (["--level", "1.5"], "level"),
        (["--steps", "3000,4000", "--max-steps", "2000"], "step budget"),
        (["--candidates", str(CONFIGS / "search.yaml")], "unknown key"),
    ],
)
def test_bad_options_exit_2_one_line(in_project, args: list[str], needle: str) -> None:
    result = runner.invoke(app, ["recommend", "--weights", "0.5,0.5", *args])
    assert result.exit_code == 2, result.stdout
    assert needle in _one_line(result)


def test_config_file_and_flag_override(in_project, tmp_path) -> None:
    config = tmp_path / "search.yaml"
    config.write_text(
        "weights: [0.3, 0.7]\n"
        "space: {families: [wsd], decay_fraction: [0.1, 0.3]}\n"
        "search: {trials: 30, seed: 3}\n"
    )
    result = runner.invoke(app, ["recommend", "--config", str(config), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    payload = Recommendation.model_validate_json(result.stdout)
    assert payload.weights == (0.3, 0.7)
    assert payload.space.families == ["wsd"]
    assert payload.search.trials_complete == 30
    override = runner.invoke(
        app,
        ["recommend", "--config", str(config), "--families", "cosine", "--format", "json"],
    )
    assert override.exit_code == 0, override.stderr
    assert Recommendation.model_validate_json(override.stdout).space.families == ["cosine"]
    config.write_text("weights: [0.3, 0.7]\nsearch: {trails: 30}\n")
    bad = runner.invoke(app, ["recommend", "--config", str(config)])
    assert bad.exit_code == 2
    assert "unknown key" in _one_line(bad)


def test_example_search_config_runs(in_project) -> None:
    result = runner.invoke(
        app, ["recommend", "--config", str(CONFIGS / "search.yaml"), *FAST, "--format", "json"]
    )
    assert result.exit_code == 0, result.stderr
    payload = Recommendation.model_validate_json(result.stdout)
    rec = payload.recommended
    assert rec.setting.steps <= 2000
    assert rec.domain_epochs is not None and rec.domain_epochs <= 1.0 + 1e-9
    assert rec.general_rise <= 0.05 + 1e-9


@pytest.mark.parametrize("name", ["candidates.csv", "candidates.yaml"])
def test_candidates_ranking(in_project, name: str) -> None:
    result = runner.invoke(
        app, ["recommend", "--weights", "0.3,0.7", "--candidates", str(CONFIGS / name)]
    )
    assert result.exit_code == 0, result.stderr
    assert "P(best)" in result.stdout
    as_json = runner.invoke(
        app,
        [
            "recommend",
            "--weights",
            "0.3,0.7",
            "--candidates",
            str(CONFIGS / name),
            "--format",
            "json",
        ],
    )
    ranking = CandidateRanking.model_validate_json(as_json.stdout)
    assert sum(c.probability_best for c in ranking.candidates) == pytest.approx(1.0)


@pytest.mark.slow
def test_pareto_table(in_project) -> None:
    result = runner.invoke(app, ["recommend", "--weights", "0.5,0.5", "--pareto", *FAST])
    assert result.exit_code == 0, result.stderr
    assert "Pareto front" in result.stdout


@pytest.mark.slow
def test_optuna_log_lines_only_with_verbose(law_file, tmp_path) -> None:
    # a fresh process each: Optuna's log handler binds the stderr it first sees
    base = [sys.executable, "-c", "from cptopt.cli import main; main()", "recommend"]
    args = [*base, "--law", str(law_file), "--weights", "0.5,0.5", *FAST]
    env = {**os.environ, "COLUMNS": "3000"}
    env.pop("OPTUNA_STORAGE", None)
    quiet = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.strip() == ""
    loud = subprocess.run([*args, "-v"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert "A new study created" in loud.stderr


def test_optuna_storage_env_is_honoured(in_project, monkeypatch, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("OPTUNA_STORAGE", url)
    result = runner.invoke(app, ["recommend", "--weights", "0.5,0.5", "--format", "json", *FAST])
    assert result.exit_code == 0, result.stderr
    payload = Recommendation.model_validate_json(result.stdout)
    assert payload.search.storage == url
    assert (tmp_path / "env.db").is_file()


def test_a_study_created_with_other_settings_is_refused(in_project, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'named.db'}"
    common = ["--storage", url, "--study-name", "mine", *FAST]
    first = runner.invoke(app, ["recommend", "--weights", "0.5,0.5", *common])
    assert first.exit_code == 0, first.stderr
    again = runner.invoke(app, ["recommend", "--weights", "0.5,0.5", "--format", "json", *common])
    assert again.exit_code == 0, again.stderr
    assert Recommendation.model_validate_json(again.stdout).search.resumed is True
    other = runner.invoke(app, ["recommend", "--weights", "0.3,0.7", *common])
    assert other.exit_code == 2
    line = _one_line(other)
    assert "other settings" in line and "weights" in line
