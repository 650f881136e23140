"""Hostile but realistic input, swept through every command: one line on stderr, exit 2.

Each case is a row of :data:`CASES`: a name, the command line (``{law}``, ``{manifest}``,
``{config}`` and ``{tmp}`` are filled in), the files it needs, the expected exit code and a
pattern the one error line must match. Every case also checks that the command printed no
traceback and no ``internal error``, wrote nothing to stdout, and left no new file in its
working directory. Add a row for every new option or input.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cptopt.cli import run

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "configs" / "wsd-lr1e-3-replay25.yaml"
MANIFEST = ROOT / "examples" / "pilots" / "unannealed.yaml"
GOOD_CONFIG = "schedule: {family: wsd, peak_lr: 1.0e-3, steps: 500}\nreplay_ratio: 0.25\n"
NON_UTF8 = b"replay_ratio: 0.25\nname: \xff\xfe\n"
EVENTS = next((ROOT / "tests" / "fixtures" / "logs" / "tensorboard").iterdir()).read_bytes()
WANDB_RUN = next((ROOT / "tests" / "fixtures" / "real-logs" / "wandb-pl").rglob("*.wandb"))


def _study_without_settings() -> bytes:
    """An SQLite Optuna storage holding study 'orphan' but not its settings: what a
    ``recommend`` killed between creating a study and recording its settings leaves."""
    import tempfile

    import optuna

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.db"
        optuna.create_study(storage=f"sqlite:///{path}", study_name="orphan")
        return path.read_bytes()


def _flipped(data: bytes, count: int = 100, seed: int = 0) -> bytes:
    """``data`` with ``count`` bytes flipped at random places (a failing disk)."""
    import numpy as np

    damaged = bytearray(data)
    for index in np.random.default_rng(seed).integers(0, len(data), count):
        damaged[index] ^= 0xFF
    return bytes(damaged)


def _pilot_csv(last_loss_step: int = 100, last_step: int = 100, big: int = 0) -> str:
    """A pilot CSV: LR every 10 steps to ``last_step``, losses every 10 to ``last_loss_step``;
    ``big``: one more row at that step."""
    rows = ["step,lr,loss_general,loss_domain"]
    for step in range(0, last_step + 1, 10):
        loss = f"{2 - step / 1000:.4f}" if step <= last_loss_step else ""
        rows.append(f"{step},{1e-3 if step else 0},{loss},{loss}")
    if big:
        rows.append(f"{big},1e-3,1.5,1.5")
    return "\n".join(rows) + "\n"


def _pretrain_manifest(extra: str = "", log: str = "a.csv") -> str:
    """A manifest of one pre-training run reading ``log``; ``extra``: more keys of the run."""
    schedule = "{family: constant, peak_lr: 1.0e-3, steps: 100, warmup_steps: 10}"
    return f"version: 1\nkind: pretrain\nruns:\n  - {{log: {log}, schedule: {schedule}{extra}}}\n"


def _manifest(*logs: str) -> str:
    """A manifest of black-box pilots reading ``logs`` (replay ratios 0.25, 0.5, ...)."""
    runs = "".join(
        f"  - {{log: {log}, replay_ratio: {0.25 * (index + 1)}}}\n"
        for index, log in enumerate(logs)
    )
    return f"version: 1\npretrain: unknown\nruns:\n{runs}"


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]
    pattern: str
    files: dict[str, bytes | str | None] = field(default_factory=dict)  # None: a FIFO
    code: int = 2


CASES = [
    # --- files that are not what they should be
    Case(
        "manifest not UTF-8", ["fit", "{tmp}/m.yaml"], r"m\.yaml: not UTF-8", {"m.yaml": NON_UTF8}
    ),
    Case("manifest is a directory", ["fit", "{tmp}"], r"is a directory"),
    Case("manifest is a device", ["fit", "/dev/zero"], r"/dev/zero: not a regular file"),
    Case("manifest is a FIFO", ["fit", "{tmp}/pipe"], r"pipe: not a regular file", {"pipe": None}),
    Case("manifest empty", ["fit", "{tmp}/m.yaml"], r"m\.yaml: file is empty", {"m.yaml": ""}),
    Case(
        "manifest duplicate key",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: line 2 duplicate key 'version'",
        {"m.yaml": "version: 1\nversion: 1\n"},
    ),
    Case("manifest not a mapping", ["fit", "{tmp}/m.yaml"], r"mapping", {"m.yaml": "- 1\n"}),
    Case(
        "config not UTF-8",
        ["predict", "{tmp}/c.yaml", "--law", "{law}"],
        r"c\.yaml: not UTF-8",
        {"c.yaml": NON_UTF8},
    ),
    Case(
        "config is a FIFO",
        ["predict", "{tmp}/c", "--law", "{law}"],
        r"not a regular file",
        {"c": None},
    ),
    Case(
        "law not UTF-8",
        ["predict", "{config}", "--law", "{tmp}/l.json"],
        r"l\.json: not UTF-8",
        {"l.json": b"\xff{}"},
    ),
    Case("law is a directory", ["predict", "{config}", "--law", "{tmp}"], r"is a directory"),
    Case(
        "law not JSON",
        ["predict", "{config}", "--law", "{tmp}/l.json"],
        r"not valid JSON",
        {"l.json": "{"},
    ),
    Case(
        "candidates not UTF-8",
        ["recommend", "--law", "{law}", "--candidates", "{tmp}/c.csv"],
        r"c\.csv: not UTF-8",
        {"c.csv": NON_UTF8},
    ),
    Case(
        "candidates repeat a name",
        ["recommend", "--law", "{law}", "--candidates", "{tmp}/c.csv"],
        r"names must be unique, repeated: a",
        {
            "c.csv": "name,family,peak_lr,steps,replay_ratio\n"
            "a,wsd,1e-3,500,0.25\na,wsd,2e-3,500,0.25\n"
        },
    ),
    Case(
        "limits not UTF-8",
        ["check", "{config}", "--law", "{law}", "--limits", "{tmp}/cptopt.toml"],
        r"not UTF-8",
        {"cptopt.toml": NON_UTF8},
    ),
    Case(
        "log is a FIFO",
        ["inspect", "{tmp}/log.csv"],
        r"log\.csv: not a regular file",
        {"log.csv": None},
    ),
    Case("log is a device", ["inspect", "/dev/zero", "--log-format", "csv"], r"not a regular file"),
    Case(
        "log binary, forced CSV",
        ["inspect", "{tmp}/x.csv", "--log-format", "csv"],
        r"x\.csv: binary file",
        {"x.csv": b"step,lr\n\x00\x01\x02"},
    ),
    Case(
        "log not UTF-8",
        ["inspect", "{tmp}/x.csv"],
        r"x\.csv: not UTF-8",
        {"x.csv": b"step,loss_general\n0,\xff\n"},
    ),
    Case("log missing", ["inspect", "{tmp}/nope.csv"], r"log file not found: .*nope\.csv"),
    # --- logs that end early or are damaged (never a silently shorter pilot)
    Case(
        "event file with flipped bytes",
        ["inspect", "{tmp}/events.out.tfevents.1.vm"],
        r"events\.out\.tfevents\.1\.vm: corrupt record at byte \d+ \(CRC mismatch\)",
        {"events.out.tfevents.1.vm": _flipped(EVENTS)},
    ),
    Case(
        "event file cut in half, as a pilot",
        ["fit", "{tmp}/m.yaml"],
        r"tfevents\.1\.vm: ends in a partly written record at byte \d+ .*truncate -s \d+.*"
        r"a pilot is not fitted on a cut curve",
        {
            "events.out.tfevents.1.vm": EVENTS[: len(EVENTS) // 2],
            "m.yaml": _manifest("events.out.tfevents.1.vm"),
        },
    ),
    Case(
        "W&B run file with a flipped byte",
        ["inspect", "{tmp}/run-x.wandb"],
        r"run-x\.wandb: corrupt record at byte \d+",
        {"run-x.wandb": _flipped(WANDB_RUN.read_bytes(), 1, 3)},
    ),
    Case(
        "W&B run file cut, as a pilot",
        ["fit", "{tmp}/m.yaml"],
        r"run-x\.wandb: ends in a partly written record .*a pilot is not fitted on a cut curve",
        {
            "run-x.wandb": WANDB_RUN.read_bytes()[: WANDB_RUN.stat().st_size // 2],
            "m.yaml": _manifest("run-x.wandb"),
        },
    ),
    Case(
        "loss ends while the LR goes on, as a pilot",
        ["fit", "{tmp}/m.yaml"],
        r"a\.csv: series 'loss_general' \(general loss\) ends at step 40 but 'lr' goes on to "
        r"step 100: a cut log\?; a pilot is not fitted on a cut curve",
        {"a.csv": _pilot_csv(last_loss_step=40), "m.yaml": _manifest("a.csv")},
    ),
    Case(
        "log step 1e12",
        ["fit", "{tmp}/m.yaml"],
        r"a\.csv: series '\w+' \(.*\): step 1e\+12 is more than the longest run cptopt reads "
        r"\(10000000\)",
        {"a.csv": _pilot_csv(big=10**12), "m.yaml": _manifest("a.csv")},
    ),
    Case(
        "one log under two pilot names",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: runs 'a' \(a\.csv\) and 'a' \(\./a\.csv\) read the same file: list each "
        r"pilot once",
        {"a.csv": _pilot_csv(), "m.yaml": _manifest("a.csv", "./a.csv")},
    ),
    Case(
        "a copy of a log under another pilot name",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: runs 'a' \(a\.csv\) and 'b' \(b\.csv\) read identical files \(same SHA-256\)",
        {"a.csv": _pilot_csv(), "b.csv": _pilot_csv(), "m.yaml": _manifest("a.csv", "b.csv")},
    ),
    # --- pre-training pilots (kind: pretrain) and their laws
    Case(
        "pre-training run given a replay ratio",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: run 'a\.csv': replay_ratio: a pre-training run has no replay ratio",
        {"a.csv": _pilot_csv(), "m.yaml": _pretrain_manifest(", replay_ratio: 0.25")},
    ),
    Case(
        "pre-training run given a checkpoint",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: run 'a\.csv': checkpoint: a pre-training run has no checkpoint",
        {"a.csv": _pilot_csv(), "m.yaml": _pretrain_manifest(", checkpoint: final")},
    ),
    Case(
        "pre-training pilots given a PT history",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: pretrain: not for pre-training pilots",
        {"a.csv": _pilot_csv(), "m.yaml": "pretrain: unknown\n" + _pretrain_manifest()},
    ),
    Case(
        "pre-training log without a loss column",
        ["fit", "{tmp}/m.yaml"],
        r"a\.csv: no series 'loss' for the general loss; series present: lr",
        {"a.csv": "step,lr\n10,1e-3\n20,1e-3\n", "m.yaml": _pretrain_manifest()},
    ),
    Case(
        "pre-training pilots given a CPT form",
        ["fit", "{tmp}/m.yaml", "--form", "odds"],
        r"--form == 'odds': a CPT replay form; pre-training pilots",
        {"a.csv": _pilot_csv(), "m.yaml": _pretrain_manifest()},
    ),
    Case(
        "CPT pilots given the pre-training memory",
        ["fit", "{manifest}", "--annealing", "mpl1"],
        r"--annealing == 'mpl1'.*it is for pre-training pilots",
    ),
    # --- recommend: a pre-training law takes the schedule's options, not a CPT run's
    *(
        Case(
            f"recommend a pre-training schedule given {option}",
            ["recommend", "--law", "{ptlaw}", option, *values],
            rf"{option}: a CPT search setting; this law was fitted to pre-training pilots",
        )
        for option, *values in (
            ("--weights", "0.3,0.7"),
            ("--replay", "0.2"),
            ("--warmup-fraction", "0.05"),
            ("--checkpoints", "a"),
            ("--max-steps", "100"),
            ("--tokens-per-step", "1000"),
            ("--top-k", "3"),
            ("--pareto",),
            ("--sampler", "gp"),
            ("--seed", "1"),
            ("--candidates", "{tmp}/c.csv"),
            ("--verbose",),
        )
    ),
    *(
        Case(
            f"recommend CPT settings given {option}",
            ["recommend", "--law", "{law}", option, value],
            rf"{option}: not a setting of a CPT search \(it is for laws fitted to pre-training",
        )
        for option, value in (
            ("--final-lr", "1e-5"),
            ("--decay-shapes", "cosine"),
            ("--warmup-steps", "100"),
        )
    ),
    Case(
        "recommend pre-training final LR below the pilots'",
        ["recommend", "--law", "{ptlaw}", "--final-lr", "1e-6,1e-5"],
        r"--final-lr from 1e-06 below the pilots' lowest LR after their warmup \(3e-05\); "
        r"allow extrapolation \(--allow-extrapolation\)",
    ),
    Case(
        "recommend pre-training final LR above the peak",
        ["recommend", "--law", "{ptlaw}", "--final-lr", "3e-5,1e-3"],
        r"--final-lr up to 0\.001 must stay below the peak LR",
    ),
    Case(
        "recommend pre-training peak LR outside the pilots'",
        ["recommend", "--law", "{ptlaw}", "--peak-lr", "1e-3"],
        r"--peak-lr 0\.001\.\.0\.001 outside the pilots' 0\.0003\.\.0\.0003",
    ),
    Case(
        "recommend pre-training warmup as long as the run",
        ["recommend", "--law", "{ptlaw}", "--warmup-steps", "24000"],
        r"--warmup-steps == 24000, must be below the step budget 24000",
    ),
    Case(
        "recommend pre-training negative warmup",
        ["recommend", "--law", "{ptlaw}", "--warmup-steps", "-1"],
        r"--warmup-steps: .*greater than or equal to 0",
    ),
    Case(
        "recommend pre-training unknown decay shape",
        ["recommend", "--law", "{ptlaw}", "--decay-shapes", "cosine,step"],
        r"--decay-shapes: Input should be 'linear', 'cosine' or 'exponential'",
    ),
    Case(
        "recommend pre-training decay over more than the run",
        ["recommend", "--law", "{ptlaw}", "--decay-fraction", "0.1,1.5"],
        r"--decay-fraction: WSD decay fraction must lie in \[0\.01, 1\]",
    ),
    Case(
        "recommend pre-training NaN final LR",
        ["recommend", "--law", "{ptlaw}", "--final-lr", "nan"],
        r"--final-lr",
    ),
    Case(
        "recommend pre-training steps 1e12",
        ["recommend", "--law", "{ptlaw}", "--steps", "1e12"],
        r"--steps",
    ),
    Case(
        "recommend pre-training config with a CPT key",
        ["recommend", "--law", "{ptlaw}", "-c", "{tmp}/s.yaml"],
        r"s\.yaml: space\.replay_ratio: unknown key \(allowed: peak_lr, steps, warmup_steps",
        {"s.yaml": "space: {replay_ratio: 0.2}\n"},
    ),
    Case(
        "recommend config naming a law that is not a path",
        ["recommend", "-c", "{tmp}/s.yaml"],
        r"s\.yaml: law: must be a file path, got 3",
        {"s.yaml": "law: 3\n"},
    ),
    Case(
        "check with a pre-training law",
        ["check", "{config}", "--law", "{ptlaw}"],
        r"law\.json: kind: cptopt check needs a CPT law",
    ),
    Case(
        "plot a pre-training law over CPT pilots",
        ["plot", "{ptlaw}", "--pilots", "{manifest}", "-o", "{tmp}/p.png"],
        r"--pilots: CPT runs \(kind: cpt\), not pre-training pilots",
    ),
    Case(
        "predict a CPT config with a pre-training law",
        ["predict", "{config}", "--law", "{ptlaw}"],
        r"replay25\.yaml: replay_ratio: a pre-training run has no replay ratio",
    ),
    # --- values out of range or not numbers
    Case(
        "config steps 1e12",
        ["predict", "{tmp}/c.yaml", "--law", "{law}"],
        r"c\.yaml: schedule\.steps: .*less than or equal to 10000000",
        {
            "c.yaml": "schedule: {family: wsd, peak_lr: 1.0e-3, steps: 1000000000000}\n"
            "replay_ratio: 0.2\n"
        },
    ),
    Case(
        "config NaN peak LR",
        ["predict", "{tmp}/c.yaml", "--law", "{law}"],
        r"schedule\.peak_lr",
        {"c.yaml": "schedule: {family: wsd, peak_lr: .nan, steps: 500}\nreplay_ratio: 0.2\n"},
    ),
    Case(
        "config tokens per step 1e18",
        ["predict", "{tmp}/c.yaml", "--law", "{law}"],
        r"tokens_per_step",
        {"c.yaml": GOOD_CONFIG + "tokens_per_step: 1000000000000000000\n"},
    ),
    Case("recommend top-k 0", ["recommend", "--law", "{law}", "--top-k", "0"], r"--top-k"),
    Case("recommend no family", ["recommend", "--law", "{law}", "--families", ","], r"--families"),
    Case("recommend seed 2**70", ["recommend", "--law", "{law}", "--seed", str(2**70)], r"--seed"),
    Case(
        "recommend trials 1e20",
        ["recommend", "--law", "{law}", "--trials", str(10**20)],
        r"--trials",
    ),
    Case("recommend steps 1e12", ["recommend", "--law", "{law}", "--steps", "1e12"], r"--steps"),
    Case(
        "recommend NaN rise",
        ["recommend", "--law", "{law}", "--max-general-rise", "nan"],
        r"--max-general-rise",
    ),
    Case(
        "check NaN limit",
        ["check", "{config}", "--law", "{law}", "--max-general-rise", "nan"],
        r"max_general_rise",
    ),
    # --- next-pilot: its own options, and the inputs it shares with recommend
    Case("next-pilot top-k 0", ["next-pilot", "--law", "{law}", "--top-k", "0"], r"--top-k"),
    Case(
        "next-pilot NaN tolerance",
        ["next-pilot", "--law", "{law}", "--tolerance", "nan"],
        r"tolerance == nan",
    ),
    Case(
        "next-pilot P(best) 1.5",
        ["next-pilot", "--law", "{law}", "--p-best", "1.5"],
        r"P\(best\) threshold == 1\.5",
    ),
    Case(
        "next-pilot pilot steps 1e8",
        ["next-pilot", "--law", "{law}", "--pilot-steps", "100000000"],
        r"--pilot-steps == 100000000, must be in 10\.\.10000000",
    ),
    Case(
        "next-pilot negative seed",
        ["next-pilot", "--law", "{law}", "--seed", "-1"],
        r"--seed == -1, must be in 0\.\.",
    ),
    Case(
        "next-pilot non-UTF-8 candidates",
        ["next-pilot", "--law", "{law}", "--candidates", "{tmp}/c.csv"],
        r"c\.csv: not UTF-8 text",
        {"c.csv": b"name,family,peak_lr,steps,replay_ratio\n\xff\xfe,wsd,1e-3,500,0.2\n"},
    ),
    Case(
        "next-pilot options from a device",
        ["next-pilot", "--law", "{law}", "--options", "/dev/zero"],
        r"/dev/zero: not a regular file",
    ),
    Case(
        "next-pilot with a pre-training law",
        ["next-pilot", "--law", "{ptlaw}"],
        r"law\.json: kind: cptopt next-pilot needs a CPT law",
    ),
    # --- usage errors are one line too
    Case(
        "predict level 1.5",
        ["predict", "{config}", "--level", "1.5"],
        r"--level.*\(see 'cptopt predict --help'\)",
    ),
    Case("fit starts 0", ["fit", "{manifest}", "--starts", "0"], r"--starts"),
    Case("plot dpi 0", ["plot", "{law}", "--dpi", "0"], r"--dpi"),
    Case("inspect format xml", ["inspect", "{config}", "--format", "xml"], r"--format"),
    Case("unknown command", ["frobnicate"], r"No such command 'frobnicate'"),
    Case("unknown option", ["fit", "{manifest}", "--nope"], r"No such option: --nope"),
    # --- outputs that cannot be written, caught before the work
    Case(
        "check output is a directory",
        ["check", "{config}", "--law", "{law}", "-o", "{tmp}"],
        r"is a directory",
    ),
    Case(
        "check output under a file",
        ["check", "{config}", "--law", "{law}", "-o", "{config}/x.json"],
        r"not a directory",
    ),
    Case("plot output is a directory", ["plot", "{law}", "-o", "{tmp}"], r"is a directory"),
    Case(
        "predict plot is a directory",
        ["predict", "{config}", "--law", "{law}", "--plot", "{tmp}"],
        r"is a directory",
    ),
    Case(
        "output name too long",
        ["check", "{config}", "--law", "{law}", "-o", "{tmp}/" + "x" * 300],
        r"name too long",
    ),
    Case("fit output is a directory", ["fit", "{manifest}", "-o", "{tmp}"], r"is a directory"),
    Case("fit starts 1e9", ["fit", "{manifest}", "--starts", "1000000000"], r"--starts"),
    Case("fit seed -1", ["fit", "{manifest}", "--seed", "-1"], r"--seed"),
    # --- storages
    Case(
        "journal is a directory",
        ["recommend", "--law", "{law}", "--storage", "journal:{tmp}"],
        r"is a directory",
    ),
    Case(
        "journal holds junk",
        ["recommend", "--law", "{law}", "--storage", "journal:{tmp}/j.log", "--trials", "5"],
        r"not a readable journal",
        {"j.log": "this is not a journal\n"},
    ),
    Case(
        "storage not a URL",
        ["recommend", "--law", "{law}", "--storage", "redis://x"],
        r"not a storage URL",
    ),
    Case(
        "study without its settings",
        ["recommend", "--law", "{law}", "--storage", "sqlite:///{tmp}/s.db"]
        + ["--study-name", "orphan", "--trials", "5"],
        r"study 'orphan' in sqlite:///.*s\.db has no recorded settings.*--study-name",
        {"s.db": _study_without_settings()},
    ),
]


def _prepare(case: Case, folder: Path) -> None:
    for name, content in case.files.items():
        path = folder / name
        if content is None:
            os.mkfifo(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input_is_one_line_and_leaves_nothing(
    case: Case, law_file: Path, pretrain_law_file: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    _prepare(case, inputs)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    values = {
        "law": str(law_file),
        "ptlaw": str(pretrain_law_file),
        "manifest": str(MANIFEST),
        "config": str(CONFIG),
        "tmp": str(inputs),
    }
    before = sorted(inputs.iterdir())
    code = run([arg.format(**values) for arg in case.args])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == case.code, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: "), lines[0]
    assert re.search(case.pattern, lines[0]), lines[0]
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    assert captured.out == ""
    assert list(work.iterdir()) == []
    assert sorted(inputs.iterdir()) == before


def test_check_reports_the_good_configs_when_one_is_unreadable(law_file, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(NON_UTF8)
    good = tmp_path / "good.yaml"
    good.write_text(GOOD_CONFIG)
    code = run(["check", str(good), str(bad), "--law", str(law_file), "--isolated"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out.splitlines()[0].startswith("PASS  ") and "good.yaml" in captured.out
    assert captured.out.splitlines()[-1].endswith("1 passed, 0 failed, 1 error")
    assert re.fullmatch(r"error: .*bad\.yaml: not UTF-8 .*", captured.err.strip())


def test_a_seed_batch_found_incomplete_is_completed_on_resume(law_file, tmp_path, capsys):
    """A study whose seed batch is short (older versions wrote it trial by trial, and a kill
    could land in between; here a first run asked for fewer trials than the batch) gets the
    rest of the batch, not a search without it, and still ends at the requested total."""
    import json

    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    base = ["recommend", "--law", str(law_file), "--storage", url, "--study-name", "seeds"]
    assert run([*base, "--trials", "17", "--format", "json"]) == 0
    capsys.readouterr()
    assert run([*base, "--trials", "80", "--format", "json"]) == 0
    search = json.loads(capsys.readouterr().out)["search"]
    assert search["resumed"] is True and search["seed_trials_added"] == 64 - 17
    trials = optuna.load_study(study_name="seeds", storage=url).get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 80 == len(trials)
    assert sum(t.user_attrs.get("seed") is True for t in complete) == 64
