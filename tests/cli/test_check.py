"""``cptopt check`` on the command line: verdicts, output formats and exit codes.

The example configs' verdicts rest on limits with wide margins against the real runs of the
bundled data (see examples/cptopt.toml).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cptopt.cli import app
from cptopt.limits import CheckReport
from cptopt.report.check import key_line

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "examples" / "configs"
EXAMPLE_LIMITS = ROOT / "examples" / "cptopt.toml"

#: Every example config, its verdict under examples/cptopt.toml, and the exit code alone.
EXAMPLES = [
    ("hf-cosine-replay25.yaml", "pass", 0),
    ("wsd-lr1e-3-replay25.yaml", "pass", 0),
    ("const-noreplay.yaml", "fail", 1),  # general loss rises far above max_general_rise
    ("wsd-3x-lr.yaml", "fail", 1),  # peak LR outside the pilots' range
    ("wsd-replay25.yaml", "fail", 1),  # 2,000 steps, twice the longest pilot
]

runner = CliRunner()
WSD = "schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100}\n"


def _config(tmp_path: Path, name: str = "run.yaml", text: str | None = None) -> Path:
    path = tmp_path / name
    path.write_text(
        text
        or "schedule: {family: wsd, peak_lr: 2.0e-3, steps: 1000, warmup_steps: 20}\n"
        "replay_ratio: 0.25\ncheckpoint: unannealed\ntokens_per_step: 1024\n"
    )
    return path


@pytest.mark.parametrize(("name", "verdict", "code"), EXAMPLES)
def test_every_example_config_verdict_and_exit_code(law_file, name, verdict, code) -> None:
    path = CONFIGS / name
    result = runner.invoke(app, ["check", str(path), "--law", str(law_file), "--format", "json"])
    assert result.exit_code == code, result.stdout + result.stderr
    report = CheckReport.model_validate_json(result.stdout)
    (item,) = report.results
    assert item.verdict == verdict
    assert item.limits_file == str(EXAMPLE_LIMITS.resolve())  # found by the upward search
    assert result.stderr == ""


def test_example_configs_together_text_format(law_file) -> None:
    paths = [str(CONFIGS / name) for name, _, _ in EXAMPLES]
    result = runner.invoke(app, ["check", *paths, "--law", str(law_file)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    for name, verdict, _ in EXAMPLES:
        assert any(line.startswith(f"{verdict.upper():4}  ") and name in line for line in lines)
    assert lines[-1] == "5 configs checked: 2 passed, 3 failed, 0 errors"
    assert result.stderr == ""


def test_json_report_validates_and_carries_the_prediction(law_file) -> None:
    paths = [str(CONFIGS / name) for name, _, _ in EXAMPLES]
    result = runner.invoke(app, ["check", *paths, "--law", str(law_file), "--format", "json"])
    data = json.loads(result.stdout)
    report = CheckReport.model_validate(data)
    assert report.status == "fail"
    assert [Path(r.path).name for r in report.results] == [name for name, _, _ in EXAMPLES]
    for item in report.results:
        assert item.prediction is not None
        assert item.law == str(law_file)
        assert {c.name for c in item.checks} == {
            "max_general_rise",
            "max_final_domain_loss",
            "min_domain_gain",
        }


def test_github_format_annotates_the_failing_configs(law_file) -> None:
    paths = [str(CONFIGS / name) for name, _, _ in EXAMPLES]
    result = runner.invoke(app, ["check", *paths, "--law", str(law_file), "--format", "github"])
    assert result.exit_code == 1
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::")]
    annotated = {line.split("file=")[1].split(",")[0] for line in annotations}
    assert annotated == {str(CONFIGS / name) for name, verdict, _ in EXAMPLES if verdict == "fail"}
    assert all(line.startswith("::error file=") for line in annotations)
    assert all("::" in line[2:] and ",title=" in line for line in annotations)
    # the out-of-range LR points at the peak_lr line of the config
    lr_line = key_line(CONFIGS / "wsd-3x-lr.yaml", "schedule.peak_lr")
    assert any(
        "wsd-3x-lr.yaml" in line and f",line={lr_line}," in line and "peak LR" in line
        for line in annotations
    )


def test_exit_zero_and_output_file(law_file, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "check.json"
    failing = str(CONFIGS / "const-noreplay.yaml")
    args = ["check", failing, "--law", str(law_file), "--format", "json", "-o", str(out)]
    result = runner.invoke(app, [*args, "--exit-zero"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert CheckReport.model_validate_json(out.read_text()).status == "fail"
    bad = _config(tmp_path, "bad.yaml", "replay_ratio: 2\n")
    result = runner.invoke(app, ["check", str(bad), "--law", str(law_file), "--exit-zero"])
    assert result.exit_code == 2


def test_cli_flags_set_limits(law_file, tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    base = ["check", config, "--law", str(law_file), "--isolated"]
    assert runner.invoke(app, [*base, "--max-general-rise", "10"]).exit_code == 0
    assert runner.invoke(app, [*base, "--max-general-rise", "-10"]).exit_code == 1
    assert runner.invoke(app, [*base, "--min-domain-gain", "10"]).exit_code == 1
    assert runner.invoke(app, [*base, "--max-final-domain-loss", "0.01"]).exit_code == 1
    conservative = runner.invoke(app, [*base, "--conservative", "--format", "json"])
    assert CheckReport.model_validate_json(conservative.stdout).results[0].limits.conservative


def test_format_from_environment(law_file) -> None:
    config = str(CONFIGS / "wsd-lr1e-3-replay25.yaml")
    args = ["check", config, "--law", str(law_file)]
    as_json = runner.invoke(app, args, env={"CPTOPT_FORMAT": "json"})
    assert as_json.exit_code == 0
    report = CheckReport.model_validate_json(as_json.stdout)
    assert [r.verdict for r in report.results] == ["pass"]
    as_github = runner.invoke(app, args, env={"CPTOPT_FORMAT": "github"})
    assert as_github.stdout.startswith("cptopt check: 1 configs, 1 passed")
    flag_wins = runner.invoke(app, [*args, "--format", "text"], env={"CPTOPT_FORMAT": "json"})
    assert flag_wins.stdout.startswith("PASS  ")


def _schema_law(law_file: Path, tmp_path: Path, version: int) -> Path:
    data = json.loads(law_file.read_text())
    data["schema_version"] = version
    path = tmp_path / "old-law.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            "schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100}\nreplay_ratio: lots\n",
            "replay_ratio",
        ),
        (
            "schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100}\nreplay_ratio: 0\nepochs: 2\n",
            "epochs",
        ),
        ("schedule: {family: wsd, peak_lr: -2.0e-3, steps: 100}\nreplay_ratio: 0\n", "peak_lr"),
        ("learning_rate: -0.001\nmax_steps: 100\nreplay_ratio: 0\n", "learning_rate"),
        (
            "schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100}\nreplay_ratio: 1.2\n",
            "replay_ratio",
        ),
        ("schedule: {family: wsd, peak_lr: 2.0e-3, steps: 0}\nreplay_ratio: 0\n", "steps"),
        (
            "schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100}\nreplay_ratio: 0\n"
            "law: missing-law.json\n",
            "law",
        ),
    ],
)
def test_bad_config_is_one_stderr_line_and_exit_2(law_file, tmp_path, text, key) -> None:
    path = _config(tmp_path, "bad-config.yaml", text)
    args = ["check", str(path)]
    if "law:" not in text:
        args += ["--law", str(law_file)]
    for output_format in ("text", "json", "github"):
        result = runner.invoke(app, [*args, "--format", output_format])
        assert result.exit_code == 2
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: {path}: ")
        assert f"{key}:" in lines[0] or f"{key} " in lines[0], lines[0]
        assert "Traceback" not in result.stdout + result.stderr


def test_law_of_another_schema_version_named_by_the_config_key(law_file, tmp_path) -> None:
    old = _schema_law(law_file, tmp_path, 99)
    path = _config(
        tmp_path,
        "cfg.yaml",
        "schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100}\nreplay_ratio: 0\n"
        f"law: {old.name}\n",
    )
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {path}: law: {old}: law file schema version 99")


def test_missing_law_via_default_path_is_exit_2(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = _config(tmp_path)
    result = runner.invoke(app, ["check", str(path), "--isolated"])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert str(path) in line and "cptopt-law.json" in line


def test_bad_law_option_is_one_line(law_file, tmp_path) -> None:
    folder = tmp_path / "a-rather-long-folder-name-to-exceed-the-width"
    folder.mkdir()
    old = _schema_law(law_file, folder, 99)
    result = runner.invoke(
        app, ["check", str(CONFIGS / "wsd-lr1e-3-replay25.yaml"), "--law", str(old)]
    )
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert str(old) in line and "schema version 99" in line


def test_bad_law_option_is_exit_2(law_file, tmp_path) -> None:
    old = _schema_law(law_file, tmp_path, 99)
    result = runner.invoke(
        app, ["check", str(CONFIGS / "wsd-lr1e-3-replay25.yaml"), "--law", str(old)]
    )
    assert result.exit_code == 2
    assert "schema version 99" in " ".join(result.stderr.split())
    missing = runner.invoke(
        app, ["check", str(CONFIGS / "wsd-lr1e-3-replay25.yaml"), "--law", "nope.json"]
    )
    assert missing.exit_code == 2
    assert "law file not found: nope.json" in " ".join(missing.stderr.split())


def test_bad_limits_file_is_exit_2(law_file, tmp_path) -> None:
    (tmp_path / "cptopt.toml").write_text("[check]\nmax_rise = 1\n")
    result = runner.invoke(app, ["check", str(_config(tmp_path)), "--law", str(law_file)])
    assert result.exit_code == 2
    assert "max_rise: unknown key" in " ".join(result.stderr.split())
    assert result.stdout == ""
