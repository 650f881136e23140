"""``cptopt fit`` end to end, and the bad-input corpus of the fit path (exit code 2)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cptopt.cli import app
from cptopt.law.fitted import SCHEMA_VERSION, load_law

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_fit_writes_law_and_json_report(tmp_path, unannealed_manifest):
    out = tmp_path / "law.json"
    result = invoke(
        "fit", unannealed_manifest, "-o", out, "--form", "exp", "--lam", "0.995", "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    law = load_law(out)
    assert report["schema_version"] == SCHEMA_VERSION == law.schema_version
    assert report["form"] == "exp" and report["lam"] == 0.995
    assert report["general"]["values"] == law.general.values
    assert [r["name"] for r in report["general"]["runs"]][0] == "code_U_lr1x_r25_const_1000"
    assert "law written to" in result.stderr


def test_the_law_path_is_printed_as_written(tmp_path, unannealed_manifest):
    """Rich read '[bold]' in the path as a style tag and ':smile:' as an emoji code: the
    line named another file than the one written."""
    out = tmp_path / "law[bold]:smile:.json"
    result = invoke(
        "fit",
        unannealed_manifest,
        "-o",
        out,
        "--form",
        "paper",
        "--starts",
        "1",
        "--no-jackknife",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    assert out.exists()
    assert result.stderr.strip().endswith(f"law written to {out}"), result.stderr


def test_fit_defaults_are_the_librarys(tmp_path, unannealed_manifest, fitted_law):
    """``cptopt fit`` with no options fits the law ``cptopt.fit`` fits with its defaults
    (the CLI once polished 4 starts where the library polishes 3: a scripted fit and the
    command's differed, and the benchmarks measured only the library's)."""
    import numpy as np

    out = tmp_path / "law.json"
    result = invoke("fit", unannealed_manifest, "-o", out, "--format", "json")
    assert result.exit_code == 0, result.stderr
    law = load_law(out)
    for name in ("general", "domain"):
        ours, theirs = getattr(law, name), getattr(fitted_law, name)
        assert ours.form == theirs.form and ours.pt_points == theirs.pt_points
        np.testing.assert_allclose(ours.values, theirs.values, rtol=1e-12, atol=0)


def test_fit_table_report_names_every_pilot_and_parameter(tmp_path, unannealed_manifest):
    result = invoke("fit", unannealed_manifest, "-o", tmp_path / "law.json", "--form", "paper")
    assert result.exit_code == 0, result.stderr
    for name in ("code_U_lr1x_r00_wsd_1000", "alpha", "Bbeta", "leave-one-pilot-out"):
        assert name in result.stdout
    assert "lambda = 0.999" in result.stdout


def test_fit_help_teaches():
    result = invoke("fit", "--help")
    assert result.exit_code == 0
    for text in ("--form", "--lam", "leave-one-pilot-out", "--format", "--output"):
        assert text in result.stdout
    assert "--law" not in result.stdout  # the deprecated alias of --form is hidden


def test_fit_law_is_a_deprecated_alias_of_form(tmp_path, unannealed_manifest):
    result = invoke("fit", unannealed_manifest, "-o", tmp_path / "law.json", "--law", "exp")
    assert result.exit_code == 0, result.stderr
    assert "note: 'cptopt fit --law' is now --form" in result.stderr
    assert load_law(tmp_path / "law.json").general.form == "exp"


def test_interrupted_write_keeps_previous_law(tmp_path, fitted_law, monkeypatch):
    path = tmp_path / "law.json"
    fitted_law.save(path)
    before = path.read_bytes()

    def explode(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", explode)
    with pytest.raises(KeyboardInterrupt):
        fitted_law.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["law.json"]  # no temp file left


# --------------------------------------------------------------------- bad input corpus

RUN = "code_U_lr1x_r25_const_1000.csv"


@pytest.fixture
def workspace(tmp_path, data_dir):
    """A copy of two pilot logs and the PT log, with a manifest to break."""
    for name in (RUN, "code_U_lr1x_r00_wsd_1000.csv", "code_U_lr1x_r50_wsd_1000.csv"):
        shutil.copy(data_dir / "runs" / name, tmp_path / name)
    shutil.copy(data_dir / "pretrain.csv", tmp_path / "pretrain.csv")
    return tmp_path


def write_manifest(folder: Path, extra: str = "", runs: str | None = None) -> Path:
    runs = runs or (
        f"  - {{log: {RUN}, replay_ratio: 0.25}}\n"
        "  - {log: code_U_lr1x_r00_wsd_1000.csv, replay_ratio: 0.0}\n"
        "  - {log: code_U_lr1x_r50_wsd_1000.csv, replay_ratio: 0.5}\n"
    )
    text = (
        "version: 1\n"
        "columns: {step: step, lr: lr, general: loss_general, domain: loss_domain}\n"
        "pretrain: {log: pretrain.csv, warmup_steps: 80, checkpoints: {ckpt: 3200}}\n"
        f"{extra}runs:\n{runs}"
    )
    path = folder / "pilots.yaml"
    path.write_text(text)
    return path


def edit_log(path: Path, transform) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(transform(lines)) + "\n")


def set_cell(lines: list[str], row: int, column: int, value: str) -> list[str]:
    cells = lines[row].split(",")
    cells[column] = value
    lines[row] = ",".join(cells)
    return lines


def test_the_unbroken_workspace_fits(workspace):
    result = invoke(
        "fit",
        write_manifest(workspace),
        "-o",
        workspace / "law.json",
        "--form",
        "exp",
        "--lam",
        "0.99",
        "--no-jackknife",
    )
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("breakage", "fragments"),
    [
        (
            lambda lines: [lines[0].replace("loss_domain", "loss_code")] + lines[1:],
            ["loss_domain", "present", "loss_code"],
        ),
        (lambda lines: set_cell(lines, 100, 2, "nan"), ["NaN"]),
        (lambda lines: set_cell(lines, 100, 2, "inf"), ["inf"]),
        (lambda lines: set_cell(lines, 100, 2, "-1.5"), ["> 0"]),
        (lambda lines: set_cell(lines, 100, 2, "abc"), ["not a number"]),
        (
            lambda lines: (
                [lines[0]]
                + [
                    ",".join(["0"] + line.split(",")[1:]) if i > 0 else line
                    for i, line in enumerate(lines[1:], start=1)
                ][1:]
            ),
            ["step"],
        ),
        (lambda lines: lines[:1] + lines[1:][::-1], ["backwards"]),
        (lambda lines: [], ["no data rows"]),
        (lambda lines: lines[:1], ["no data rows"]),
        (
            lambda lines: [lines[0]] + [set_cell([line], 0, 1, "0")[0] for line in lines[1:]],
            ["LR", "> 0"],
        ),
    ],
    ids=[
        "misnamed-column",
        "nan-loss",
        "inf-loss",
        "negative-loss",
        "text-loss",
        "steps-repeat",
        "steps-decrease",
        "empty-file",
        "header-only",
        "lr-zero",
    ],
)
def test_broken_logs_give_one_line_and_exit_2(workspace, breakage, fragments):
    edit_log(workspace / RUN, breakage)
    result = invoke("fit", write_manifest(workspace), "-o", workspace / "law.json")
    assert_one_line_error(result, *fragments)
    assert not (workspace / "law.json").exists()


@pytest.mark.parametrize(
    ("extra", "runs", "fragments"),
    [
        ("surprise: 1\n", None, ["surprise", "unknown key"]),
        ("", f"  - {{log: {RUN}, replay_ratio: 0.25, colour: red}}\n", ["colour", "unknown key"]),
        ("", f"  - {{log: {RUN}, replay_ratio: 1.5}}\n", ["replay_ratio"]),
        ("", "  - {log: missing.csv, replay_ratio: 0.25}\n", ["missing.csv"]),
        ("", f"  - {{log: {RUN}, replay_ratio: 0.25, checkpoint: other}}\n", ["other"]),
    ],
    ids=[
        "unknown-top-key",
        "unknown-run-key",
        "replay-out-of-range",
        "missing-log",
        "unknown-checkpoint",
    ],
)
def test_broken_manifests_give_one_line_and_exit_2(workspace, extra, runs, fragments):
    result = invoke("fit", write_manifest(workspace, extra, runs), "-o", workspace / "law.json")
    assert_one_line_error(result, *fragments)


def test_manifest_that_is_not_yaml(workspace):
    path = workspace / "pilots.yaml"
    path.write_text("runs: [unclosed\n")
    assert_one_line_error(invoke("fit", path), "pilots.yaml")


def test_fewer_points_than_parameters(workspace):
    edit_log(workspace / RUN, lambda lines: lines[:42])  # evaluations at steps 0..40: 5 points
    path = workspace / "short.yaml"
    path.write_text(
        f"version: 1\npretrain: unknown\nruns:\n  - {{log: {RUN}, replay_ratio: 0.25}}\n"
    )
    result = invoke("fit", path, "--form", "paper", "-o", workspace / "law.json")
    assert_one_line_error(result, "5 points for 8 parameters")


def test_bad_options(workspace):
    manifest = write_manifest(workspace)
    assert_one_line_error(invoke("fit", manifest, "--form", "magic"), "--form == 'magic'")
    assert_one_line_error(invoke("fit", manifest, "--lam", "1.5", "--form", "exp"), "--lam")
    assert_one_line_error(invoke("fit", manifest, "--lam", "soon"), "--lam")
    assert_one_line_error(invoke("fit", manifest, "--annealing", "magic"), "--annealing")
    assert_one_line_error(invoke("fit", manifest, "--tie", "maybe"), "--tie")
    assert_one_line_error(
        invoke("fit", manifest, "--annealing", "mpl", "--lam", "0.99"), "lam", "mpl"
    )


def test_law_file_of_another_schema_version(tmp_path, law_file):
    data = json.loads(law_file.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    bad = tmp_path / "law.json"
    bad.write_text(json.dumps(data))
    config = Path(__file__).resolve().parents[2] / "examples" / "configs" / "wsd-replay25.yaml"
    result = invoke("predict", config, "--law", bad)
    assert_one_line_error(result, "schema version")
    missing = invoke("predict", config, "--law", tmp_path / "nope.json")
    assert_one_line_error(missing, "nope.json", "cptopt fit")


def test_a_damaged_packed_pt_history_is_one_line_and_exit_2(tmp_path, law_file):
    """A law file whose long PT history (written packed, schema 6) is damaged."""
    from cptopt.law.records import pack_lr

    data = json.loads(law_file.read_text())
    lr = data["pretrain"]["lr"] * 5  # 20,000 updates: long enough to be packed
    packed = pack_lr(lr)
    data["pretrain"]["lr"] = {**packed, "data": packed["data"][:-8]}  # cut short
    bad = tmp_path / "law.json"
    bad.write_text(json.dumps(data))
    config = Path(__file__).resolve().parents[2] / "examples" / "configs" / "wsd-replay25.yaml"
    result = invoke("predict", config, "--law", bad)
    assert_one_line_error(result, "pretrain.lr", "data is cut short")


# ------------------------------------------------------------------ pre-training pilots


def test_fit_pretraining_pilots_report_has_no_domain_set(tmp_path, pretrain_manifest):
    out = tmp_path / "law.json"
    result = invoke("fit", pretrain_manifest, "-o", out)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert text.startswith("pre-training law L0 + A*S1^-alpha - C1*annealing")
    assert "annealing memories (chosen by leave-one-run-out CV" in text
    for row in ("λ 0.999", "λ 0.98", "mpl ζ=1", "points (after the warmup)", "loss: parameters"):
        assert row in text
    assert "domain" not in text.replace("no domain set", "")
    assert "general" not in text and "replay" not in text
    law = load_law(out)
    assert law.kind == "pretrain" and law.validation_sets == ("loss",)
    assert law.form_for("loss").name == "pretrain"
    assert [r.name for r in law.inputs] == ["cosine_24000", "constant_24000", "wsdcon_9"]


def test_fit_pretraining_pilots_with_a_fixed_memory_as_json(tmp_path, pretrain_manifest):
    out = tmp_path / "law.json"
    result = invoke("fit", pretrain_manifest, "-o", out, "--form", "paper", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "pretrain" and "domain" not in report and "general" not in report
    assert (report["annealing"], report["lam"]) == ("s2", 0.999) and report["selection"] == []
    assert report["loss"]["parameter_names"] == ["L0", "A", "alpha", "C1"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--form", "odds"), "--form == 'odds': a CPT replay form; pre-training pilots"),
        (("--tie", "yes"), "--tie: not for pre-training pilots"),
        (("--pt-points", "all"), "--pt-points: not for pre-training pilots"),
        (("--annealing", "mpl", "--lam", "0.99"), "cannot be set with --annealing mpl"),
    ],
)
def test_fit_pretraining_pilots_refuses_cpt_options(tmp_path, pretrain_manifest, extra, message):
    result = invoke("fit", pretrain_manifest, "-o", tmp_path / "law.json", *extra)
    assert_one_line_error(result, message)
    assert not (tmp_path / "law.json").exists()


def test_the_spinner_shows_the_running_stages_and_is_silent_when_piped(
    tmp_path, unannealed_manifest
):
    from cptopt.cli._common import Spinner

    spinner = Spinner("reading 5 pilot logs")
    assert spinner.live is None  # stderr is not a terminal here: nothing is drawn
    spinner("reading logs", 5, 5)
    assert spinner.text() == "reading logs 5/5"
    spinner("selecting the general law", 2, 7)
    spinner("selecting the domain law", 1, 5)
    assert spinner.text() == "selecting the general law 2/7; selecting the domain law 1/5"
    spinner("selecting the domain law", 5, 5)
    assert spinner.text() == "selecting the general law 2/7"
    spinner("selecting the general law", 7, 7)
    assert spinner.text() == "selecting the general law 7/7"
    result = invoke("fit", unannealed_manifest, "-o", tmp_path / "law.json", "--form", "exp")
    assert result.exit_code == 0, result.stderr
    assert "selecting" not in result.stderr and "reading" not in result.stderr


def test_fit_command_never_imports_scipy(tmp_path, unannealed_manifest):
    """SciPy's import took 0.2-0.3 s of every ``cptopt fit`` (issue 25's start-up time): the
    fit's linear algebra is numpy's. A fresh process runs the whole command, report
    included, and lists the SciPy modules it loaded."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cptopt.cli import run\n"
        f"code = run(['fit', {str(unannealed_manifest)!r}, '-o', {str(tmp_path / 'law.json')!r}])\n"
        "print(code, sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 []"
