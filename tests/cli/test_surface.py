"""Issue #23, case by case: what a new user trips over, and the line cptopt prints now.

Each test runs the command the issue describes and checks the whole message (stderr lines
are compared as printed; the paths in them are the test's own files).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cptopt import __version__
from cptopt.cli import app
from cptopt.limits import CheckReport
from cptopt.pilots import load_manifest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "examples" / "configs"
REAL = ROOT / "tests" / "fixtures" / "real-logs"
PT_LOG = ROOT / "examples" / "data" / "pt-mpl25" / "cosine_24000.csv"
runner = CliRunner(env={"COLUMNS": "3000"})  # one-line errors, however long


def invoke(*args: object):
    return runner.invoke(app, [str(arg) for arg in args])


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


# ------------------------------------------------------------------ messages that half-help


def test_a_percentage_given_as_a_replay_ratio_says_it_is_a_fraction(tmp_path, law_file):
    config = tmp_path / "run.yaml"
    config.write_text(
        "schedule: {family: wsd, peak_lr: 2.0e-3, steps: 1000}\nreplay_ratio: 25\n"
        "checkpoint: unannealed\n"
    )
    result = invoke("predict", config, "--law", law_file)
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {config}: replay_ratio: Input should be less than or equal to 1 (got 25): "
        "a fraction, e.g. 0.25 for 25 %"
    ]


def test_every_problem_is_listed_once(tmp_path, law_file):
    """No '[+N more]': each problem is named; the same problem at several keys once."""
    config = tmp_path / "run.yaml"
    config.write_text(
        "schedule: {family: wsd, peak_lr: 2.0e-3, steps: 1000, foo: 1, bar: 2}\n"
        "replay_ratio: 25\ncheckpoint: [unannealed]\n"
    )
    (line,) = error_lines(invoke("predict", config, "--law", law_file))
    assert "more]" not in line
    assert line.startswith(f"error: {config}: schedule.foo, schedule.bar: unknown keys (allowed: ")
    assert "; replay_ratio: Input should be less than or equal to 1 (got 25): a fraction" in line
    assert line.endswith("; checkpoint: Input should be a valid string (got ['unannealed'])")


def test_a_manifest_with_percentages_names_every_run(tmp_path):
    manifest = tmp_path / "pilots.yaml"
    manifest.write_text(
        "version: 1\npretrain: unknown\nruns:\n"
        + "".join(f"  - {{log: run{r}.csv, replay_ratio: {r}}}\n" for r in (25, 50, 10))
    )
    result = invoke("fit", manifest, "-o", tmp_path / "law.json")
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {manifest}: runs.0.replay_ratio, runs.1.replay_ratio, runs.2.replay_ratio: "
        "Input should be less than or equal to 1 (got 25, 50, 10): a fraction, e.g. 0.25 for 25 %"
    ]


def test_a_lightning_folder_one_level_up_points_to_the_log_below():
    folder = REAL / "pl" / "L1"
    result = invoke("inspect", folder)
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {folder}: no log in this folder; below it: "
        f"{folder / 'version_0' / 'metrics.csv'}: give one of them as the log"
    ]
    several = invoke("inspect", REAL / "pl")
    assert f"below it: {REAL / 'pl/L1/version_0/metrics.csv'}, " in error_lines(several)[0]


def test_an_unknown_storage_url_is_quoted_whole_without_equals(law_file):
    url = "redis://user:secret@cache.example.com:6379/0"
    result = invoke("recommend", "--law", law_file, "--storage", url)
    assert result.exit_code == 2
    assert error_lines(result) == [
        "error: --storage 'redis://user:***@cache.example.com:6379/0': not a storage URL; use "
        "sqlite:///FILE, postgresql://USER:PW@HOST/DB or journal:FILE"
    ]


def test_a_storage_that_cannot_be_opened_gives_the_drivers_whole_reason(law_file):
    """SQLAlchemy ends its messages with a link to its documentation, which a cut at 200
    characters used to split mid-URL: the link is dropped, the driver's reason kept whole."""
    pytest.importorskip("psycopg2")
    result = invoke("recommend", "--law", law_file, "--storage", "postgresql://u:pw@127.0.0.1:1/db")
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert line.startswith("error: --storage postgresql://u:***@127.0.0.1:1/db: cannot open (")
    assert "Background on this error" not in line and "sqlalche.me" not in line
    assert "Connection refused" in line and line.endswith(")")


# ------------------------------------------------------------------ inspect


def test_inspect_reads_a_pretraining_log_as_one_loss():
    """The MPL paper's run logs one loss: no demand for a general and a domain loss, no
    eval_on_start advice, and a footer about the LR it has."""
    result = invoke("inspect", PT_LOG)
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "loss loss 2160..23920 171" in text  # the series, its role, steps, points
    assert "LR at 171 of 23920 steps (largest gap 2160): interpolated" in text
    assert "no LR series" not in text and "eval_on_start" not in text
    assert (
        "note: one loss, 'loss': a pre-training log (in a 'kind: pretrain' manifest it is the "
        "run's loss: its default column); CPT pilots need a general and a domain loss" in text
    )
    (summary,) = json.loads(invoke("inspect", PT_LOG, "--format", "json").stdout)["logs"]
    assert (summary["kind"], summary["mapping"]["general"], summary["error"]) == (
        "pretrain",
        "loss",
        None,
    )


def test_inspect_names_the_column_of_a_pretraining_logs_other_loss(tmp_path):
    log = tmp_path / "pt.csv"
    log.write_text("step,lr,train_loss,val_loss\n0,0,9,9.5\n10,1e-3,5,5.5\n20,1e-3,4,4.4\n")
    result = invoke("inspect", log)
    assert result.exit_code == 0, result.stderr
    assert "map it with columns: {general: val_loss}" in " ".join(result.stdout.split())


def test_inspect_keeps_asking_for_both_losses_of_a_cpt_log():
    result = invoke("inspect", REAL / "hf-B")
    text = " ".join(result.stdout.split())
    assert "eval_on_start=True" in text and "pre-training log" not in text


# ------------------------------------------------------------------ schedules


def _real_manifest(tmp_path: Path, schedule: str) -> Path:
    """The real-library pilots with Lightning's run L5 described by ``schedule``."""
    text = (REAL / "pilots.yaml").read_text()
    hf = "{learning_rate: 3.0e-3, lr_scheduler_type: constant_with_warmup, warmup_steps: 10}"
    assert hf in text
    manifest = tmp_path / "pilots.yaml"
    manifest.write_text(text.replace(hf, schedule).replace("log: ", f"log: {REAL}/"))
    return manifest


def test_cptopts_keys_for_a_lightning_run_say_the_warmup_is_one_update_off(tmp_path):
    """L5 ran constant_with_warmup (warmup 10, 200 updates) under Lightning: update s used
    the scheduler's step s - 1, so its S1 is 0 + 0.1 + ... + 0.9 + 190 = 194.5 peaks, while
    cptopt's keys (update s at step s) give 0.1 + ... + 1.0 + 190 = 195.5 peaks."""
    manifest = _real_manifest(
        tmp_path, "{family: constant, peak_lr: 3.0e-3, steps: 200, warmup_steps: 10}"
    )
    (run,) = [run for run in load_manifest(manifest).runs if run.name == "L5"]
    ours = sum(s / 10 for s in range(1, 11)) + 190  # cptopt's keys: update s at step s
    theirs = sum(s / 10 for s in range(0, 10)) + 190  # PyTorch: update s at step s - 1
    change = ours / theirs - 1
    assert [note for note in run.notes if "cptopt's keys" in note] == [
        "L5: schedule in cptopt's keys, but the lightning run steps a PyTorch scheduler "
        "(update s runs at its step s - 1), so the warmup runs one update later than written "
        f"(S1 {change:+.2%} against the run); give the trainer's keys (learning_rate, "
        "max_steps, lr_scheduler_type, warmup_steps) for its exact schedule"
    ]


def test_the_trainers_keys_for_the_same_run_need_no_note(tmp_path):
    manifest = _real_manifest(
        tmp_path,
        "{learning_rate: 3.0e-3, lr_scheduler_type: constant_with_warmup, warmup_steps: 10}",
    )
    (run,) = [run for run in load_manifest(manifest).runs if run.name == "L5"]
    assert not [note for note in run.notes if "cptopt's keys" in note]


# ------------------------------------------------------------------ check and non-configs

#: The example folder's files that are not training configs, and what check says of each.
NOT_CONFIGS = {
    "candidates.yaml": "a candidates list, not a training config: rank them with "
    "cptopt recommend --candidates",
    "pretrain-wsd.yaml": "replay_ratio: missing: a schedule without it is a pre-training "
    "config, not a CPT training config; predict it with cptopt predict and a law fitted to "
    "pre-training pilots",
    "search.yaml": "a search config, not a training config: give it to cptopt recommend --config",
}
NOT_CONFIGS["pretrain-search.yaml"] = NOT_CONFIGS["search.yaml"]


@pytest.mark.parametrize("name", sorted(NOT_CONFIGS))
def test_check_says_what_a_file_that_is_not_a_training_config_is(name, law_file):
    result = invoke("check", CONFIGS / name, "--law", law_file)
    assert result.exit_code == 2
    assert error_lines(result) == [f"error: {CONFIGS / name}: {NOT_CONFIGS[name]}"]


@pytest.mark.parametrize(
    ("content", "name", "says"),
    [
        (
            "version: 1\npretrain: unknown\nruns: []\n",
            "pilots.yaml",
            "a pilot manifest, not a training config: fit it with cptopt fit",
        ),
        (
            "name,family,peak_lr,steps,replay_ratio\n",
            "c.csv",
            "a CSV file, not a training "
            "config: a candidates CSV is ranked with cptopt recommend --candidates",
        ),
        (
            "[check]\nmax_general_rise = 0.05\n",
            "cptopt.toml",
            "a TOML file, not a training config: a limits file is read by cptopt check --limits",
        ),
        (
            '{"schema_version": 5, "cptopt_version": "0.1.0"}',
            "law.json",
            "a law file, not a training config: give it as --law",
        ),
    ],
)
def test_check_knows_the_other_files_cptopt_reads(tmp_path, law_file, content, name, says):
    path = tmp_path / name
    path.write_text(content)
    result = invoke("check", path, "--law", law_file, "--isolated")
    assert error_lines(result) == [f"error: {path}: {says}"]


def test_check_over_a_glob_skips_what_is_not_a_training_config(law_file):
    """examples/configs/*.yaml holds four files that are not training configs: they are
    skipped with a note each, and the exit code is the real configs' (3 fail: 1)."""
    paths = sorted(CONFIGS.glob("*.yaml"))
    result = invoke("check", *paths, "--law", law_file)
    assert result.exit_code == 1
    assert error_lines(result) == [
        f"note: skipped {CONFIGS / name}: {NOT_CONFIGS[name]}" for name in sorted(NOT_CONFIGS)
    ]
    assert result.stdout.splitlines()[-1] == (
        "5 configs checked: 2 passed, 3 failed, 0 errors; 4 files skipped (not training configs)"
    )
    report = CheckReport.model_validate_json(
        invoke("check", *paths, "--law", law_file, "--format", "json").stdout
    )
    skipped = {Path(r.path).name: r.note for r in report.results if r.verdict == "skipped"}
    assert set(skipped) == set(NOT_CONFIGS) and report.summary.skipped == 4
    assert report.summary.configs == 5 and report.status == "fail"
    github = invoke("check", *paths, "--law", law_file, "--format", "github").stdout
    assert (
        f"::notice file={CONFIGS / 'search.yaml'},title=cptopt check%3A skipped::"
        f"{CONFIGS / 'search.yaml'}: {NOT_CONFIGS['search.yaml']}" in github.splitlines()
    )


def test_check_of_passing_configs_and_a_search_config_passes(law_file):
    result = invoke(
        "check", CONFIGS / "hf-cosine-replay25.yaml", CONFIGS / "search.yaml", "--law", law_file
    )
    assert result.exit_code == 0


def test_check_of_nothing_but_other_files_is_an_error(law_file):
    result = invoke(
        "check", CONFIGS / "search.yaml", CONFIGS / "candidates.yaml", "--law", law_file
    )
    assert result.exit_code == 2
    assert error_lines(result)[-1] == (
        f"error: none of the 2 files is a CPT training config ({CONFIGS / 'search.yaml'}: a "
        f"search config; {CONFIGS / 'candidates.yaml'}: a candidates list)"
    )


# ------------------------------------------------------------------ version


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag):
    result = invoke(flag)
    assert result.exit_code == 0
    assert result.stdout.startswith(f"cptopt {__version__}")


def test_every_json_output_and_law_file_carries_the_version(tmp_path, law_file, fitted_law):
    config = CONFIGS / "wsd-replay25.yaml"
    outputs = {
        "predict": invoke("predict", config, "--law", law_file, "--format", "json"),
        "inspect": invoke("inspect", PT_LOG, "--format", "json"),
        "check": invoke("check", config, "--law", law_file, "--format", "json"),
        "recommend": invoke("recommend", "--law", law_file, "--trials", "64", "--format", "json"),
        "candidates": invoke(
            "recommend",
            "--law",
            law_file,
            "--candidates",
            CONFIGS / "candidates.csv",
            "--format",
            "json",
        ),
        "next-pilot": invoke("next-pilot", "--law", law_file, "--format", "json"),
    }
    for command, result in outputs.items():
        assert result.exit_code in (0, 1), (command, result.stderr)
        assert json.loads(result.stdout)["cptopt_version"] == __version__, command
    assert json.loads(law_file.read_text())["cptopt_version"] == __version__
    assert fitted_law.cptopt_version == __version__


# ------------------------------------------------------------------ help and width


def test_fit_help_is_short_and_readable_at_80_columns():
    """It was 174 lines with an 18-character description column."""
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["fit", "--help"])
    lines = result.stdout.splitlines()
    assert len(lines) < 100
    start = lines.index("Options:") + 1
    described = [line for line in lines[start:] if line.startswith(" " * 20) and line.strip()]
    column = min(len(line) - len(line.lstrip()) for line in described)
    assert 80 - column >= 40  # the description column is at least 40 characters wide


@pytest.mark.slow
def test_piped_output_is_80_columns_unless_columns_says_otherwise(law_file):
    """Piped, recommend and next-pilot printed 118-140-character lines."""
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    command = [sys.executable, "-c", "from cptopt.cli import main; main()"]
    args = ["recommend", "--law", str(law_file), "--candidates", str(CONFIGS / "candidates.csv")]
    piped = subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert max(map(len, piped.stdout.splitlines())) <= 80
    wide = subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "150"},
        timeout=300,
    )
    assert max(map(len, wide.stdout.splitlines())) > 80  # the wide layout, when asked for
