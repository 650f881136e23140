"""``cptopt design``: the table, JSON, a prior file and the bad-input paths (exit 2)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cptopt.cli import app, run
from cptopt.design import PilotDesign

runner = CliRunner()
ARGS = ["design", "--pilot-steps", "600", "--peak-lr", "3e-4,1e-3", "--families", "wsd,constant"]


def test_json_is_the_model_and_the_table_shows_each_pilot_and_why() -> None:
    data = runner.invoke(app, [*ARGS, "--pilots", "4", "--format", "json"])
    assert data.exit_code == 0, data.stderr
    result = PilotDesign.model_validate(json.loads(data.stdout))
    assert len(result.pilots) == 4 and [p.rank for p in result.pilots] == [1, 2, 3, 4]
    assert result.priors == ["cpt-code", "cpt-cyr"]
    table = runner.invoke(app, [*ARGS, "--pilots", "4"])
    assert table.exit_code == 0, table.stderr
    out = " ".join(table.stdout.split())
    assert "pilots to launch first (4 of" in out and "why each pilot" in out
    for pilot in result.pilots:
        assert pilot.name in out
        assert " ".join(pilot.reason.split()) in out
    assert "method:" in out


def test_one_weight_pair_and_a_prior_file(law_file) -> None:
    result = runner.invoke(
        app, [*ARGS, "--pilots", "2", "--weights", "0.3,0.7", "--prior", str(law_file),
              "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    parsed = PilotDesign.model_validate_json(result.stdout)
    assert parsed.weights == [(0.3, 0.7)]
    assert parsed.priors == ["law"]


def test_bad_input_is_one_line_and_exit_2(tmp_path, pretrain_law_file, capsys) -> None:
    cases = [
        (["design", "--pilot-steps", "600"], "--peak-lr is required"),
        ([*ARGS, "--pilots", "0"], "--pilots"),
        ([*ARGS, "--pretrain-lr", "nan"], "--pretrain-lr == nan"),
        ([*ARGS, "--prior", str(tmp_path / "nope.json")], "--prior: law file not found"),
        ([*ARGS, "--prior", str(pretrain_law_file)], "needs a CPT law"),
        ([*ARGS, "--weights", "1,x"], "--weights == '1,x'"),
        (["design", "--peak-lr", "1e-3"], "--pilot-steps"),
    ]
    for args, text in cases:
        code = run(args)  # as the console script runs it: usage errors are one line too
        out, err = capsys.readouterr()
        assert code == 2, (args, out, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert text in lines[0], args
        assert out == ""


def test_write_puts_one_config_per_pilot_in_the_folder(tmp_path) -> None:
    result = runner.invoke(app, [*ARGS, "--pilots", "2", "--write", str(tmp_path / "out")])
    assert result.exit_code == 0, result.stderr
    written = sorted((tmp_path / "out").glob("*.yaml"))
    assert [p.name[0] for p in written] == ["1", "2"]
    assert result.stdout.count("note: wrote ") == 2
