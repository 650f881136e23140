"""Pilot runs: validated per-step LR and loss curves, plus the checkpoint's PT history.

A :class:`Run` is one CPT pilot as the fit sees it: the LR of every CPT update, the general
and domain loss curves, the replay ratio and the checkpoint it started from. A
:class:`PretrainHistory` is the pre-training the checkpoints come from (or unknown: the
black-box mode of docs/law.md). A :class:`PilotSet` is what a fit needs: both together.

Pilots can also be pre-training runs themselves (manifest ``kind: pretrain``): a
:class:`PretrainRun` trains from random initialisation, so it has no checkpoint, no CPT
phase, no replay ratio and one validation loss; :class:`PretrainPilots` holds them. Both
pilot sets say what they are with ``kind`` ("cpt" or "pretrain").
Manifests (:mod:`cptopt.pilots.manifest`) build them from logs.

Per-step LR rule (the areas S1, S2 need the LR of every update):

1. A ``schedule`` in the manifest wins (:mod:`cptopt.pilots.manifest`): cptopt's keys
   (``family``, ...) or a Hugging Face ``TrainingArguments``' (``learning_rate``,
   ``lr_scheduler_type``, ``warmup_steps`` / ``warmup_ratio``, ``max_steps``,
   ``lr_scheduler_kwargs``), mapped by :func:`cptopt.plan.schedule_from_trainer` and
   applied in PyTorch's step convention (update ``s`` at the scheduler's step ``s - 1``, as
   the Trainer runs it). Either may leave out the peak LR and the length: they are then
   taken from the log (largest logged LR; ``max_steps`` the log records, else its last
   logged step). Logged LR points must agree with it (within 1 % of the peak, allowing a
   one-step offset); otherwise it is an error.
2. Otherwise the log's LR series is used (:func:`cptopt.pilots.logs.lr_per_step`): as
   logged when every update has a point; else matched against known schedule families
   (used when the points pin one down: the run's ``info`` says which); else interpolated
   linearly, with a note (a warning in the fit report) giving the largest S1 error the
   points allow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from cptopt.exceptions import InputError, param
from cptopt.pilots.logs import LogData, Series, logging_interval, lr_per_step
from cptopt.schedules import Schedule


@dataclass(frozen=True, kw_only=True)
class _PilotRecord:
    """What a pilot of either kind carries besides its curves: its batch size, where it was
    read from, and what reading it found; ``steps`` and ``peak_lr`` of its per-step LR."""

    tokens_per_step: int | None = None
    source: str = ""
    sha256: str = ""
    #: Warnings about the run (the fit report shows them as warnings).
    notes: tuple[str, ...] = ()
    #: Information about how the run was read (e.g. the schedule its LR points pin down).
    info: tuple[str, ...] = ()

    @property
    def update_lr(self) -> np.ndarray:
        """The LR of every update the run's law counts (entry ``s - 1`` = update ``s``)."""
        raise NotImplementedError

    @property
    def steps(self) -> int:
        return int(self.update_lr.size)

    @property
    def peak_lr(self) -> float:
        return float(self.update_lr.max())


@dataclass(frozen=True)
class Run(_PilotRecord):
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

    @property
    def update_lr(self) -> np.ndarray:
        return self.cpt_lr

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
    #: Warnings about the PT log (shown with every run's notes in the fit report).
    notes: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return self.lr is not None

    def checkpoint_step(self, name: str) -> int:
        """The PT step of checkpoint ``name`` (an error names the known ones)."""
        if name not in self.checkpoints:
            known = ", ".join(self.checkpoints) or "none"
            raise InputError(
                f"{param('checkpoint')} == {name!r}: unknown; the PT history defines: {known}"
            )
        return self.checkpoints[name]

    def curve(self, validation_set: str) -> Series | None:
        return self.general if validation_set == "general" else self.domain


def check_domain_tokens(
    domain_tokens: float, runs: Sequence[tuple[str, float | None, float]], where: str = ""
) -> None:
    """``domain_tokens`` (the domain corpus's unique tokens, the repetition discount) against
    the runs it applies to (``label``, tokens per step, replay ratio), or a one-line error
    (``where``: a prefix, e.g. the manifest): every run needs its tokens per step (else
    nothing would be discounted), and the corpus must hold at least one step's domain
    tokens, ``tokens_per_step * (1 - replay_ratio)`` (a smaller one is repeated within every
    step: not a corpus size)."""
    if not math.isfinite(domain_tokens) or domain_tokens <= 0:
        raise InputError(f"{where}{param('domain_tokens')} == {domain_tokens!r}, must be > 0")
    for label, tokens_per_step, _ in runs:
        if not tokens_per_step:
            raise InputError(
                f"{where}{param('domain_tokens')} needs {param('tokens_per_step')}, which "
                f"{label} lacks: without it no step's domain tokens are known and nothing "
                "would be discounted"
            )
    per_step = [(tps * (1 - replay), label) for label, tps, replay in runs]  # type: ignore[operator]
    most, label = max(per_step, default=(0.0, ""))
    if domain_tokens < most:
        raise InputError(
            f"{where}{param('domain_tokens')} == {domain_tokens:g}, less than one step's "
            f"domain tokens ({most:g} in {label}: tokens_per_step x (1 - replay_ratio)); give "
            "the domain corpus's size in unique tokens"
        )


def _check_run_names(names: list[str], source: str = "") -> None:
    """At least one run, and unique names (one-line errors naming ``source``, if given)."""
    where = f"{source}: " if source else ""
    if not names:
        raise InputError(f"{where}no pilot runs given")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(
            f"{where}pilot run names must be unique, repeated: {', '.join(duplicates)}"
        )


@dataclass(frozen=True)
class PilotSet:
    """Everything a CPT fit needs: the pilot runs and their PT history."""

    #: What the pilots are (the manifest's ``kind``): CPT runs from PT checkpoints (see
    #: :class:`PretrainPilots`). Their scenario (:mod:`cptopt.law.scenario`) says the rest.
    kind: ClassVar[str] = "cpt"

    runs: tuple[Run, ...]
    pretrain: PretrainHistory
    use_pretrain_points: bool = True
    source: str = ""
    #: Unique tokens of the domain training corpus (manifest ``domain_tokens``; None: not
    #: given). With the runs' tokens per step it tells which CPT steps repeat domain data.
    domain_tokens: float | None = None

    def __post_init__(self) -> None:
        _check_run_names([run.name for run in self.runs], self.source)
        if any(not isinstance(run, Run) for run in self.runs):
            raise InputError("a CPT pilot set holds CPT runs only (see PretrainPilots)")
        if not self.pretrain.known:
            checkpoints = {run.checkpoint for run in self.runs}
            if len(checkpoints) > 1:
                raise InputError(
                    "with an unknown PT history all pilots must start from one checkpoint, "
                    f"got {len(checkpoints)}: {', '.join(sorted(checkpoints))}"
                )
        if self.domain_tokens is not None:
            runs = [(f"run '{r.name}'", r.tokens_per_step, r.replay_ratio) for r in self.runs]
            check_domain_tokens(self.domain_tokens, runs, f"{self.source}: " if self.source else "")

    def subset(self, names: list[str] | tuple[str, ...]) -> PilotSet:
        """The same pilot set restricted to the runs named (order kept)."""
        chosen = tuple(run for run in self.runs if run.name in set(names))
        return replace(self, runs=chosen)


@dataclass(frozen=True)
class PretrainRun(_PilotRecord):
    """One pre-training pilot: a run from random initialisation (manifest ``kind: pretrain``).

    ``lr`` is its whole schedule, shape ``(steps,)`` (entry ``s - 1`` = LR of update ``s``),
    warmup included; ``loss`` its one validation loss at steps after ``s`` updates. The
    annealing memory starts after ``warmup_steps`` (docs/law.md, section 1), and only the
    loss points after the warmup are fitted: the law describes the loss after it.
    """

    name: str
    lr: np.ndarray
    loss: Series
    warmup_steps: int = 0

    @property
    def update_lr(self) -> np.ndarray:
        return self.lr


@dataclass(frozen=True)
class PretrainPilots:
    """Everything a fit of pre-training pilots needs: the runs (no PT history: they are it).

    Their law is the CPT law's pre-training part (docs/law.md), fitted to one validation
    set, their loss (the manifest maps it with the ``general`` column role).
    """

    #: What the pilots are (the manifest's ``kind``): pre-training runs (see
    #: :class:`PilotSet` for CPT runs).
    kind: ClassVar[str] = "pretrain"

    runs: tuple[PretrainRun, ...]
    source: str = ""

    def __post_init__(self) -> None:
        _check_run_names([run.name for run in self.runs], self.source)
        if any(not isinstance(run, PretrainRun) for run in self.runs):
            raise InputError("pre-training pilots hold pre-training runs only (see PilotSet)")

    def subset(self, names: list[str] | tuple[str, ...]) -> PretrainPilots:
        """The same pilots restricted to the runs named (order kept)."""
        return replace(self, runs=tuple(run for run in self.runs if run.name in set(names)))


#: Either kind of pilot set (:func:`cptopt.law.scenario.scenario_of` gives its scenario).
Pilots = PilotSet | PretrainPilots


def cpt_lr_from_log(
    lr: Series | None,
    schedule: Schedule | np.ndarray | None,
    last_eval_step: int,
    where: str,
    schedule_steps: int | None = None,
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Per-step CPT LR of a run (see the module docstring for the rule), notes and info.

    ``schedule`` is a :class:`Schedule` or an already resolved per-update array;
    ``schedule_steps`` is the schedule's length when the log records it (HF ``max_steps``).
    Notes are warnings (the LR was interpolated), info says how it was pinned down.
    """
    if schedule is not None:
        per_step = schedule.lr_array() if isinstance(schedule, Schedule) else schedule
        if lr is not None:
            check_schedule_matches_log(per_step, lr, where)
        return per_step, (), ()
    if lr is None:
        raise InputError(f"{where}: no LR column and no 'schedule': cannot compute the areas")
    if not (lr.steps >= 1).any():
        raise InputError(f"{where}: the LR column has no value at steps >= 1")
    estimate = lr_per_step(lr, last_eval_step, schedule_steps=schedule_steps)
    if estimate.per_step.max() <= 0:
        raise InputError(f"{where}: LR <= 0 at every step: the peak LR must be > 0")
    line = (f"{where}: {estimate.description}",)
    if estimate.source == "interpolated":
        return estimate.per_step, line, ()
    return estimate.per_step, (), line if estimate.source == "matched" else ()


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
    schedule: Schedule | np.ndarray | None = None,
    tokens_per_step: int | None = None,
) -> Run:
    """Build a :class:`Run` from reader output plus the metadata logs do not hold.

    A log cut short (``LogData.cut``: a partly written file, or a loss that ends while the
    LR goes on) is an error: a pilot is not fitted on a cut curve (an LR series that ends
    early is no matter when a ``schedule`` gives the LR). Losses that end before the run's
    schedule does (its steps, or the ``max_steps`` the log records) get a note.
    """
    cpt_lr, notes, info = _run_lr(log, schedule)
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
        info=info,
    )


def _run_lr(
    log: LogData, schedule: Schedule | np.ndarray | None
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """A pilot's per-step LR (the module's rule), notes and info; see :func:`run_from_log`
    for the checks on cut logs and losses beyond or short of the schedule."""
    cut = [why for role, why in log.cut.items() if role != "lr" or schedule is None]
    if cut:
        raise InputError(f"{cut[0]}; a pilot is not fitted on a cut curve")
    last_eval = max(
        int(series.steps[-1]) for series in (log.general, log.domain) if series is not None
    )
    lr, notes, info = cpt_lr_from_log(log.lr, schedule, last_eval, log.source, log.max_steps)
    if last_eval > lr.size:
        raise InputError(
            f"{log.source}: losses are logged up to step {last_eval} but the schedule has "
            f"{lr.size} steps"
        )
    return lr, notes + _ends_early(log, last_eval, lr.size), info


def pretrain_run_from_log(
    log: LogData,
    *,
    name: str,
    schedule: Schedule | np.ndarray | None = None,
    warmup_steps: int | None = None,
    tokens_per_step: int | None = None,
) -> PretrainRun:
    """A :class:`PretrainRun` from reader output (its loss is the log's ``general`` series).

    The per-step LR follows the module's rule, as for a CPT run (a ``schedule`` here is the
    whole pre-training schedule). The warmup is ``warmup_steps`` if given, else a cptopt
    schedule's own, else the steps before the LR first reaches its peak.
    """
    if log.general is None:
        raise InputError(f"{log.source}: no loss series: a pre-training run needs its loss")
    lr, notes, info = _run_lr(log, schedule)
    if warmup_steps is None:
        own = isinstance(schedule, Schedule) and schedule.family != "custom"
        warmup_steps = schedule.n_warmup if own else infer_warmup(lr)  # type: ignore[union-attr]
    if warmup_steps >= lr.size:
        raise InputError(
            f"{log.source}: warmup_steps: {warmup_steps} must be shorter than the run "
            f"({lr.size} steps)"
        )
    if not (log.general.steps > warmup_steps).any():
        raise InputError(
            f"{log.source}: no loss logged after the {warmup_steps}-step warmup (the law "
            "describes the loss after it)"
        )
    return PretrainRun(
        name=name,
        lr=lr,
        loss=log.general,
        warmup_steps=int(warmup_steps),
        tokens_per_step=tokens_per_step,
        source=log.source,
        sha256=log.sha256,
        notes=tuple(log.notes) + notes,
        info=info,
    )


def shared_curve(a: LogData, b: LogData) -> str:
    """How two logs' loss curves coincide: ``"same"`` (one run, whatever files it was read
    from), ``"prefix"`` (the shorter is the start of the longer: a checkpoint of that run),
    or ``""`` (different runs).

    They coincide when, on every loss both log (at least one), the steps and values of the
    shorter curve are the first ones of the longer, beyond step 0 (every run from one
    checkpoint starts at its loss). Values are compared as float32, the precision
    TensorBoard stores, so that a run's ``trainer_state.json`` and its event files match.
    """
    lengths = []
    for role in ("general", "domain"):
        first, second = getattr(a, role), getattr(b, role)
        if first is None or second is None:
            continue
        n = min(len(first), len(second))
        if (
            first.steps[n - 1] <= 0
            or not np.array_equal(first.steps[:n], second.steps[:n])
            or not np.array_equal(
                first.values[:n].astype(np.float32), second.values[:n].astype(np.float32)
            )
        ):
            return ""
        lengths.append(len(first) == len(second))
    if not lengths:
        return ""
    return "same" if all(lengths) else "prefix"


def infer_warmup(lr: np.ndarray) -> int:
    """Steps before the LR first reaches its maximum (0 if it starts there)."""
    return int(np.argmax(lr >= lr.max()))


def _ends_early(log: LogData, last_eval: int, steps: int) -> tuple[str, ...]:
    """A note when the losses end before the run's schedule by more than their interval."""
    end = max(steps, log.max_steps or 0)
    interval = max(
        logging_interval(series) for series in (log.general, log.domain) if series is not None
    )
    if end - last_eval <= interval:
        return ()
    told = " (max_steps)" if end == log.max_steps and end > steps else ""
    return (
        f"{log.source}: the losses end at step {last_eval} but the run's schedule goes to "
        f"step {end}{told}: a run stopped early, still running, or a cut copy? The pilot is "
        f"fitted on steps up to {last_eval}",
    )
