"""Pilot runs: validated per-step LR and loss curves, plus the checkpoint's PT history.

A :class:`Run` is one CPT pilot as the fit sees it: the LR of every CPT update, the general
and domain loss curves, the replay ratio and the checkpoint it started from. A
:class:`PretrainHistory` is the pre-training the checkpoints come from (or unknown: the
black-box mode of docs/law.md). A :class:`PilotSet` is what a fit needs: both together.
Manifests (:mod:`cptopt.pilots.manifest`) build them from logs.

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

import numpy as np

from cptopt.exceptions import InputError
from cptopt.pilots.logs import LogData, Series
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

    def checkpoint_step(self, name: str) -> int:
        """The PT step of checkpoint ``name`` (an error names the known ones)."""
        if name not in self.checkpoints:
            known = ", ".join(self.checkpoints) or "none"
            raise InputError(f"unknown checkpoint '{name}'; the PT history defines: {known}")
        return self.checkpoints[name]

    def curve(self, validation_set: str) -> Series | None:
        return self.general if validation_set == "general" else self.domain


@dataclass(frozen=True)
class PilotSet:
    """Everything a fit needs: the pilot runs and their PT history."""

    runs: tuple[Run, ...]
    pretrain: PretrainHistory
    use_pretrain_points: bool = True
    source: str = ""
    #: Unique tokens of the domain training corpus (manifest ``domain_tokens``; None: not
    #: given). With the runs' tokens per step it tells which CPT steps repeat domain data.
    domain_tokens: float | None = None

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
        return replace(self, runs=chosen)


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


