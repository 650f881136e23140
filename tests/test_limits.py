"""The library behind ``cptopt check``: verdict logic and limits files.

Limits in the logic tests are set relative to the prediction itself, so they hold whatever
the fitted numbers are.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cptopt.exceptions import InputError
from cptopt.limits import Limits, check, find_limits_file, judge, load_limits_file
from cptopt.plan import load_config
from cptopt.prediction import predict

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "examples" / "configs"

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
    assert mixed.summary.model_dump() == {
        "configs": 2,
        "passed": 0,
        "failed": 1,
        "errors": 1,
        "skipped": 0,
    }


def test_check_accepts_a_law_object(fitted_law) -> None:
    report = check(CONFIGS / "wsd-lr1e-3-replay25.yaml", fitted_law, isolated=True)
    assert report.results[0].prediction is not None
    assert report.results[0].law is None


def test_unknown_limit_argument_is_an_input_error(law_file) -> None:
    with pytest.raises(InputError, match="unknown limit 'max_rise'"):
        check(CONFIGS / "wsd-lr1e-3-replay25.yaml", law_file, max_rise=0.1)


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
