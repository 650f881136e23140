"""``cptopt next-pilot``: the table, JSON, the candidates file and every bad-input path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cptopt.cli import app
from cptopt.design import NextPilot

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "examples" / "configs"
runner = CliRunner(env={"COLUMNS": "3000"})  # one-line errors: no wrapping at 80


def _one_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_table_names_the_best_candidate_and_the_verdict(law_file, unannealed_manifest) -> None:
    args = ["next-pilot", "--law", str(law_file), "--pilots", str(unannealed_manifest)]
    table = runner.invoke(app, [*args, "--weights", "0.3,0.7", "--top-k", "3"])
    assert table.exit_code == 0, table.stderr
    data = runner.invoke(app, [*args, "--weights", "0.3,0.7", "--top-k", "3", "--format", "json"])
    result = NextPilot.model_validate_json(data.stdout)
    out = table.stdout
    assert "candidate pilots, best first (3 of" in out
    assert ("settled:" in out) and (("not settled" in out) != result.settled)
    assert result.reason in " ".join(out.split())
    assert out.index(result.candidate_pilots[0].name) < out.index(result.candidate_pilots[1].name)
    now = f"{result.expected_regret / result.objective:.2%}"
    after = f"{result.candidate_pilots[0].expected_regret_after / result.objective:.2%}"
    assert f"{now} → {after}" in out
    assert "method:" in out


def test_json_is_the_model_with_a_consistent_ranking(law_file, unannealed_manifest) -> None:
    result = runner.invoke(
        app,
        ["next-pilot", "--law", str(law_file), "--pilots", str(unannealed_manifest),
         "--weights", "0.5,0.5", "--format", "json", "--top-k", "4"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    parsed = NextPilot.model_validate(payload)
    assert parsed.weights == (0.5, 0.5)
    assert len(parsed.candidate_pilots) == 4 and parsed.n_candidate_pilots >= 4
    assert [c.rank for c in parsed.candidate_pilots] == [1, 2, 3, 4]
    values = [c.value for c in parsed.candidate_pilots]
    assert values == sorted(values, reverse=True)
    assert all(c.expected_regret_after <= parsed.expected_regret for c in parsed.candidate_pilots)


def test_candidates_and_options_files(law_file) -> None:
    result = runner.invoke(
        app,
        ["next-pilot", "--law", str(law_file), "--candidates", str(CONFIGS / "candidates.csv"),
         "--options", str(CONFIGS / "candidates.yaml"), "--format", "json", "--top-k", "8"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    parsed = NextPilot.model_validate_json(result.stdout)
    names = {line.split(",")[0] for line in (CONFIGS / "candidates.csv").read_text().splitlines()}
    assert {c.name for c in parsed.candidate_pilots} <= names and parsed.n_candidate_pilots == 8
    assert any("not recognised" in note for note in parsed.notes)  # no --pilots


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--weights", "0.3"], "--weights needs exactly two numbers"),
        (["--weights", "a,b"], "--weights == 'a,b'"),
        (["--top-k", "0"], "--top-k == 0"),
        (["--pilot-steps", "3"], "--pilot-steps == 3"),
        (["--tolerance", "-1"], "--tolerance == -1.0"),
        (["--candidates", "missing.csv"], "candidates file not found"),
        (["--candidates", str(CONFIGS / "candidates.csv"), "--pilot-steps", "500"],
         "--pilot-steps sets the grid's length"),
        (["--replay", "0.2,0.1"], "--replay"),
        (["--pilots", str(ROOT / "examples" / "pilots" / "both_checkpoints.yaml")],
         "not the ones the law was fitted to"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(law_file, extra, needle) -> None:
    result = runner.invoke(app, ["next-pilot", "--law", str(law_file), *extra])
    assert result.exit_code == 2, result.stdout
    line = _one_line(result)
    assert line.startswith("error: ") and needle in line


def test_missing_law_file(tmp_path) -> None:
    result = runner.invoke(app, ["next-pilot", "--law", str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "law file not found" in _one_line(result)


def test_recommend_points_to_the_next_pilot_when_not_settled(law_file, fitted_law) -> None:
    from cptopt.design import next_pilot_hint
    from cptopt.search import load_candidates

    options = load_candidates(CONFIGS / "candidates.csv")
    expected = next_pilot_hint(fitted_law, (0.3, 0.7), options=options)
    assert expected is not None
    args = ["recommend", "--law", str(law_file), "--weights", "0.3,0.7"]
    ranked = runner.invoke(app, [*args, "--candidates", str(CONFIGS / "candidates.csv")])
    assert ranked.exit_code == 0, ranked.stderr
    hints = [line for line in ranked.stdout.splitlines() if line.startswith("next pilot:")]
    if expected.settled:
        assert hints == []
    else:
        assert len(hints) == 1 and expected.candidate_pilots[0].name in hints[0]
    as_json = runner.invoke(app, [*args, "--candidates", str(CONFIGS / "candidates.csv"),
                                  "--format", "json"])  # fmt: skip
    json.loads(as_json.stdout)  # the hint never pollutes JSON
    # a law with no uncertainty left: the decision is settled, no hint
    certain = fitted_law.model_copy(
        update={
            vs: fitted_law.set_fit(vs).model_copy(
                update={"jackknife": [fitted_law.set_fit(vs).values] * 5}
            )
            for vs in ("general", "domain")
        }
    )
    settled = next_pilot_hint(certain, (0.3, 0.7), options=options)
    assert settled is not None and settled.settled
    assert settled.expected_regret == pytest.approx(0.0, abs=1e-12)  # no spread, no regret
