"""``cptopt check``: verdict logic, limits files, output formats and exit codes.

Limits in the logic tests are set relative to the prediction itself, so they hold whatever
the fitted numbers are; the example configs' verdicts rest on limits with wide margins
against the real runs of the bundled data (see examples/cptopt.toml).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cptopt.cli import app
from cptopt.exceptions import InputError
from cptopt.limits import (
    CheckReport,
    Limits,
    check,
    find_limits_file,
    format_github,
    judge,
    key_line,
    load_limits_file,
)
from cptopt.plan import load_config
from cptopt.prediction import predict

ROOT = Path(__file__).resolve().parent.parent
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


@pytest.fixture(scope="module")
def prediction(fitted_law):
    config = load_config(CONFIGS / "wsd-lr1e-3-replay25.yaml")
    return predict(fitted_law, config.schedule, config.replay_ratio, checkpoint=config.checkpoint)


# ------------------------------------------------------------------------------ verdicts


def test_limits_just_above_the_prediction_pass_and_just_below_fail(prediction) -> None:
    rise = prediction.general.final - prediction.general.initial
    final = prediction.domain.final
    gain = prediction.domain.initial - prediction.domain.final
    loose = Limits(
        max_general_rise=rise + 0.01,
        max_final_domain_loss=final + 0.01,
        min_domain_gain=gain - 0.01,
    )
    tight = Limits(
        max_general_rise=rise - 0.01,
        max_final_domain_loss=final - 0.01,
        min_domain_gain=gain + 0.01,
    )
    checks, _ = judge(prediction, loose)
    assert [c.name for c in checks] == [
        "max_general_rise",
        "max_final_domain_loss",
        "min_domain_gain",
    ]
    assert all(c.passed for c in checks)
    checks, _ = judge(prediction, tight)
    assert not any(c.passed for c in checks)
    assert checks[0].value == pytest.approx(rise)
    assert checks[1].value == pytest.approx(final)
    assert checks[2].value == pytest.approx(gain)


def test_no_limits_means_no_checks(prediction) -> None:
    checks, out_of_range = judge(prediction, Limits())
    assert checks == []
    assert out_of_range == [f"outside the pilots: {flag}" for flag in prediction.flags]


def test_conservative_judges_the_upper_end_of_the_interval(prediction) -> None:
    domain = prediction.domain
    between = (domain.final + domain.final_upper) / 2
    assert judge(prediction, Limits(max_final_domain_loss=between))[0][0].passed
    conservative = Limits(max_final_domain_loss=between, conservative=True)
    (item,), _ = judge(prediction, conservative)
    assert not item.passed
    assert item.value == pytest.approx(domain.final_upper)


def test_out_of_range_fails_unless_extrapolation_is_allowed(law_file) -> None:
    config = CONFIGS / "wsd-replay25.yaml"  # 2,000 steps: beyond every 1,000-step pilot
    strict = check(config, law_file, isolated=True)
    assert strict.results[0].verdict == "fail"
    assert any("steps beyond the longest pilot" in f for f in strict.results[0].findings)
    allowed = check(config, law_file, isolated=True, allow_extrapolation=True)
    result = allowed.results[0]
    assert result.verdict == "pass"
    assert result.findings == []
    assert any("steps beyond the longest pilot" in w for w in result.warnings)
    assert allowed.exit_code() == 0


def test_report_exit_codes(law_file, tmp_path: Path) -> None:
    good = _config(tmp_path)
    bad = _config(tmp_path, "bad.yaml", "replay_ratio: 2\n")
    assert check(good, law_file, isolated=True).exit_code() == 0
    failing = check(good, law_file, isolated=True, max_general_rise=-10.0)
    assert (failing.status, failing.exit_code(), failing.exit_code(exit_zero=True)) == (
        "fail",
        1,
        0,
    )
    mixed = check([good, bad], law_file, isolated=True, max_general_rise=-10.0)
    assert mixed.status == "error"
    assert mixed.exit_code() == mixed.exit_code(exit_zero=True) == 2
    assert [r.verdict for r in mixed.results] == ["fail", "error"]
    assert mixed.summary.model_dump() == {"configs": 2, "passed": 0, "failed": 1, "errors": 1}


def test_check_accepts_a_law_object(fitted_law) -> None:
    report = check(CONFIGS / "wsd-lr1e-3-replay25.yaml", fitted_law, isolated=True)
    assert report.results[0].prediction is not None
    assert report.results[0].law is None


def test_unknown_limit_argument_is_an_input_error(law_file) -> None:
    with pytest.raises(InputError, match="unknown limit 'max_rise'"):
        check(CONFIGS / "wsd-lr1e-3-replay25.yaml", law_file, max_rise=0.1)


# -------------------------------------------------------------------------- limits files


def test_limits_file_discovery(tmp_path: Path) -> None:
    nested = tmp_path / "repo" / "configs" / "team"
    nested.mkdir(parents=True)
    assert find_limits_file(nested) is None
    (tmp_path / "repo" / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert find_limits_file(nested) is None  # a pyproject.toml without the table is skipped
    (tmp_path / "repo" / "pyproject.toml").write_text(
        "[project]\nname = 'x'\n\n[tool.cptopt.check]\nmax_general_rise = 0.1\n"
    )
    assert find_limits_file(nested) == (tmp_path / "repo" / "pyproject.toml").resolve()
    (tmp_path / "repo" / "configs" / "cptopt.toml").write_text("[check]\nmin_domain_gain = 0.2\n")
    assert find_limits_file(nested) == (tmp_path / "repo" / "configs" / "cptopt.toml").resolve()


def test_limits_file_values_and_relative_law(tmp_path: Path) -> None:
    path = tmp_path / "cptopt.toml"
    path.write_text(
        "[check]\nmax_general_rise = 0.05\nallow_extrapolation = true\nlaw = 'laws/law.json'\n"
    )
    limits = load_limits_file(path)
    assert limits.max_general_rise == 0.05
    assert limits.allow_extrapolation is True
    assert Path(limits.law) == tmp_path / "laws" / "law.json"
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.cptopt.check]\nmax_final_domain_loss = 1.5\n")
    assert load_limits_file(pyproject).max_final_domain_loss == 1.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[check]\nmax_general_rice = 0.05\n", "check.max_general_rice: unknown key"),
        ("[check]\nmax_general_rise = 'small'\n", "check.max_general_rise:"),
        ("[check]\nmax_final_domain_loss = -1\n", "check.max_final_domain_loss:"),
        ("[check\nmax_general_rise = 0.05\n", "invalid TOML"),
        ("check = 3\n", "check: must be a table"),
    ],
)
def test_bad_limits_files_are_one_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "cptopt.toml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_limits_file(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_flags_override_the_file_and_isolated_ignores_it(law_file, tmp_path: Path) -> None:
    (tmp_path / "cptopt.toml").write_text("[check]\nmax_general_rise = -10.0\n")
    config = _config(tmp_path)
    from_file = check(config, law_file)
    assert from_file.results[0].verdict == "fail"
    assert from_file.results[0].limits_file == str((tmp_path / "cptopt.toml").resolve())
    overridden = check(config, law_file, max_general_rise=10.0)
    assert overridden.results[0].verdict == "pass"
    assert check(config, law_file, isolated=True).results[0].limits.max_general_rise is None


def test_law_from_the_limits_file(law_file, tmp_path: Path) -> None:
    (tmp_path / "cptopt.toml").write_text(f"[check]\nlaw = '{law_file}'\n")
    report = check(_config(tmp_path))
    assert report.results[0].verdict == "pass"
    assert report.results[0].law == str(law_file)


# ------------------------------------------------------------------- CLI: example configs


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


def test_github_escaping() -> None:
    report = CheckReport.model_validate(
        {
            "status": "error",
            "summary": {"configs": 1, "passed": 0, "failed": 0, "errors": 1},
            "results": [
                {"path": "a,b.yaml", "verdict": "error", "error": "a,b.yaml: x: 100% bad\nnext"}
            ],
        }
    )
    line = format_github(report).splitlines()[0]
    assert line.startswith("::error file=a%2Cb.yaml,title=cptopt check%3A invalid input::")
    assert line.endswith("100%25 bad%0Anext")


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
    result = runner.invoke(
        app, ["check", config, "--law", str(law_file)], env={"CPTOPT_FORMAT": "json"}
    )
    CheckReport.model_validate_json(result.stdout)


# --------------------------------------------------------------------- CLI: bad input -> 2


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
