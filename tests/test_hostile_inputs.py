"""Hostile but realistic input, swept through every command: one line on stderr, exit 2.

Each case is a row of :data:`CASES`: a name, the command line (``{law}``, ``{ptlaw}``,
``{manifest}``, ``{config}``, ``{ptconfig}`` and ``{tmp}`` are filled in), the files it needs
(a :class:`LawEdit` is a damaged copy of the test law), the expected exit code and a pattern
the one error line must match. Every case also checks that the command printed no
traceback and no ``internal error``, wrote nothing to stdout, and left no new file in its
working directory. Add a row for every new option or input.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cptopt.cli import run

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "configs" / "wsd-lr1e-3-replay25.yaml"
PRETRAIN_CONFIG = ROOT / "examples" / "configs" / "pretrain-wsd.yaml"
MANIFEST = ROOT / "examples" / "pilots" / "unannealed.yaml"
GOOD_CONFIG = "schedule: {family: wsd, peak_lr: 1.0e-3, steps: 500}\nreplay_ratio: 0.25\n"
NON_UTF8 = b"replay_ratio: 0.25\nname: \xff\xfe\n"
EVENTS = next((ROOT / "tests" / "fixtures" / "logs" / "tensorboard").iterdir()).read_bytes()
WANDB_RUN = next((ROOT / "tests" / "fixtures" / "real-logs" / "wandb-pl").rglob("*.wandb"))
HF_RUN = ROOT / "tests" / "fixtures" / "real-logs" / "hf-B"


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


def _alias_bomb(levels: int) -> str:
    """A YAML alias bomb: each level lists the previous one 9 times (9**levels nodes)."""
    lines = ["a0: &a0 [" + ",".join(["lol"] * 9) + "]"]
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nversion: *a{levels - 1}\n"


def _record_head(length: int) -> bytes:
    """A TFRecord header claiming ``length`` bytes, with its valid CRC."""
    import numpy as np

    from cptopt.pilots.logs._crc32c import masked_crc32c

    head = struct.pack("<Q", length)
    crc = masked_crc32c(np.frombuffer(head, dtype=np.uint8), np.array([0]), np.array([8]))
    return head + struct.pack("<I", int(crc[0]))


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


def _hf_state(last_step: int | None = None) -> str:
    """The HF run's ``trainer_state.json``; ``last_step``: as its checkpoint at that step."""
    state = json.loads((HF_RUN / "trainer_state.json").read_text())
    if last_step is not None:
        state["log_history"] = [e for e in state["log_history"] if e["step"] <= last_step]
        state["global_step"] = last_step
    return json.dumps(state)


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
class LawEdit:
    """A file's content: the test session's law file (``base``: ``law`` or ``ptlaw``) with
    its JSON changed by ``edit`` (a hand-edited or damaged law)."""

    edit: Callable[[dict], object]
    base: str = "law"


def _set(*path: str | int, to: object) -> LawEdit:
    """A law with the value at ``path`` (keys and list indices) set ``to``."""

    def edit(data: dict) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = to

    return LawEdit(edit, "ptlaw" if path[0] == "loss" else "law")


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]
    pattern: str
    files: dict[str, bytes | str | LawEdit | None] = field(default_factory=dict)  # None: FIFO
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
        "manifest an 11-level YAML alias bomb",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: line 6 aliases expand the file by more than 100000 nodes \(an alias bomb\?\)",
        {"m.yaml": _alias_bomb(11)},
    ),
    Case(
        "config nested 100,000 deep",
        ["predict", "{tmp}/c.yaml", "--law", "{law}"],
        r"c\.yaml: line 1 collections nested more than 100 deep",
        {"c.yaml": "schedule: " + "[" * 100_000 + "]" * 100_000 + "\n"},
    ),
    Case(
        "manifest with a recursive alias",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: line 1 alias \*a refers to a collection that holds it",
        {"m.yaml": "runs: &a [*a]\n"},
    ),
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
        "event file whose last record claims a huge length",
        ["inspect", "{tmp}/events.out.tfevents.1.vm"],
        r"events\.out\.tfevents\.1\.vm: the record at byte \d+ claims 1099511627776 bytes, "
        r"more than any file cptopt reads \(2147483648\): the event file is damaged",
        {"events.out.tfevents.1.vm": EVENTS + _record_head(2**40) + b"x" * 30},
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
    Case(
        "one HF run listed as its output folder and its TensorBoard folder",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: runs 'hf-B' \(.*hf-B\) and 'hf-B/runs' \(.*hf-B/runs\) hold the same curves "
        r"\(steps and losses\), one run read from two places: list each pilot once",
        {"m.yaml": _manifest(str(HF_RUN), str(HF_RUN / "runs"))},
    ),
    Case(
        "an HF checkpoint of a listed run",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: runs 'out' \(out\) and 'out/checkpoint-100' \(out/checkpoint-100\) hold "
        r"curves of which one is the start of the other, a checkpoint of one run",
        {
            "out/trainer_state.json": _hf_state(),
            "out/checkpoint-100/trainer_state.json": _hf_state(100),
            "m.yaml": _manifest("out", "out/checkpoint-100"),
        },
    ),
    # --- the domain corpus size: a bound that means something, never a silent no-op
    Case(
        "domain_tokens smaller than one step's domain tokens",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: domain_tokens == 1, less than one step's domain tokens \(7\.5 in run 'a'",
        {
            "a.csv": _pilot_csv(),
            "m.yaml": "tokens_per_step: 10\ndomain_tokens: 1\n" + _manifest("a.csv"),
        },
    ),
    Case(
        "domain_tokens without tokens_per_step",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: domain_tokens needs tokens_per_step, which run 'a' lacks",
        {"a.csv": _pilot_csv(), "m.yaml": "domain_tokens: 1000000\n" + _manifest("a.csv")},
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
    # --- law files checked as a whole when loaded, by every command (one line: file, field)
    Case(
        "law with a NaN jackknife replica (nan .. nan intervals)",
        ["predict", "{config}", "--law", "{tmp}/l.json"],
        r"l\.json: general\.jackknife\[0\]\[2\] is NaN",
        {"l.json": _set("general", "jackknife", 0, 2, to=float("nan"))},
    ),
    Case(
        "law with a NaN parameter, plotted",
        ["plot", "{tmp}/l.json"],
        r"l\.json: general\.values\[3\] is NaN",
        {"l.json": _set("general", "values", 3, to=float("nan"))},
    ),
    Case(
        "law whose coverage has min > max",
        ["check", "{config}", "--law", "{tmp}/l.json"],
        r"l\.json: coverage\.peak_lr_min 0\.01 and peak_lr_max 0\.002: must be 0 < min <= max",
        {"l.json": _set("coverage", "peak_lr_min", to=0.01)},
    ),
    Case(
        "law with an Infinity parameter",
        ["recommend", "--law", "{tmp}/l.json"],
        r"l\.json: domain\.values\[0\] is Infinity",
        {"l.json": _set("domain", "values", 0, to=float("inf"))},
    ),
    Case(
        "law with NaN parameters, in recommend",
        ["recommend", "--law", "{tmp}/l.json"],
        r"l\.json: general\.values\[0\] is NaN",
        {"l.json": _set("general", "values", 0, to=float("nan"))},
    ),
    Case(
        "law with NaN parameters, in check (not blamed on the limits)",
        ["check", "{config}", "--law", "{tmp}/l.json", "--max-general-rise", "0.1"],
        r"l\.json: domain\.values\[2\] is NaN",
        {"l.json": _set("domain", "values", 2, to=float("nan"))},
    ),
    Case(
        "law with an Infinity parameter, in next-pilot",
        ["next-pilot", "--law", "{tmp}/l.json"],
        r"l\.json: general\.values\[1\] is Infinity",
        {"l.json": _set("general", "values", 1, to=float("inf"))},
    ),
    Case(
        "law with short values",
        ["predict", "{config}", "--law", "{tmp}/l.json"],
        r"l\.json: general\.values: \d+ values for \d+ parameters",
        {"l.json": LawEdit(lambda law: law["general"]["values"].pop())},
    ),
    Case(
        "law with no replay ratios",
        ["recommend", "--law", "{tmp}/l.json"],
        r"l\.json: coverage\.replay_ratios: empty",
        {"l.json": _set("coverage", "replay_ratios", to=[])},
    ),
    Case(
        "law with an empty PT LR",
        ["predict", "{config}", "--law", "{tmp}/l.json"],
        r"l\.json: pretrain\.lr: empty",
        {"l.json": _set("pretrain", "lr", to=[])},
    ),
    Case(
        "law with a short PT LR",
        ["predict", "{config}", "--law", "{tmp}/l.json"],
        r"l\.json: pretrain\.checkpoints\.unannealed == 3200, outside the 10 steps of "
        r"pretrain\.lr",
        {"l.json": LawEdit(lambda law: law["pretrain"].update(lr=law["pretrain"]["lr"][:10]))},
    ),
    Case(
        "law with an unknown form",
        ["predict", "{config}", "--law", "{tmp}/l.json"],
        r"l\.json: general\.form: 'linear' is not a form of this kind of law \(paper, exp",
        {"l.json": _set("general", "form", to="linear")},
    ),
    Case(
        "pre-training law with a NaN parameter",
        ["predict", "{ptconfig}", "--law", "{tmp}/l.json"],
        r"l\.json: loss\.values\[1\] is NaN",
        {"l.json": _set("loss", "values", 1, to=float("nan"))},
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
        "config peak LR 1e300 (the areas would overflow)",
        ["predict", "{tmp}/c.yaml", "--law", "{law}"],
        r"c\.yaml: schedule\.peak_lr: Input should be less than or equal to 10 \(got 1e\+300\)",
        {"c.yaml": "schedule: {family: wsd, peak_lr: 1.0e+300, steps: 500}\nreplay_ratio: 0.2\n"},
    ),
    Case(
        "manifest tokens per step 1e30",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: tokens_per_step: Input should be less than or equal to 1000000000",
        {
            "a.csv": _pilot_csv(),
            "m.yaml": "tokens_per_step: 10000000000000000000000000000\n" + _manifest("a.csv"),
        },
    ),
    Case(
        "manifest with two runs of one name",
        ["fit", "{tmp}/m.yaml"],
        r"m\.yaml: pilot run names must be unique, repeated: x",
        {
            "a.csv": _pilot_csv(),
            "b.csv": _pilot_csv().replace("1.9", "1.7"),
            "m.yaml": "version: 1\npretrain: unknown\nruns:\n  - {log: a.csv, replay_ratio: 0.2, "
            "name: x}\n  - {log: b.csv, replay_ratio: 0.5, name: x}\n",
        },
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
        r"^error: --max-general-rise: Input should be a finite number \(got nan\)$",
    ),
    # --- next-pilot: its own options, and the inputs it shares with recommend
    Case("next-pilot top-k 0", ["next-pilot", "--law", "{law}", "--top-k", "0"], r"--top-k"),
    Case(
        "next-pilot NaN tolerance",
        ["next-pilot", "--law", "{law}", "--tolerance", "nan"],
        r"--tolerance == nan, must be a finite number >= 0",
    ),
    Case(
        "next-pilot P(best) 0",
        ["next-pilot", "--law", "{law}", "--p-best", "0"],
        r"--p-best == 0.0, must be in \(0, 1\]",
    ),
    Case(
        "next-pilot P(best) 1.5",
        ["next-pilot", "--law", "{law}", "--p-best", "1.5"],
        r"'--p-best': Input should be less than or equal to 1",
    ),
    Case(
        "recommend weights that overflow",
        ["recommend", "--law", "{law}", "--weights", "1e308,1e308"],
        r"--weights == \[1e\+308, 1e\+308\]: their sum overflows",
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
    # --- design: the first pilots before any fit
    Case(
        "design without a peak-LR range",
        ["design", "--pilot-steps", "1000"],
        r"--peak-lr is required",
    ),
    Case(
        "design zero pilots",
        ["design", "--pilot-steps", "1000", "--peak-lr", "1e-3", "--pilots", "0"],
        r"'--pilots'",
    ),
    Case(
        "design pilot steps 5",
        ["design", "--pilot-steps", "5", "--peak-lr", "1e-3"],
        r"'--pilot-steps'",
    ),
    Case(
        "design NaN pre-training LR",
        ["design", "--pilot-steps", "1000", "--peak-lr", "1e-3", "--pretrain-lr", "nan"],
        r"--pretrain-lr == nan",
    ),
    Case(
        "design prior from a device",
        ["design", "--pilot-steps", "1000", "--peak-lr", "1e-3", "--prior", "/dev/zero"],
        r"--prior: /dev/zero: not a regular file",
    ),
    Case(
        "design prior with an Infinity parameter",
        ["design", "--pilot-steps", "1000", "--peak-lr", "1e-3", "--prior", "{tmp}/l.json"],
        r"--prior: .*l\.json: general\.values\[1\] is Infinity",
        {"l.json": _set("general", "values", 1, to=float("inf"))},
    ),
    Case(
        "design prior is a pre-training law",
        ["design", "--pilot-steps", "1000", "--peak-lr", "1e-3", "--prior", "{ptlaw}"],
        r"--prior: .*needs a CPT law",
    ),
    Case(
        "design non-UTF-8 candidates",
        ["design", "--pilot-steps", "1000", "--candidates", "{tmp}/c.csv"],
        r"c\.csv: not UTF-8 text",
        {"c.csv": b"name,family,peak_lr,steps,replay_ratio\n\xff\xfe,wsd,1e-3,500,0.2\n"},
    ),
    Case(
        "design --write to a file",
        ["design", "--pilot-steps", "1000", "--peak-lr", "1e-3", "--write", "{config}"],
        r"not a directory \(--write takes a folder\)",
    ),
    Case(
        "design reversed peak-LR range",
        ["design", "--pilot-steps", "1000", "--peak-lr", "2e-3,6e-4"],
        r"--peak-lr: low 0\.002 > high 0\.0006",
    ),
    Case(
        "design reversed reach",
        [
            "design",
            "--pilot-steps",
            "1000",
            "--peak-lr",
            "6e-4,2e-3",
            "--reach-peak-lr",
            "6e-3,6e-4",
        ],
        r"--reach-peak-lr: low 0\.006 > high 0\.0006",
    ),
    Case(
        "design reach replay above 1",
        ["design", "--pilot-steps", "1000", "--peak-lr", "6e-4,2e-3", "--reach-replay", "0,1.5"],
        r"--reach-replay: replay ratio bounds must lie in \[0, 1\]",
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
    Case(
        "inspect log format xml",
        ["inspect", "{config}", "--log-format", "xml"],
        r"^error: --log-format == 'xml', must be one of auto, ",
    ),
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


def _prepare(case: Case, folder: Path, values: dict[str, str]) -> None:
    for name, content in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            os.mkfifo(path)
        elif isinstance(content, LawEdit):
            law = json.loads(Path(values[content.base]).read_text())
            content.edit(law)
            path.write_text(json.dumps(law))
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
    values = {
        "law": str(law_file),
        "ptlaw": str(pretrain_law_file),
        "manifest": str(MANIFEST),
        "config": str(CONFIG),
        "ptconfig": str(PRETRAIN_CONFIG),
        "tmp": str(inputs),
    }
    _prepare(case, inputs, values)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
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
