"""Pilot manifests: the YAML file that lists the pilot logs and what logs do not hold.

A manifest gives each pilot's replay ratio, CPT schedule (or an LR column in its log) and
checkpoint, and the PT history the checkpoints come from, or ``unknown``. Paths are
relative to the manifest file. Example::

    version: 1
    tokens_per_step: 1024
    domain_tokens: 1245822         # optional: unique domain tokens (repetition discount)
    columns: {step: step, lr: lr, general: loss_general, domain: loss_domain}
    pretrain:
      log: pretrain.csv            # PT LR per step (+ PT-phase losses where logged)
      warmup_steps: 80
      checkpoints: {unannealed: 3200}
    runs:
      - {log: runs/a.csv, replay_ratio: 0.25, checkpoint: unannealed}

``pretrain: unknown`` (or ``{unknown: true, final_lr: 0.0}``) selects the black-box mode;
a run without a loss at step 0 then gets a warning (its start loss is extrapolated).

``kind: pretrain`` declares pilots that are pre-training runs from random initialisation
(:class:`~cptopt.pilots.runs.PretrainRun`): no ``pretrain:`` block, no checkpoint, no
replay ratio, one validation loss (the ``general`` role, default column ``loss``), each
run's schedule its whole pre-training schedule; ``warmup_steps:`` (per run) overrides the
warmup taken from the schedule::

    version: 1
    kind: pretrain
    runs:
      - {log: cosine_24000.csv, schedule: {family: cosine, peak_lr: 3.0e-4, steps: 24000,
         warmup_steps: 2160, min_lr: 3.0e-5}}

``schedule:`` takes cptopt's keys (:class:`~cptopt.schedules.Schedule`, ``peak_lr`` and
``steps`` may be left to the log) or a Hugging Face ``TrainingArguments``' keys
(:data:`cptopt.plan.TRAINER_KEYS`, ``learning_rate`` and ``max_steps`` may be left to the
log), run as the Trainer runs them::

    schedule: {learning_rate: 3.0e-3, lr_scheduler_type: constant_with_warmup, warmup_steps: 10}

Logs can be in any format :mod:`cptopt.pilots.logs` reads: ``format:`` (top level, per run
or for ``pretrain``) names it, ``auto`` (the default) detects it. ``columns:`` maps series
names (CSV columns, JSON keys, TensorBoard tags, ``eval_<name>_loss`` keys, W&B
``<run> - <metric>`` columns) to roles; unset roles are inferred (see ``ColumnMap``).
The per-step LR of each run follows the rule of :mod:`cptopt.pilots.runs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cptopt._progress import Progress, report
from cptopt._validation import MAX_TOKENS_PER_STEP, error_line, load_yaml_mapping, validate
from cptopt.exceptions import InputError, param
from cptopt.pilots.logs import (
    FORMATS,
    ColumnMap,
    LogData,
    LogFormat,
    default_run_names,
    read_log,
    start_loss_remark,
    torch_convention,
)
from cptopt.pilots.runs import (
    Pilots,
    PilotSet,
    PretrainHistory,
    PretrainPilots,
    Run,
    cpt_lr_from_log,
    infer_warmup,
    pretrain_run_from_log,
    run_from_log,
    shared_curve,
)
from cptopt.plan import TRAINER_KEYS, schedule_from_trainer
from cptopt.schedules import Schedule


class ScheduleSpec(BaseModel):
    """A schedule that leaves ``peak_lr`` and/or ``steps`` to the log (see the module rule).

    Same keys as :class:`~cptopt.schedules.Schedule`; :meth:`resolve` fills the missing
    ones from the log (its largest LR; the ``max_steps`` it records, else its last step),
    then validates the schedule.
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
    milestones: tuple[int, ...] | None = None
    step_factor: float | None = None

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
            values["steps"] = log.max_steps or log.last_step
            taken.append(f"steps {values['steps']}")
        schedule = validate(Schedule, values, where, ("schedule",))
        notes = ()
        if taken:
            notes = (f"{label or where}: schedule {' and '.join(taken)} taken from the log",)
        return schedule, notes


class TrainerScheduleSpec(BaseModel):
    """A schedule given with Hugging Face ``TrainingArguments`` keys (``plan.TRAINER_KEYS``).

    Mapped by :func:`cptopt.plan.schedule_from_trainer` (the keys training configs take) and
    run in PyTorch's step convention, as the Trainer's ``LambdaLR`` does: update ``s`` gets
    the scheduler's value at step ``s - 1`` (the first warmup update runs at LR 0).
    ``learning_rate`` and ``max_steps`` may be left to the log.
    """

    model_config = ConfigDict(frozen=True)

    keys: dict[str, Any]

    def resolve(
        self, log: LogData | None, where: str, label: str = ""
    ) -> tuple[np.ndarray, tuple[str, ...]]:
        """The per-update LR (PyTorch convention) and a note on what came from the log."""
        keys, taken = dict(self.keys), []
        if "learning_rate" not in keys and log is not None and log.lr is not None:
            keys["learning_rate"] = float(log.lr.values.max())
            taken.append(f"learning_rate {keys['learning_rate']:.4g}")
        if "max_steps" not in keys and log is not None:
            keys["max_steps"] = log.max_steps or log.last_step
            taken.append(f"max_steps {keys['max_steps']}")
        per_step = _torch_lr(schedule_from_trainer(keys, f"{where}: schedule"))
        notes = ()
        if taken:
            notes = (f"{label or where}: schedule {' and '.join(taken)} taken from the log",)
        return per_step, notes


def _schedule_field(value: object) -> object:
    """Route a ``schedule:`` mapping to one model, so errors name the key, not the union."""
    if not isinstance(value, dict):
        return value
    # warmup_steps is a key of both; the others say which one the user means.
    trainer = [key for key in value if key in TRAINER_KEYS and key != "warmup_steps"]
    if trainer or ("warmup_steps" in value and "family" not in value):
        if "family" in value:
            raise ValueError(
                f"give cptopt's keys (family, peak_lr, ...) or the trainer's "
                f"({', '.join(TRAINER_KEYS)}), not both (got family and {trainer[0]})"
            )
        return TrainerScheduleSpec(keys=value)
    if "family" not in value:
        raise ValueError(
            "needs 'family' (cptopt's schedule keys) or Hugging Face TrainingArguments keys "
            f"({', '.join(TRAINER_KEYS)})"
        )
    model: type[BaseModel] = Schedule if "peak_lr" in value and "steps" in value else ScheduleSpec
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ValueError(error_line("", exc, model)) from None


ScheduleField = Schedule | ScheduleSpec | TrainerScheduleSpec | None


def _resolve_schedule(
    schedule: ScheduleField, log: LogData | None, where: str, label: str = ""
) -> tuple[Schedule | np.ndarray | None, tuple[str, ...]]:
    notes: tuple[str, ...] = ()
    if isinstance(schedule, (ScheduleSpec, TrainerScheduleSpec)):
        schedule, notes = schedule.resolve(log, where, label)
    if isinstance(schedule, Schedule) and log is not None:
        notes += _convention_note(schedule, log, label or where)
    return schedule, notes


def _torch_lr(schedule: Schedule) -> np.ndarray:
    """The per-update LR of ``schedule`` run as a PyTorch scheduler runs it (update ``s`` at
    the scheduler's step ``s - 1``)."""
    start = schedule.warmup_start_lr if schedule.n_warmup > 0 else schedule.peak
    return torch_convention(schedule.lr_array(), start)


#: Log formats whose runs step a PyTorch scheduler once per update (update ``s`` at the
#: scheduler's step ``s - 1``): the HF Trainer's and Lightning's.
_TORCH_SCHEDULER_FORMATS = ("hf", "lightning")


def _convention_note(schedule: Schedule, log: LogData, label: str) -> tuple[str, ...]:
    """A note when a schedule in cptopt's keys describes an HF or Lightning run: their
    PyTorch scheduler runs every update one step later than cptopt's keys say (the warmup
    one update off), unless the logged LR follows cptopt's convention more closely."""
    if log.format not in _TORCH_SCHEDULER_FORMATS:
        return ()
    ours, theirs = schedule.lr_array(), _torch_lr(schedule)
    if np.allclose(ours, theirs, rtol=0, atol=1e-12 * float(ours.max())):
        return ()
    if log.lr is not None:
        logged = log.lr.steps[(log.lr.steps >= 1) & (log.lr.steps <= ours.size)].astype(int)
        values = log.lr.values[(log.lr.steps >= 1) & (log.lr.steps <= ours.size)]
        if logged.size and (
            np.abs(ours[logged - 1] - values).sum() < np.abs(theirs[logged - 1] - values).sum()
        ):
            return ()  # the run's own scheduler follows cptopt's convention
    change = float(ours.sum() / theirs.sum() - 1)
    return (
        f"{label}: schedule in cptopt's keys, but the {log.format} run steps a PyTorch "
        "scheduler (update s runs at its step s - 1), so the warmup runs one update later "
        f"than written (S1 {change:+.2%} against the run); give the trainer's keys "
        f"({', '.join(TRAINER_KEYS[:4])}) for its exact schedule",
    )


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

    _schedule = field_validator("schedule", mode="before")(_schedule_field)


class RunSpec(BaseModel):
    """One pilot run of a manifest."""

    model_config = ConfigDict(extra="forbid")

    log: str
    format: LogFormat | None = Field(default=None, description="Log format (default: auto).")
    name: str | None = None
    replay_ratio: float | None = Field(
        default=None, ge=0, le=1, description="CPT runs (required); not for pre-training runs."
    )
    checkpoint: str | None = None
    warmup_steps: int | None = Field(
        default=None, ge=0, description="Pre-training runs: warmup (default: the schedule's)."
    )
    schedule: ScheduleField = Field(default=None, union_mode="left_to_right")
    columns: ColumnMap | None = None
    tokens_per_step: int | None = Field(default=None, gt=0, le=MAX_TOKENS_PER_STEP)
    replicate: bool = Field(
        default=False,
        description="A separate run even where its curves coincide with another entry's "
        "(a deterministic replicate); without it such entries are one run listed twice.",
    )

    _schedule = field_validator("schedule", mode="before")(_schedule_field)


class PilotManifest(BaseModel):
    """A pilot manifest file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    kind: Literal["cpt", "pretrain"] = Field(
        default="cpt", description="cpt: CPT runs from PT checkpoints; pretrain: PT runs."
    )
    format: LogFormat = Field(default="auto", description=f"Log format: {', '.join(FORMATS)}.")
    columns: ColumnMap = Field(default_factory=ColumnMap)
    tokens_per_step: int | None = Field(default=None, gt=0, le=MAX_TOKENS_PER_STEP)
    domain_tokens: float | None = Field(
        default=None,
        gt=0,
        description="Unique tokens of the domain training corpus: CPT steps past one epoch "
        "of it count less in the domain law (data-constrained scaling).",
    )
    pretrain: PretrainSpec | None = None
    runs: list[RunSpec] = Field(min_length=1)

    @field_validator("pretrain", mode="before")
    @classmethod
    def _unknown_shorthand(cls, value: object) -> object:
        return {"unknown": True} if value == "unknown" else value


def _load_pretrain(
    spec: PretrainSpec, path: Path, default_columns: ColumnMap, default_format: str = "auto"
) -> PretrainHistory:
    """The PT history of the manifest at ``path`` (its log read relative to it)."""
    where = f"{path}: pretrain"
    if spec.unknown:
        if spec.log or spec.schedule or spec.checkpoints:
            raise InputError(f"{where}: 'unknown: true' excludes 'log', 'schedule', 'checkpoints'")
        return PretrainHistory(lr=None, final_lr=spec.final_lr)
    if spec.log is None and spec.schedule is None:
        raise InputError(f"{where}: give a 'log' with an LR column, a 'schedule', or 'unknown'")
    if not spec.checkpoints:
        raise InputError(f"{where}: 'checkpoints' (name: PT step) is required when PT is known")
    log = None
    if spec.log:
        log = read_log(
            path.parent / spec.log, spec.columns or default_columns, spec.format or default_format
        )
    schedule, _ = _resolve_schedule(spec.schedule, log, where)
    if schedule is not None:
        lr = schedule.lr_array() if isinstance(schedule, Schedule) else schedule
    else:
        assert log is not None
        lr, _, _ = cpt_lr_from_log(log.lr, None, log.last_step, log.source, log.max_steps)
    for name, step in spec.checkpoints.items():
        if not 0 < step <= lr.size:
            raise InputError(
                f"{where}: checkpoint '{name}' at step {step} is outside the PT schedule "
                f"(1..{lr.size})"
            )
    warmup = spec.warmup_steps if spec.warmup_steps is not None else infer_warmup(lr)
    return PretrainHistory(
        lr=lr,
        warmup_steps=warmup,
        checkpoints=dict(spec.checkpoints),
        general=log.general if log else None,
        domain=log.domain if log else None,
        source=log.source if log else "",
        sha256=log.sha256 if log else "",
        notes=log.notes if log else (),
    )


def _start_loss_notes(run: Run) -> tuple[str, ...]:
    """Black-box mode: a note when a loss has no point at step 0 (its start is extrapolated)."""
    remark = start_loss_remark(run.general, run.domain)
    return (f"{run.name}: {remark}",) if remark else ()


def _check_once(
    manifest: Path,
    seen: dict[object, tuple[str, str]],
    key: object,
    run: tuple[str, str],
    what: str,
) -> None:
    """A one-line error when two pilots (``run``: name, log) read one log (``key``: its
    resolved path)."""
    if key in seen:
        (name, log), (other, other_log) = seen[key], run
        raise InputError(
            f"{manifest}: runs '{name}' ({log}) and '{other}' ({other_log}) read {what}: "
            "list each pilot once"
        )
    seen[key] = run


#: How two entries whose curves coincide are told (``runs.shared_curve``).
_SAME_RUN = {
    "sha256": "read identical files (same SHA-256)",
    "same": "hold the same curves (steps and losses), one run read from two places",
    "prefix": "hold curves of which one is the start of the other, a checkpoint of one run",
}


def _check_distinct(
    manifest: Path, read: list[tuple[RunSpec, str, LogData]], spec: RunSpec, name: str, log: LogData
) -> None:
    """A one-line error when a pilot's curves coincide with an earlier one's (``read``),
    unless either entry says it is a ``replicate``: one run is fitted once, whatever files
    it is read from (HF's ``trainer_state.json``, a ``checkpoint-N/`` copy, its event
    files), or it would count twice in the fit and leak into its own leave-one-out CV."""
    for other_spec, other_name, other_log in read:
        if spec.replicate or other_spec.replicate:
            continue
        how = "sha256" if log.sha256 == other_log.sha256 else shared_curve(log, other_log)
        if how:
            raise InputError(
                f"{manifest}: runs '{other_name}' ({other_spec.log}) and '{name}' ({spec.log}) "
                f"{_SAME_RUN[how]}: list each pilot once (a separate run with identical "
                "numbers: 'replicate: true')"
            )


#: The pilots of each manifest ``kind``, in words.
KIND_WORDS = {"cpt": "CPT runs", "pretrain": "pre-training pilots"}


def read_manifest(path: str | Path) -> PilotManifest:
    """A manifest as written: validated, its logs not read (they can be slow to read)."""
    return validate(PilotManifest, load_yaml_mapping(path), str(path))


def load_manifest(
    path: str | Path,
    kind: Literal["cpt", "pretrain"] | None = None,
    name: str = "pilots",
    progress: Progress | None = None,
) -> Pilots:
    """Read and validate a pilot manifest; every problem is a one-line ``InputError``.

    A :class:`PilotSet` of CPT runs, or with ``kind: pretrain`` the
    :class:`PretrainPilots` of pre-training runs. ``kind``: the pilots the caller needs
    (another kind is an error naming the parameter ``name``, before any log is read).
    ``progress`` hears of each log read (:mod:`cptopt._progress`).
    """
    manifest = read_manifest(path)
    if kind is not None and manifest.kind != kind:
        raise InputError(
            f"{param(name)}: {KIND_WORDS[manifest.kind]} (kind: {manifest.kind}), not "
            f"{KIND_WORDS[kind]}"
        )
    return load_pilots(manifest, path, progress)


def load_pilots(
    manifest: PilotManifest, path: str | Path, progress: Progress | None = None
) -> Pilots:
    """The pilots of a manifest read with :func:`read_manifest` from ``path`` (the logs are
    read relative to it): its kind's pilot set. ``progress`` hears of each log read."""
    return _PILOTS[manifest.kind](manifest, Path(path), progress)


def _load_cpt_pilots(
    manifest: PilotManifest, path: Path, progress: Progress | None = None
) -> PilotSet:
    """The runs of a CPT manifest (see the module docstring)."""
    if manifest.pretrain is None:
        raise InputError(
            f"{path}: pretrain: required for CPT pilots (the checkpoints' PT history, or "
            "'pretrain: unknown'); for pilots that are pre-training runs set 'kind: pretrain'"
        )
    for spec in manifest.runs:
        if spec.replay_ratio is None:
            raise InputError(
                f"{path}: run '{spec.log}': replay_ratio: required for a CPT run (for "
                "pre-training runs set 'kind: pretrain')"
            )
        if spec.warmup_steps is not None:
            raise InputError(
                f"{path}: run '{spec.log}': warmup_steps: only for pre-training runs (kind: "
                "pretrain); a CPT run's warmup is in its schedule"
            )
    report(progress, "reading the pre-training history", 0, 1)
    pretrain = _load_pretrain(manifest.pretrain, path, manifest.columns, manifest.format)
    report(progress, "reading the pre-training history", 1, 1)
    runs = []
    for spec, name, log, schedule, schedule_notes in _read_runs(
        manifest, path, lambda spec, where: spec.columns or manifest.columns, progress
    ):
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
            replay_ratio=spec.replay_ratio,  # type: ignore[arg-type]
            checkpoint=checkpoint,
            schedule=schedule,
            tokens_per_step=spec.tokens_per_step or manifest.tokens_per_step,
        )
        if schedule_notes:
            run = replace(run, notes=run.notes + schedule_notes)
        if not pretrain.known:
            run = replace(run, notes=run.notes + _start_loss_notes(run))
        if pretrain.notes:
            run = replace(run, notes=tuple(dict.fromkeys(pretrain.notes + run.notes)))
        runs.append(run)
    return PilotSet(
        tuple(runs), pretrain, manifest.pretrain.use_points, str(path), manifest.domain_tokens
    )


def _read_runs(
    manifest: PilotManifest,
    path: Path,
    columns_of: Callable[[RunSpec, str], ColumnMap],
    progress: Progress | None = None,
) -> Iterator[tuple[RunSpec, str, LogData, Schedule | np.ndarray | None, tuple[str, ...]]]:
    """Each run of a manifest: its spec, name, log (read with ``columns_of(spec, where)``),
    resolved schedule and the notes on what the schedule took from the log. A log listed
    twice (same path), or one run listed twice (identical files, or curves that coincide:
    :func:`_check_distinct`), is an error. ``progress`` hears of each log read."""
    base = path.parent
    names = default_run_names([spec.log for spec in manifest.runs])
    seen: dict[object, tuple[str, str]] = {}
    read: list[tuple[RunSpec, str, LogData]] = []
    report(progress, "reading logs", 0, len(manifest.runs))
    for index, (spec, default_name) in enumerate(zip(manifest.runs, names, strict=True)):
        name = spec.name or default_name
        where = f"{path}: run '{spec.log}'"
        _check_once(path, seen, (base / spec.log).resolve(), (name, spec.log), "the same file")
        log = read_log(base / spec.log, columns_of(spec, where), spec.format or manifest.format)
        _check_distinct(path, read, spec, name, log)
        read.append((spec, name, log))
        schedule, schedule_notes = _resolve_schedule(spec.schedule, log, where, name)
        report(progress, "reading logs", index + 1, len(manifest.runs))
        yield spec, name, log, schedule, schedule_notes


#: The default column of a pre-training run's one validation loss.
PRETRAIN_LOSS_COLUMN = "loss"


def pretrain_columns(columns: ColumnMap, where: str) -> ColumnMap:
    """The column map of a pre-training log: one loss (``general``, default ``loss``), no
    domain loss."""
    given = columns.model_fields_set
    if "domain" in given and columns.domain is not None:
        raise InputError(
            f"{where}: columns.domain: pre-training pilots have one validation loss; map it "
            f"with columns.general (default column '{PRETRAIN_LOSS_COLUMN}')"
        )
    values = {name: getattr(columns, name) for name in given}
    values.setdefault("general", PRETRAIN_LOSS_COLUMN)
    if values["general"] is None:
        raise InputError(f"{where}: columns.general: a pre-training run needs its loss column")
    return ColumnMap(**{**values, "domain": None})


def _load_pretrain_pilots(
    manifest: PilotManifest, path: Path, progress: Progress | None = None
) -> PretrainPilots:
    """The runs of a ``kind: pretrain`` manifest (see the module docstring)."""
    for key in ("pretrain", "domain_tokens"):
        if getattr(manifest, key) is not None:
            raise InputError(
                f"{path}: {key}: not for pre-training pilots (kind: pretrain): the runs are "
                "the pre-training runs themselves"
            )
    for spec in manifest.runs:
        for key in ("replay_ratio", "checkpoint"):
            if getattr(spec, key) is not None:
                raise InputError(
                    f"{path}: run '{spec.log}': {key}: a pre-training run has no "
                    f"{key.replace('_', ' ')} (kind: pretrain)"
                )
    runs = []
    for spec, name, log, schedule, schedule_notes in _read_runs(
        manifest,
        path,
        lambda spec, where: pretrain_columns(spec.columns or manifest.columns, where),
        progress,
    ):
        run = pretrain_run_from_log(
            log,
            name=name,
            schedule=schedule,
            warmup_steps=spec.warmup_steps,
            tokens_per_step=spec.tokens_per_step or manifest.tokens_per_step,
        )
        runs.append(replace(run, notes=run.notes + schedule_notes))
    return PretrainPilots(tuple(runs), str(path))


#: How each manifest ``kind`` becomes its pilot set.
_PILOTS: dict[str, Callable[[PilotManifest, Path, Progress | None], Pilots]] = {
    "cpt": _load_cpt_pilots,
    "pretrain": _load_pretrain_pilots,
}
