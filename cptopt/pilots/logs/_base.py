"""What every reader shares: the records, the column map, and mapping + validation.

A format reader only turns a file into a :class:`RawLog` (every numeric series it holds,
unvalidated, as ``(steps, values)`` arrays in file order). :func:`select` then applies a
:class:`ColumnMap` and validates the chosen series, so every format gets the same mapping
rules and the same one-line errors.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cptopt._io import decode_text, read_bytes
from cptopt._validation import MAX_STEPS
from cptopt.exceptions import InputError, param

#: Roles a series can play in a pilot run.
ROLES = ("general", "domain", "lr")
ROLE_LABELS = {"general": "general loss", "domain": "domain loss", "lr": "learning rate"}


class ColumnMap(BaseModel):
    """Which series of a log holds the step, the LR and each validation loss.

    Names are series names as the log spells them (CSV column, JSON key, TensorBoard tag,
    W&B ``<run> - <metric>`` column). Set ``lr`` to ``None`` when the log has no LR (then
    the run needs a schedule); set ``general`` or ``domain`` to ``None`` when that loss was
    not logged.

    A field you leave unset is inferred: its default name if the log has it, otherwise the
    one series whose name says ``general`` / ``domain`` (preferring names with ``loss``;
    names with ``train`` are skipped) or LR (``lr``, ``learning_rate``, ``lr-<Optimizer>``).
    Zero or several candidates for a loss is an error that lists the series the log holds;
    a field you set must name a series of the log.

    ``step`` names a column of table-shaped logs (csv, jsonl, lightning, wandb,
    wandb-history); ``trainer_state.json`` and TensorBoard carry their own step.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str = Field(default="step", description="Column/key with the optimizer step.")
    lr: str | None = Field(default="lr", description="Series with the LR of each step.")
    general: str | None = Field(default="loss_general", description="General validation loss.")
    domain: str | None = Field(default="loss_domain", description="Domain validation loss.")


@dataclass(frozen=True)
class Series:
    """A logged series: ``steps`` (int, strictly increasing), ``values`` (float), shape ``(n,)``."""

    steps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(self.steps.size)


@dataclass(frozen=True)
class LogData:
    """What a reader found in one log, after mapping and validation.

    ``format`` is the reader used, ``names`` the series chosen for each role and ``notes``
    what the reader had to decide (shown in the fit report).
    """

    source: str
    sha256: str
    lr: Series | None
    general: Series | None
    domain: Series | None
    format: str = "csv"
    names: dict[str, str | None] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: Schedule hints the log records (``max_steps`` from HF), see :class:`RawLog`.
    meta: dict[str, float] = field(default_factory=dict)
    #: Why the chosen curves are cut short, by role (``file``: it ends in a partly written
    #: record; ``general``/``domain``/``lr``: that curve ends while another goes on); also
    #: in ``notes``. A pilot is not fitted on a cut curve (``runs.run_from_log``).
    cut: dict[str, str] = field(default_factory=dict)

    @property
    def last_step(self) -> int:
        """The last step any of the mapped series reaches."""
        series = [s for s in (self.lr, self.general, self.domain) if s is not None]
        return int(max(int(s.steps[-1]) for s in series))

    @property
    def max_steps(self) -> int | None:
        """The schedule's length the log records (HF's ``max_steps``), if it does."""
        value = self.meta.get("max_steps")
        return int(value) if value else None


@dataclass(frozen=True)
class RawLog:
    """Every numeric series of one log, unvalidated (a reader's output).

    ``series`` maps a name to ``(steps, values)`` float arrays in file order (a value the
    file leaves empty is absent; a NaN the file holds stays NaN). ``aliases`` maps short
    names users may write (``general`` for HF's ``eval_general_loss``) to series names;
    ``bad`` holds, per series, a problem found while reading (e.g. a cell that is not a
    number), reported only if the series is used.
    """

    source: str
    sha256: str
    format: str
    series: dict[str, tuple[np.ndarray, np.ndarray]]
    step_name: str = "step"
    aliases: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    bad: dict[str, str] = field(default_factory=dict)
    #: Added to the file's step so that a point sits at the update it belongs to (1 for
    #: Lightning's 0-based ``step``); 0 when the file already counts updates done.
    step_offset: int = 0
    #: Runs the log holds when it holds several (TensorBoard sub-folders); their series
    #: are named ``<run>/<tag>``.
    runs: tuple[str, ...] = ()
    #: Hints about the schedule the log itself records (``max_steps`` from HF).
    meta: dict[str, float] = field(default_factory=dict)
    #: Ambiguous short names: alias -> the series it could mean (error messages).
    ambiguous: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Why the file is cut short ('' if it is not): it ends in a partly written record.
    cut: str = ""

    def names(self) -> str:
        """The series names, for error messages."""
        return ", ".join(self.series) or "none"

    def runs_hint(self) -> str:
        """How to pick one run when the log holds several ('' when it holds one)."""
        if len(self.runs) < 2:
            return ""
        example = f"{self.source.rstrip('/')}/{self.runs[-1]}"
        return (
            f"; {self.source} holds {len(self.runs)} runs ({', '.join(self.runs)}): give one "
            f"run's folder as the log (e.g. {example}) or prefix the name with its run"
        )


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (recorded in law files so a fit can be traced to its inputs).

    For a directory (TensorBoard run dir): SHA-256 over each file's relative path and hash.
    """
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
        return digest.hexdigest()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- mapping

_LR_PATTERN = re.compile(r"(^|[/_.\s-])(lr|learning_rate)($|[/_.\s-])", re.IGNORECASE)


def _is_lr_name(name: str) -> bool:
    lowered = name.lower()
    if "momentum" in lowered or "weight_decay" in lowered:
        return False
    return bool(_LR_PATTERN.search(name)) or lowered.startswith("lr-")


def _candidates(raw: RawLog, role: str) -> list[str]:
    if role == "lr":
        return [name for name in raw.series if _is_lr_name(name)]
    matches = [
        name
        for name in raw.series
        if role in name.lower() and not _is_lr_name(name) and "train" not in name.lower()
    ]
    losses = [name for name in matches if "loss" in name.lower()]
    return losses or matches


_LOADER_INDEX = re.compile(r"^(?P<base>.+)/dataloader_idx_(?P<index>\d+)$")


def suggest_loader_mapping(raw: RawLog) -> str:
    """A ``columns:`` mapping for Lightning's ``<name>/dataloader_idx_<N>`` losses ('' if none).

    Lightning appends ``/dataloader_idx_<N>`` to a name logged from several validation
    dataloaders; which index is general and which domain only the user's code knows, so the
    suggestion takes index 0 as general and 1 as domain and says so.
    """
    groups: dict[str, list[tuple[int, str]]] = {}
    for name in raw.series:
        match = _LOADER_INDEX.match(name)
        if match and not _is_lr_name(name) and "train" not in name.lower():
            groups.setdefault(match.group("base"), []).append((int(match.group("index")), name))
    losses = [base for base in groups if "loss" in base.lower()] or list(groups)
    if len(losses) != 1 or len(groups[losses[0]]) < 2:
        return ""
    ordered = [name for _, name in sorted(groups[losses[0]])]
    return f"columns: {{general: {ordered[0]}, domain: {ordered[1]}}}"


def _lookup(raw: RawLog, name: str) -> str | None:
    if name in raw.series:
        return name
    return raw.aliases.get(name)


def resolve(raw: RawLog, columns: ColumnMap, *, infer: bool = True) -> dict[str, str | None]:
    """Series name per role (``general``, ``domain``, ``lr``); see :class:`ColumnMap`.

    ``infer=False`` treats every field as set (the strict behaviour of :func:`read_csv_log`).
    """
    chosen: dict[str, str | None] = {}
    for role in ROLES:
        wanted = getattr(columns, role)
        explicit = not infer or role in columns.model_fields_set
        if explicit:
            if wanted is None:
                chosen[role] = None
                continue
            found = _lookup(raw, wanted)
            if found is None:
                if wanted in raw.ambiguous:
                    raise InputError(
                        f"{raw.source}: '{wanted}' for the {ROLE_LABELS[role]} is in several "
                        f"runs ({', '.join(raw.ambiguous[wanted])}){raw.runs_hint()}"
                    )
                raise InputError(
                    f"{raw.source}: no series '{wanted}' for the {ROLE_LABELS[role]}; "
                    f"series present: {raw.names()}{raw.runs_hint()}"
                )
            chosen[role] = found
            continue
        found = _lookup(raw, wanted) if wanted is not None else None
        if found is not None:
            chosen[role] = found
            continue
        candidates = _candidates(raw, role)
        if len(candidates) > 1:
            if raw.runs_hint():
                raise InputError(
                    f"{raw.source}: ambiguous {ROLE_LABELS[role]}: {', '.join(candidates)} "
                    f"all match{raw.runs_hint()}"
                )
            raise InputError(
                f"{raw.source}: ambiguous {ROLE_LABELS[role]}: {', '.join(candidates)} all "
                f"match; name one ({param('columns.' + role)}); series present: {raw.names()}"
            )
        chosen[role] = candidates[0] if candidates else None
    if chosen["general"] is None and chosen["domain"] is None:
        suggestion = suggest_loader_mapping(raw)
        if suggestion:
            raise InputError(
                f"{raw.source}: cannot tell which series is the general or the domain loss: "
                f"Lightning names the losses of several val dataloaders by index; map them in "
                f"the order of your val_dataloaders, e.g. {suggestion} (or "
                f"{param('columns.general/domain')})"
            )
        raise InputError(
            f"{raw.source}: cannot tell which series is the general or the domain loss; name "
            f"them ({param('columns.general/domain')}); series present: "
            f"{raw.names()}{raw.runs_hint()}"
        )
    taken = [name for name in chosen.values() if name is not None]
    if len(taken) != len(set(taken)):
        raise InputError(f"{raw.source}: one series mapped to two roles: {chosen}")
    return chosen


# --------------------------------------------------------------------------- validation


def series_problems(steps: np.ndarray, values: np.ndarray) -> list[str]:
    """Problems of one raw series, worst first (empty list: usable)."""
    problems = []
    if steps.size == 0:
        return ["no points"]
    bad_step = ~np.isfinite(steps) | (steps < 0) | (steps != np.round(steps))
    if bad_step.any():
        problems.append(f"step {steps[np.flatnonzero(bad_step)[0]]:g} is not an integer >= 0")
        return problems
    if steps.max() > MAX_STEPS:
        step = float(steps[np.flatnonzero(steps > MAX_STEPS)[0]])
        problems.append(f"step {step:.6g} is more than the longest run cptopt reads ({MAX_STEPS})")
        return problems
    nan = np.isnan(values)
    if nan.any():
        problems.append(f"NaN at step {int(steps[np.flatnonzero(nan)[0]])}")
    if (~nan & ~np.isfinite(values)).any():
        index = int(np.flatnonzero(~nan & ~np.isfinite(values))[0])
        problems.append(f"{values[index]} at step {int(steps[index])}")
    diffs = np.diff(steps)
    if (diffs == 0).any():
        problems.append(f"step {int(steps[np.flatnonzero(diffs == 0)[0]])} logged twice")
    if (diffs < 0).any():
        index = int(np.flatnonzero(diffs < 0)[0])
        problems.append(f"steps go backwards ({int(steps[index])} then {int(steps[index + 1])})")
    return problems


def _validated(raw: RawLog, name: str, role: str) -> Series:
    steps, values = raw.series[name]
    where = f"{raw.source}: series '{name}' ({ROLE_LABELS[role]})"
    problems = series_problems(steps, values)
    if name in raw.bad:
        problems.insert(0, raw.bad[name])
    if problems:
        hint = ""
        if any("twice" in p or "backwards" in p for p in problems):
            hint = " (a resumed run? keep one segment per step)"
        raise InputError(f"{where}: {problems[0]}{hint}")
    if role == "lr":
        if (values < 0).any():
            index = int(np.flatnonzero(values < 0)[0])
            raise InputError(f"{where}: LR {values[index]!r} at step {int(steps[index])} is < 0")
    elif (values <= 0).any():
        index = int(np.flatnonzero(values <= 0)[0])
        raise InputError(f"{where}: loss {values[index]!r} at step {int(steps[index])} must be > 0")
    return Series(steps.astype(np.int64), values.astype(float))


def logging_interval(series: Series) -> int:
    """The largest gap between a series' points (from step 0 to its first point too)."""
    return int(np.diff(series.steps, prepend=0).max()) if series.steps.size else 0


def cut_curves(names: dict[str, str | None], chosen: dict[str, Series | None]) -> dict[str, str]:
    """The chosen series that end while another chosen series goes on, by more than their
    own logging interval (a loss that stops at 499 while the LR goes to 1000), by role."""
    ends = {role: int(series.steps[-1]) for role, series in chosen.items() if series is not None}
    if len(ends) < 2:
        return {}
    last = max(ends, key=lambda role: ends[role])
    cut = {}
    for role, end in ends.items():
        series = chosen[role]
        assert series is not None
        if ends[last] - end > logging_interval(series):
            cut[role] = (
                f"series '{names[role]}' ({ROLE_LABELS[role]}) ends at step {end} but "
                f"'{names[last]}' goes on to step {ends[last]}: a cut log?"
            )
    return cut


def select(raw: RawLog, columns: ColumnMap | None = None, *, infer: bool = True) -> LogData:
    """Apply the mapping to a raw log and validate the chosen series.

    A log cut short (``RawLog.cut``, or a chosen curve ending while another goes on, see
    :func:`cut_curves`) is read, with a note, and flagged in ``LogData.cut``.
    """
    names = resolve(raw, columns or ColumnMap(), infer=infer)
    chosen = {
        role: _validated(raw, name, role) if name is not None else None
        for role, name in names.items()
    }
    cut = {"file": raw.cut} if raw.cut else {}
    for role, problem in cut_curves(names, chosen).items():
        cut[role] = f"{raw.source}: {problem}"
    return LogData(
        source=raw.source,
        sha256=raw.sha256,
        lr=chosen["lr"],
        general=chosen["general"],
        domain=chosen["domain"],
        format=raw.format,
        names=names,
        notes=tuple(dict.fromkeys((*raw.notes, *cut.values()))),
        meta=dict(raw.meta),
        cut=cut,
    )


# --------------------------------------------------------------------------- helpers for readers


def is_training_name(name: str) -> bool:
    """A series Lightning logs during training (``lr-<Optimizer>``, a training loss)."""
    lowered = name.lower()
    return lowered.startswith("lr-") or "train" in lowered


def hf_max_steps(value: object) -> int | None:
    """``max_steps`` of a run's HF ``TrainingArguments`` (a mapping or its JSON), if in
    ``1..MAX_STEPS`` (a larger one is ignored: it would only be a schedule hint)."""
    if isinstance(value, bytes | str):
        try:
            value = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            return None
    steps = value.get("max_steps") if isinstance(value, dict) else None
    if isinstance(steps, dict):  # W&B config items may be {"value": ...}
        steps = steps.get("value")
    if isinstance(steps, int) and not isinstance(steps, bool) and 0 < steps <= MAX_STEPS:
        return steps
    return None


def require_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"log file not found: {path}")


def to_float(value: object) -> float | None:
    """A cell or JSON value as a float; ``None`` when empty, non-numeric values are skipped."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        try:
            return float(text)
        except ValueError:
            return None
    return None


def build_series(
    points: dict[str, tuple[list[float], list[float]]],
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        name: (np.asarray(steps, dtype=float), np.asarray(values, dtype=float))
        for name, (steps, values) in points.items()
        if steps
    }


def pick_step_column(
    path: Path, header: list[str], columns: ColumnMap, defaults: tuple[str, ...]
) -> str:
    """The step column: the map's if set (or present), else the first default present."""
    if "step" in columns.model_fields_set:
        if columns.step not in header:
            raise InputError(
                f"{path}: no step column '{columns.step}'; columns present: {', '.join(header)}"
            )
        return columns.step
    for name in (columns.step, *defaults):
        if name in header:
            return name
    raise InputError(
        f"{path}: no step column (tried {', '.join(dict.fromkeys((columns.step, *defaults)))}); "
        f"name it with {param('columns.step')}; columns present: {', '.join(header)}"
    )


def reject_binary(path: Path, head: bytes, what: str = "log") -> None:
    """A one-line error when a file's first bytes hold a NUL byte (no text log does)."""
    if b"\x00" in head[:8192]:
        raise InputError(
            f"{path}: binary file, not a text {what}: give its format ({param('format:')}) "
            "or the right file"
        )


def read_text(path: Path, what: str = "log") -> str:
    """A text file's content (UTF-8, BOM dropped); a binary or undecodable file is one error line.

    Text readers (CSV, JSON, JSON lines) go through here so that a binary file given to them
    (an event file, a ``.wandb`` file, a parquet file read as CSV) fails with a one-line
    ``InputError`` instead of a ``UnicodeDecodeError``.
    """
    data = read_bytes(path, f"{what} file")
    reject_binary(path, data, what)
    hint = f": not a text {what}; give its format ({param('format:')}) or the right file"
    return decode_text(path, data, hint)
