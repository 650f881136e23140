"""Default pilot names from log paths: the run's own folder, not the names tools make up.

Tools write a run's logs below folders of their own naming: HF's ``runs/<date>_<host>/``
and ``checkpoint-N/``, Lightning's ``lightning_logs/version_N/``, W&B's
``wandb/[offline-]run-<date>-<id>/`` (and ``wandb/`` above it), and generic file names
(``trainer_state.json``, ``metrics.csv``, ``history.*``, event files, ``.wandb`` files). A
pilot is named by the nearest path part that is none of those: ``hf-B``, ``hf-B/runs``,
``hf-B/runs/Dec02_00-43-09_vm`` and ``hf-B/checkpoint-200`` are all ``hf-B``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

#: Folders tools create inside a run's own folder (skipped when naming a run).
_TOOL_FOLDERS = re.compile(
    r"^(runs|lightning_logs|version_\d+|checkpoint-\d+|"
    r"[A-Z][a-z]{2}\d{2}_\d{2}-\d{2}-\d{2}_.+)$"  # HF's runs/<date>_<host>
)
_WANDB_RUN_FOLDER = re.compile(r"^(offline-)?run-\d{8}_\d{6}-\w+$")
_GENERIC_STEMS = ("trainer_state", "metrics", "history")


def _parts(log: str | Path) -> tuple[list[str], bool]:
    """The path's parts without a generic file name at the end, and whether one was dropped."""
    parts = [part for part in Path(log).parts if part not in ("", ".", "/")]
    last = parts[-1] if parts else ""
    generic = bool(Path(last).suffix) and Path(last).stem in _GENERIC_STEMS
    if "tfevents" in last or last.endswith(".wandb") or generic:
        return parts[:-1], True
    return parts, False


def default_run_name(log: str | Path) -> str:
    """A run's default name: the nearest path part that is not a name a tool made up.

    A file with a name of its own gives its stem (``pilots/a.csv`` is ``a``).
    """
    parts, dropped = _parts(log)
    if parts and not dropped and Path(parts[-1]).suffix:
        return Path(parts[-1]).stem
    for index in range(len(parts) - 1, -1, -1):
        part = parts[index]
        if _TOOL_FOLDERS.match(part) or _WANDB_RUN_FOLDER.match(part):
            continue
        # W&B's own folder: above a run folder, or given itself (it holds the runs)
        below = parts[index + 1] if index + 1 < len(parts) else None
        wandb_folder = (below is None and not dropped) or bool(
            below and _WANDB_RUN_FOLDER.match(below)
        )
        if part == "wandb" and wandb_folder:
            continue
        return part
    return Path(log).stem or Path(log).name


def default_run_names(logs: Sequence[str | Path]) -> list[str]:
    """Default names of several runs, made unique where they would clash.

    Runs whose default name clashes (two ``lightning_logs/version_N`` of one project, two
    HF ``runs/<date>_<host>`` of one output dir) get the path parts that tell them apart
    appended: ``proj/version_0``, ``proj/version_1``.
    """
    names = [default_run_name(log) for log in logs]
    for name in set(names):
        group = [index for index, other in enumerate(names) if other == name]
        if len(group) < 2:
            continue
        parts = [_parts(logs[index])[0] for index in group]
        shared = 0
        while all(len(p) > shared for p in parts) and len({p[shared] for p in parts}) == 1:
            shared += 1
        for index, own in zip(group, parts, strict=True):
            rest = [part for part in own[shared:] if part != name]
            names[index] = "/".join([name, *rest]) if rest else name
    return names
