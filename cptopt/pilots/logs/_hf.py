"""Hugging Face Trainer ``trainer_state.json`` (also written by axolotl, TRL, ...).

``log_history`` is a list of rows. Train rows carry ``step``, ``learning_rate``, ``loss``
(and ``grad_norm``, ``epoch``) every ``logging_steps``; eval rows carry ``eval_loss``, or
``eval_<name>_loss`` per set when ``eval_dataset`` is a dict. The last row is a summary
(``train_runtime``, ``total_flos``, ``train_loss``): it is not a logged point and is skipped.
Entries without a numeric ``step`` are skipped and counted (a note); a value that is not a
number is an error if its series is used. ``eval_<name>_loss`` may be named ``<name>`` in a mapping.

Step convention: ``step`` is ``global_step``, the updates done, so a loss at step ``s`` was
measured after ``s`` updates and the LR at step ``s`` is the LR of update ``s`` (checked
against the LR each update used with transformers 5.24; older releases, before
huggingface/transformers PR #36973 of March 2025, logged the LR after the scheduler step,
i.e. that of update ``s + 1``; the schedule check allows that offset). ``max_steps`` of the
state is kept as a hint for matching the logged LR points to a schedule.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from cptopt.exceptions import InputError
from cptopt.pilots.logs._base import (
    RawLog,
    build_series,
    file_sha256,
    hf_max_steps,
    read_text,
    require_file,
    to_float,
)
from cptopt.pilots.logs._table import check_rows

#: Keys of the final summary row (``Trainer.train`` appends it once training ends).
SUMMARY_KEYS = ("train_runtime", "total_flos", "train_samples_per_second")
#: Keys that are not series.
NOT_SERIES = ("step", "epoch")

_EVAL_LOSS = re.compile(r"^eval_(?P<name>.+)_loss$")


def find_trainer_state(path: Path) -> Path | None:
    """``trainer_state.json`` in a run or checkpoint dir (the latest ``checkpoint-N``)."""
    if path.is_file():
        return path
    direct = path / "trainer_state.json"
    if direct.is_file():
        return direct
    checkpoints = []
    for candidate in path.glob("checkpoint-*/trainer_state.json"):
        suffix = candidate.parent.name.split("-", 1)[1]
        if suffix.isdigit():
            checkpoints.append((int(suffix), candidate))
    return max(checkpoints)[1] if checkpoints else None


def read_trainer_state(path: Path) -> RawLog:
    """Every numeric key of ``log_history`` as a series over ``step``."""
    require_file(path)
    file = find_trainer_state(path)
    if file is None:
        raise InputError(f"{path}: no trainer_state.json (nor checkpoint-*/trainer_state.json)")
    text = read_text(file, "trainer_state.json")
    if not text.strip():
        raise InputError(f"{file}: file is empty")
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{file}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}; "
            "truncated file?)"
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise InputError(f"{file}: no 'log_history' list: not a Hugging Face trainer_state.json")
    history = state["log_history"]
    if not history:
        raise InputError(f"{file}: 'log_history' is empty (nothing was logged)")
    check_rows(file, len(history), "log_history entries")
    points, bad, skipped = _history_points(file, history)
    notes = []
    if skipped:
        index = skipped[0]
        keys = ", ".join(key for key in history[index] if key != "step")
        notes.append(
            f"{file}: {len(skipped)} log_history entries without a numeric 'step' skipped "
            f"(entry {index}: step {history[index].get('step')!r:.40}; {keys or 'no keys'})"
        )
    aliases = {}
    for key in points:
        match = _EVAL_LOSS.match(key)
        if match:
            aliases[match.group("name")] = key
    max_steps = hf_max_steps(state)
    meta = {"max_steps": float(max_steps)} if max_steps else {}
    return RawLog(
        source=str(file),
        sha256=file_sha256(file),
        format="hf",
        series=build_series(points),
        step_name="step",
        aliases=aliases,
        notes=tuple(notes),
        meta=meta,
        bad={key: problem for key, problem in bad.items() if key in points},
    )


def _history_points(
    file: Path, history: list
) -> tuple[dict[str, tuple[list[float], list[float]]], dict[str, str], list[int]]:
    """Every numeric key of ``log_history`` over ``step``; per key the first value that is
    not a number (reported if the series is used); the entries without a numeric step."""
    points: dict[str, tuple[list[float], list[float]]] = {}
    bad: dict[str, str] = {}
    skipped: list[int] = []
    for index, row in enumerate(history):
        if not isinstance(row, dict):
            raise InputError(f"{file}: log_history holds a {type(row).__name__}, not an object")
        if any(key in row for key in SUMMARY_KEYS):
            continue
        step = to_float(row.get("step"))
        if step is None:
            skipped.append(index)
            continue
        for key, value in row.items():
            number = to_float(value) if not isinstance(value, str) else None
            if key in NOT_SERIES:
                continue
            if number is None:
                if value is not None and key not in bad:
                    bad[key] = f"log_history entry {index} == {value!r:.60}, not a number"
                continue
            steps, values = points.setdefault(key, ([], []))
            steps.append(step)
            values.append(number)
    return points, bad, skipped
