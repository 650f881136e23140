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


# --- a law fitted to pre-training pilots: the schedule search


def test_a_pretraining_law_gets_a_schedule_with_alternatives_and_baselines(
    pretrain_law_file,
) -> None:
    result = runner.invoke(app, ["recommend", "--law", str(pretrain_law_file)])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for text in (
        "recommended pre-training schedule: minimise the final loss",
        "wsd, cosine decay 23%",  # the bundled pilots' answer
        "steps 18416..24000",
        "final LR",
        "90 % interval",
        "inside the pilots' range",
        "the best of every other family and WSD decay shape",
        "wsd exponential",
        "constant",
        "compared at the same budget",
        "wsd linear 20%",
        "note: the final LR is at its lower bound (3e-05)",
    ):
        assert text in out, text
    assert "replay" not in out and result.stderr.strip() == ""


def test_a_pretraining_recommendation_as_json_is_the_model(pretrain_law_file) -> None:
    from cptopt.search import PretrainRecommendation

    args = ["recommend", "--law", str(pretrain_law_file), "--format", "json"]
    result = runner.invoke(app, [*args, "--families", "wsd,cosine", "--decay-shapes", "linear"])
    assert result.exit_code == 0, result.stderr
    parsed = PretrainRecommendation.model_validate_json(result.stdout)
    assert parsed.kind == "pretrain" and parsed.space.decay_shapes == ["linear"]
    assert parsed.recommended.setting.family == "wsd"
    assert parsed.recommended.setting.decay_shape == "linear"
    assert [a.label for a in parsed.alternatives] == ["best cosine"]
    assert all(a.final >= parsed.recommended.final for a in parsed.baselines)


def test_a_pretraining_search_from_a_config_file_with_flags_over_it(
    pretrain_law_file, tmp_path
) -> None:
    """The config's keys are the pre-training search's; a flag overrides its key."""
    config = tmp_path / "search.yaml"
    config.write_text(
        f"law: {pretrain_law_file}\n"
        "allow_extrapolation: true\n"
        "space: {families: [wsd], decay_shapes: [cosine], final_lr: [0, 1e-4], steps: 20000}\n"
    )
    base = runner.invoke(app, ["recommend", "-c", str(config), "--format", "json"])
    assert base.exit_code == 0, base.stderr
    found = json.loads(base.stdout)
    assert found["space"]["final_lr"] == [0.0, 1e-4] and found["space"]["steps"] == [20000] * 2
    setting = found["recommended"]["setting"]
    assert setting["steps"] == 20000 and setting["final_lr"] < 3e-5  # below the pilots'
    assert any("an LR drop deeper than any pilot's" in f for f in found["recommended"]["flags"])
    over = runner.invoke(
        app, ["recommend", "-c", str(config), "--final-lr", "5e-5,1e-4", "--format", "json"]
    )
    assert over.exit_code == 0, over.stderr
    assert json.loads(over.stdout)["recommended"]["setting"]["final_lr"] >= 5e-5


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--replay", "0.3"], "--replay: a CPT search setting; this law was fitted to"),
        (["--weights", "0.3,0.7"], "--weights: a CPT search setting"),
        (["--verbose"], "--verbose: a CPT search setting"),
        (["--final-lr", "1e-6"], "--final-lr from 1e-06 below the pilots' lowest LR"),
        (["--peak-lr", "3e-3"], "allow extrapolation (--allow-extrapolation) to search it"),
    ],
)
def test_a_pretraining_law_refuses_what_its_search_does_not_take(
    pretrain_law_file, args, needle
) -> None:
    result = runner.invoke(app, ["recommend", "--law", str(pretrain_law_file), *args])
    assert result.exit_code == 2
    assert needle in _one_line(result)


def test_a_cpt_law_refuses_the_pretraining_search_options(in_project) -> None:
    result = runner.invoke(app, ["recommend", "--decay-shapes", "cosine", *FAST])
    assert result.exit_code == 2
    assert _one_line(result) == (
        "error: --decay-shapes: not a setting of a CPT search (it is for laws fitted to "
        "pre-training pilots, kind: pretrain)"
    )


def test_example_pretraining_search_config_runs(pretrain_law_file, tmp_path, monkeypatch):
    """examples/configs/pretrain-search.yaml names the default law file."""
    shutil.copy(pretrain_law_file, tmp_path / "cptopt-law.json")
    monkeypatch.chdir(tmp_path)
    config = CONFIGS / "pretrain-search.yaml"
    result = runner.invoke(app, ["recommend", "--config", str(config), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["space"]["steps"] == [24000, 24000] and found["space"]["warmup_steps"] == 2160
    assert found["space"]["final_lr"] == [3e-5, 1.5e-4] and found["recommended"]["flags"] == []
