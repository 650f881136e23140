"""Pilot runs: validated per-step LR and loss curves, plus the checkpoint's PT history.

A pilot manifest (YAML) lists the pilot logs and what the logs themselves do not hold:
replay ratio, CPT schedule (or an LR column), and the PT history or ``unknown``.
Paths in a manifest are relative to the manifest file. Example::

    version: 1
    tokens_per_step: 1024
    columns: {step: step, lr: lr, general: loss_general, domain: loss_domain}
    pretrain:
      log: pretrain.csv            # PT LR per step (+ PT-phase losses where logged)
      warmup_steps: 80
      checkpoints: {unannealed: 3200}
    runs:
      - {log: runs/a.csv, replay_ratio: 0.25, checkpoint: unannealed}

``pretrain: unknown`` (or ``{unknown: true, final_lr: 0.0}``) selects the black-box mode.

Logs can be in any format :mod:`cptopt.logs` reads: ``format:`` (top level, per run or
for ``pretrain``) names it, ``auto`` (the default) detects it. ``columns:`` maps series
names (CSV columns, JSON keys, TensorBoard tags, ``eval_<name>_loss`` keys, W&B
``<run> - <metric>`` columns) to roles; unset roles are inferred (see ``ColumnMap``).

Per-step LR rule (the areas S1, S2 need the LR of every step):

1. A ``schedule`` in the manifest wins. It may leave out ``peak_lr`` and ``steps``: they
   are then taken from the log (largest logged LR; last logged step). Logged LR points must
   agree with it (within 1 % of the peak, allowing a one-step offset, since frameworks log
   the LR before or after the scheduler step); otherwise it is an error.
2. Otherwise the log's LR series is used; where it skips steps, the LR is interpolated
   linearly between logged steps (held constant before the first and after the last
   logged point), and the run carries a note saying so, shown in the fit report.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cptopt._validation import load_yaml_mapping, pydantic_error_line
from cptopt.exceptions import InputError
from cptopt.law.areas import CheckpointState, PretrainAreas, pretrain_areas, unknown_checkpoint
from cptopt.pilots.logs import FORMATS, ColumnMap, LogData, LogFormat, Series, read_log
from cptopt.schedules import Schedule

VALIDATION_SETS = ("general", "domain")


@dataclass(frozen=True)
class Run:
    """One CPT pilot run.

    ``cpt_lr`` has shape ``(steps,)`` (entry ``s-1`` = LR of update ``s``); ``general`` and
    ``domain`` are loss series at CPT steps (0 = the checkpoint), either may be ``None``.
    """

    name: str
    cpt_lr: np.ndarray
    general: Series | None
    domain: Series | None
    replay_ratio: float
    checkpoint: str = "checkpoint"
    tokens_per_step: int | None = None
    source: str = ""
    sha256: str = ""
    notes: tuple[str, ...] = ()

    @property
    def steps(self) -> int:
        return int(self.cpt_lr.size)

    @property
    def peak_lr(self) -> float:
        return float(self.cpt_lr.max())

    def curve(self, validation_set: str) -> Series | None:
        return self.general if validation_set == "general" else self.domain


@dataclass(frozen=True)
class PretrainHistory:
    """The PT run the checkpoints come from; ``lr is None`` means unknown (black-box mode)."""

    lr: np.ndarray | None
    warmup_steps: int = 0
    checkpoints: dict[str, int] = field(default_factory=dict)
    general: Series | None = None
    domain: Series | None = None
    final_lr: float = 0.0
    source: str = ""
    sha256: str = ""

    @property
    def known(self) -> bool:
        return self.lr is not None

    def areas(self, lam: float) -> PretrainAreas:
        if self.lr is None:
            raise InputError("the pre-training history is unknown: no PT areas to compute")
        return pretrain_areas(self.lr, self.warmup_steps, lam)

    def checkpoint_state(self, name: str, lam: float) -> CheckpointState:
        """State at checkpoint ``name`` (black-box: the unknown state)."""
        if self.lr is None:
            return unknown_checkpoint(self.final_lr)
        if name not in self.checkpoints:
            known = ", ".join(self.checkpoints) or "none"
            raise InputError(f"unknown checkpoint '{name}'; the PT history defines: {known}")
        return self.areas(lam).state_at(self.checkpoints[name])

    def curve(self, validation_set: str) -> Series | None:
        return self.general if validation_set == "general" else self.domain


@dataclass(frozen=True)
class PilotSet:
    """Everything a fit needs: the pilot runs and their PT history."""

    runs: tuple[Run, ...]
    pretrain: PretrainHistory
    use_pretrain_points: bool = True
    source: str = ""

    def __post_init__(self) -> None:
        if not self.runs:
            raise InputError("no pilot runs given")
        names = [run.name for run in self.runs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InputError(f"pilot run names must be unique, repeated: {', '.join(duplicates)}")
        if not self.pretrain.known:
            checkpoints = {run.checkpoint for run in self.runs}
            if len(checkpoints) > 1:
                raise InputError(
                    "with an unknown PT history all pilots must start from one checkpoint, "
                    f"got {len(checkpoints)}: {', '.join(sorted(checkpoints))}"
                )

    def subset(self, names: list[str] | tuple[str, ...]) -> PilotSet:
        """The same pilot set restricted to the runs named (order kept)."""
        chosen = tuple(run for run in self.runs if run.name in set(names))
        return PilotSet(chosen, self.pretrain, self.use_pretrain_points, self.source)


def cpt_lr_from_log(
    lr: Series | None, schedule: Schedule | None, last_eval_step: int, where: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per-step CPT LR of a run (see the module docstring for the rule) and notes."""
    if schedule is not None:
        per_step = schedule.lr_array()
        if lr is not None:
            check_schedule_matches_log(per_step, lr, where)
        return per_step, ()
    if lr is None:
        raise InputError(f"{where}: no LR column and no 'schedule': cannot compute the areas")
    steps, values = lr.steps, lr.values
    keep = steps >= 1
    steps, values = steps[keep], values[keep]
    if steps.size == 0:
        raise InputError(f"{where}: the LR column has no value at steps >= 1")
    total = int(max(steps[-1], last_eval_step))
    notes: tuple[str, ...] = ()
    if steps.size == total and steps[0] == 1:
        per_step = values
    else:
        grid = np.arange(1, total + 1)
        per_step = np.interp(grid, steps, values)
        notes = (f"LR logged at {steps.size} of {total} steps: interpolated linearly",)
    if per_step.max() <= 0:
        raise InputError(f"{where}: LR <= 0 at every step: the peak LR must be > 0")
    return per_step, notes


#: Logged LR and schedule agree when within this share of the peak LR.
SCHEDULE_LR_TOLERANCE = 0.01


def check_schedule_matches_log(per_step: np.ndarray, lr: Series, where: str) -> None:
    """Raise if a logged LR point disagrees with the schedule (one-step offsets allowed).

    ``per_step[s - 1]`` is the LR of update ``s``; a point logged at step ``s`` matches if
    the schedule has that LR at step ``s - 1``, ``s`` or ``s + 1`` (step 0 counts as LR 0
    or the first scheduled LR, for logs that record the LR before the first update).
    """
    padded = np.concatenate(([0.0, per_step[0]], per_step, [per_step[-1]]))
    tolerance = SCHEDULE_LR_TOLERANCE * float(per_step.max())
    inside = lr.steps <= per_step.size
    steps, values = lr.steps[inside].astype(int), lr.values[inside]
    # padded[s + k] is the schedule's LR at step s - 1 + k (k = 0, 1, 2)
    windows = np.stack([padded[steps + k] for k in range(3)])
    bad = np.flatnonzero(np.abs(windows - values).min(axis=0) > tolerance)
    if bad.size:
        step, value = int(steps[bad[0]]), float(values[bad[0]])
        expected = per_step[min(max(step, 1), per_step.size) - 1]
        raise InputError(
            f"{where}: the logged LR at step {step} is {value:.4g} but the schedule "
            f"gives {expected:.4g}; fix the schedule (or drop it to use the logged LR)"
        )


def run_from_log(
    log: LogData,
    *,
    name: str,
    replay_ratio: float,
    checkpoint: str = "checkpoint",
    schedule: Schedule | None = None,
    tokens_per_step: int | None = None,
) -> Run:
    """Build a :class:`Run` from reader output plus the metadata logs do not hold."""
    last_eval = max(
        int(series.steps[-1]) for series in (log.general, log.domain) if series is not None
    )
    cpt_lr, notes = cpt_lr_from_log(log.lr, schedule, last_eval, log.source)
    if last_eval > cpt_lr.size:
        raise InputError(
            f"{log.source}: losses are logged up to step {last_eval} but the schedule has "
            f"{cpt_lr.size} steps"
        )
    return Run(
        name=name,
        cpt_lr=cpt_lr,
        general=log.general,
        domain=log.domain,
        replay_ratio=replay_ratio,
        checkpoint=checkpoint,
        tokens_per_step=tokens_per_step,
        source=log.source,
        sha256=log.sha256,
        notes=tuple(log.notes) + notes,
    )


# --------------------------------------------------------------------------- manifest


class ScheduleSpec(BaseModel):
    """A schedule that leaves ``peak_lr`` and/or ``steps`` to the log (see the module rule).

    Same keys as :class:`~cptopt.schedules.Schedule`; :meth:`resolve` fills the missing
    ones from the log's LR series and last logged step, then validates the schedule.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: str
    peak_lr: float | None = None
    steps: int | None = None
    warmup_steps: int | None = None
    warmup_fraction: float | None = None
    warmup_start_lr: float = 0.0
    decay_fraction: float | None = None
    decay_start_step: int | None = None
    decay_shape: str = "linear"
    min_lr: float = 0.0
    lr: tuple[float, ...] | None = None

    def resolve(
        self, log: LogData | None, where: str, label: str = ""
    ) -> tuple[Schedule, tuple[str, ...]]:
        """The full :class:`Schedule` and a note (prefixed ``label``) on what came from the log."""
        values: dict[str, Any] = self.model_dump(exclude_unset=True)
        taken = []
        if self.family != "custom" and self.peak_lr is None:
            if log is None or log.lr is None:
                raise InputError(f"{where}: schedule has no 'peak_lr' and the log has no LR")
            values["peak_lr"] = float(log.lr.values.max())
            taken.append(f"peak_lr {values['peak_lr']:.4g}")
        if self.family != "custom" and self.steps is None:
            if log is None:
                raise InputError(f"{where}: schedule has no 'steps' and there is no log")
            series = [s for s in (log.lr, log.general, log.domain) if s is not None]
            values["steps"] = int(max(int(s.steps[-1]) for s in series))
            taken.append(f"steps {values['steps']}")
        try:
            schedule = Schedule.model_validate(values)
        except ValidationError as exc:
            raise InputError(pydantic_error_line(f"{where}: schedule", exc)) from None
        notes = ()
        if taken:
            notes = (f"{label or where}: schedule {' and '.join(taken)} taken from the log",)
        return schedule, notes


ScheduleField = Schedule | ScheduleSpec | None


def _resolve_schedule(
    schedule: Schedule | ScheduleSpec | None, log: LogData | None, where: str, label: str = ""
) -> tuple[Schedule | None, tuple[str, ...]]:
    if isinstance(schedule, ScheduleSpec):
        return schedule.resolve(log, where, label)
    return schedule, ()


class PretrainSpec(BaseModel):
    """The PT history: a log with a per-step LR column, a schedule, or ``unknown: true``."""

    model_config = ConfigDict(extra="forbid")

    unknown: bool = Field(default=False, description="Black-box mode (paper Sec. 6).")
    final_lr: float = Field(default=0.0, ge=0, description="Unknown mode: PT's final LR.")
    log: str | None = Field(default=None, description="PT log (per-step LR, PT-phase losses).")
    format: LogFormat | None = Field(default=None, description="PT log format (default: auto).")
    columns: ColumnMap | None = None
    schedule: ScheduleField = Field(
        default=None,
        union_mode="left_to_right",
        description="PT schedule (instead of a log LR).",
    )
    warmup_steps: int | None = Field(
        default=None, ge=0, description="PT warmup; inferred as the steps before the peak LR."
    )
    checkpoints: dict[str, int] = Field(
        default_factory=dict, description="Named checkpoints -> PT step."
    )
    use_points: bool = Field(default=True, description="Pool PT-phase loss points in the fit.")


class RunSpec(BaseModel):
    """One pilot run of a manifest."""

    model_config = ConfigDict(extra="forbid")

    log: str
    format: LogFormat | None = Field(default=None, description="Log format (default: auto).")
    name: str | None = None
    replay_ratio: float = Field(ge=0, le=1)
    checkpoint: str | None = None
    schedule: ScheduleField = Field(default=None, union_mode="left_to_right")
    columns: ColumnMap | None = None
    tokens_per_step: int | None = Field(default=None, gt=0)


class PilotManifest(BaseModel):
    """A pilot manifest file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    format: LogFormat = Field(default="auto", description=f"Log format: {', '.join(FORMATS)}.")
    columns: ColumnMap = Field(default_factory=ColumnMap)
    tokens_per_step: int | None = Field(default=None, gt=0)
    pretrain: PretrainSpec
    runs: list[RunSpec] = Field(min_length=1)

    @field_validator("pretrain", mode="before")
    @classmethod
    def _unknown_shorthand(cls, value: object) -> object:
        return {"unknown": True} if value == "unknown" else value


def _infer_warmup(lr: np.ndarray) -> int:
    """Steps before the LR first reaches its maximum (0 if it starts there)."""
    return int(np.argmax(lr >= lr.max()))


def _load_pretrain(
    spec: PretrainSpec, base: Path, default_columns: ColumnMap, default_format: str = "auto"
) -> PretrainHistory:
    if spec.unknown:
        if spec.log or spec.schedule or spec.checkpoints:
            raise InputError("pretrain: 'unknown: true' excludes 'log', 'schedule', 'checkpoints'")
        return PretrainHistory(lr=None, final_lr=spec.final_lr)
    if spec.log is None and spec.schedule is None:
        raise InputError("pretrain: give a 'log' with an LR column, a 'schedule', or 'unknown'")
    if not spec.checkpoints:
        raise InputError("pretrain: 'checkpoints' (name: PT step) is required when PT is known")
    log = None
    if spec.log:
        log = read_log(
            base / spec.log, spec.columns or default_columns, spec.format or default_format
        )
    schedule, _ = _resolve_schedule(spec.schedule, log, "pretrain")
    if schedule is not None:
        lr = schedule.lr_array()
    else:
        assert log is not None
        last = max(int(s.steps[-1]) for s in (log.lr, log.general, log.domain) if s is not None)
        lr, _ = cpt_lr_from_log(log.lr, None, last, log.source)
    for name, step in spec.checkpoints.items():
        if not 0 < step <= lr.size:
            raise InputError(
                f"pretrain: checkpoint '{name}' at step {step} is outside the PT schedule "
                f"(1..{lr.size})"
            )
    warmup = spec.warmup_steps if spec.warmup_steps is not None else _infer_warmup(lr)
    return PretrainHistory(
        lr=lr,
        warmup_steps=warmup,
        checkpoints=dict(spec.checkpoints),
        general=log.general if log else None,
        domain=log.domain if log else None,
        source=log.source if log else "",
        sha256=log.sha256 if log else "",
    )


def _run_name(log: str) -> str:
    """A run's default name: the log's stem, or its directory's name for generic file names."""
    path = Path(log)
    generic = {"trainer_state", "metrics", "history"}
    if path.stem in generic or path.name.startswith("events.out.tfevents") or not path.suffix:
        parent = path.parent if path.suffix else path
        if parent.name.startswith("checkpoint-") or parent.name.startswith("version_"):
            parent = parent.parent if parent.parent.name else parent
        return parent.name or path.stem
    return path.stem


def load_manifest(path: str | Path) -> PilotSet:
    """Read and validate a pilot manifest; every problem is a one-line ``InputError``."""
    path = Path(path)
    data = load_yaml_mapping(str(path))
    try:
        manifest = PilotManifest.model_validate(data)
    except ValidationError as exc:
        raise InputError(pydantic_error_line(str(path), exc)) from None
    base = path.parent
    pretrain = _load_pretrain(manifest.pretrain, base, manifest.columns, manifest.format)
    runs = []
    for spec in manifest.runs:
        log = read_log(
            base / spec.log, spec.columns or manifest.columns, spec.format or manifest.format
        )
        name = spec.name or _run_name(spec.log)
        schedule, schedule_notes = _resolve_schedule(spec.schedule, log, log.source, name)
        checkpoint = spec.checkpoint
        if checkpoint is None:
            if pretrain.known and len(pretrain.checkpoints) != 1:
                raise InputError(
                    f"{path}: run '{spec.log}' needs 'checkpoint' (one of "
                    f"{', '.join(pretrain.checkpoints)})"
                )
            checkpoint = next(iter(pretrain.checkpoints), "checkpoint")
        elif pretrain.known and checkpoint not in pretrain.checkpoints:
            raise InputError(
                f"{path}: run '{spec.log}' names checkpoint '{checkpoint}'; defined: "
                f"{', '.join(pretrain.checkpoints)}"
            )
        run = run_from_log(
            log,
            name=name,
            replay_ratio=spec.replay_ratio,
            checkpoint=checkpoint,
            schedule=schedule,
            tokens_per_step=spec.tokens_per_step or manifest.tokens_per_step,
        )
        if schedule_notes:
            run = replace(run, notes=run.notes + schedule_notes)
        runs.append(run)
    return PilotSet(tuple(runs), pretrain, manifest.pretrain.use_points, str(path))
