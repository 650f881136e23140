"""CPT runs from pre-training checkpoints (a manifest without ``kind``, or ``kind: cpt``).

Two validation sets, ``general`` and ``domain``. A run's inputs continue its checkpoint's
PT areas (or, in black-box mode, an unknown checkpoint whose ``S1pt`` the law fits), with
the S2 memory and the drop history carried across the PT->CPT boundary, the domain shift's
area discounted where the run repeats domain data, and the per-step LRs a shift driven by
``LR^q`` reads (docs/law.md). The vectorised twin for many searched settings at once is
:class:`cptopt.search.shapes.FinalAreas`; a test holds the two to the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cptopt.exceptions import InputError, param
from cptopt.law.areas import (
    Areas,
    CheckpointState,
    PretrainAreas,
    cpt_point_areas,
    history_areas,
    unknown_checkpoint,
)
from cptopt.law.scenario._base import Coverage, FitData, FromPilots, InputNeeds, InputRecord
from cptopt.pilots.runs import PilotSet, PretrainHistory, Run, check_domain_tokens
from cptopt.plan import TrainingConfig, load_config
from cptopt.schedules import Schedule

#: PT-phase points are pooled from this share of the (first) checkpoint's PT step on.
#: Early PT (loss still far above the power-law regime, e.g. a plateau before a drop) is
#: not what the law describes; pooling it pinned L0 at 0 and raised the leave-one-pilot-out
#: CV error in every variant tried on the bundled pilots.
PT_POINTS_FROM = 0.25
#: Which PT-phase points of a validation set are pooled with the pilots' curves: "all"
#: (every logged point from PT_POINTS_FROM on), "checkpoint" (only the points at a
#: checkpoint's PT step: the loss CPT starts from) or "none".
PT_POINT_CHOICES = ("all", "checkpoint", "none")
#: Passes over the domain corpus beyond which the pilots get a warning: up to about 4,
#: repeated data trains almost as well as fresh (data-constrained scaling, arXiv 2305.16264).
MANY_EPOCHS = 4


@dataclass(frozen=True)
class CptRunInput:
    """A CPT run as the law reads it: per-step LRs (``lr[s - 1]`` = LR of update ``s``),
    replay ratio and the checkpoint it starts from (``state``: its area state, when it is
    not one the PT history names, e.g. a PT step the search tries). ``tokens_per_step``:
    as given (None: unknown); ``corpus_tokens_per_step`` and ``domain_tokens`` (None: the
    scenario's) size the repetition discount."""

    lr: np.ndarray
    replay_ratio: float
    checkpoint: str
    state: CheckpointState | None = None
    tokens_per_step: int | None = None
    corpus_tokens_per_step: float | None = None
    domain_tokens: float | None = None

    @property
    def steps(self) -> int:
        return int(self.lr.size)

    def report_steps(self, steps: list[int] | np.ndarray | None = None) -> np.ndarray:
        """The CPT steps a prediction reports: ``steps`` (checked), or by default step 0,
        10 evenly spaced steps and the last."""
        total = self.steps
        if steps is None:
            return np.unique(np.linspace(0, total, 11).round().astype(int))
        report = np.unique(np.asarray(steps, dtype=int))
        if report.size == 0 or report.min() < 0 or report.max() > total:
            raise InputError(f"{param('steps')} (the steps to report) must lie in 0..{total}")
        return report


@dataclass(frozen=True)
class CptScenario(FromPilots):
    """CPT pilots and the laws fitted to them: the one owner of their inputs.

    ``history``: the checkpoints' PT history (``lr`` None: unknown, black-box mode);
    ``coverage``: what the pilots covered; ``domain_tokens``: the domain corpus size (the
    repetition discount); ``lr_reference``: the LR per-step LRs are divided by (a shift
    driven by ``LR^q``). Built from a pilot set (:meth:`from_pilots`, which keeps the pilots
    for the fit's data) or from a law file (``CptLaw.scenario``).
    """

    kind: ClassVar[str] = "cpt"
    #: The validation sets of a fit of these pilots.
    validation_sets: ClassVar[tuple[str, ...]] = ("general", "domain")

    history: PretrainHistory
    coverage: Coverage | None = None
    domain_tokens: float | None = None
    lr_reference: float | None = None
    pilots: PilotSet | None = field(default=None, compare=False, repr=False)
    #: What this scenario computed once and reads again (see :meth:`pt_areas` and
    #: :meth:`fit_data`): a long PT history is reduced once, not per run or per fit.
    _memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def from_pilots(pilots: PilotSet) -> CptScenario:
        """The scenario of CPT pilots (what they covered; the pilots kept for the fit)."""
        runs = pilots.runs
        coverage = Coverage.of(
            runs, [run.replay_ratio for run in runs], [run.checkpoint for run in runs]
        )
        reference = coverage.peak_lr_max
        return CptScenario(pilots.pretrain, coverage, pilots.domain_tokens, reference, pilots)

    @property
    def replay_terms(self) -> bool:
        """Whether the pilots' replay ratios identify the replay terms (>= 2 distinct)."""
        return self.coverage is not None and len(self.coverage.replay_ratios) >= 2

    @property
    def checkpoint_known(self) -> bool:
        """Whether the checkpoints' PT areas are known (else the law fits ``S1pt``)."""
        return self.history.known

    # -- runs and their inputs ----------------------------------------------------------

    def checkpoint_name(self, checkpoint: str | None) -> str:
        """A checkpoint by name (None = the only/first one), checked against the history."""
        if not self.history.known:
            return "checkpoint"
        names = list(self.history.checkpoints)
        if checkpoint is None:
            piloted = self.coverage.checkpoints if self.coverage is not None else names
            if len(names) > 1 and len(piloted) > 1:
                raise InputError(
                    f"the law knows several checkpoints ({', '.join(names)}): name one "
                    "with 'checkpoint'"
                )
            return piloted[0] if piloted else names[0]
        self.history.checkpoint_step(checkpoint)  # an unknown name is a one-line error
        return checkpoint

    def pt_areas(self, lam: float | None) -> PretrainAreas:
        """The known PT history's areas under the S2 ``lam``, computed once per ``lam`` (a
        history of a million steps takes a fraction of a second to sum)."""
        key = ("pt", lam)
        if key not in self._memo:
            self._memo[key] = history_areas(self.history, lam)
        return self._memo[key]

    def checkpoint_state(self, checkpoint: str | None, lam: float | None) -> CheckpointState:
        """The area state at a checkpoint (:meth:`checkpoint_name`) under the S2 ``lam``."""
        if not self.history.known:
            return unknown_checkpoint(self.history.final_lr)
        name = self.checkpoint_name(checkpoint)
        return self.pt_areas(lam).state_at(self.history.checkpoint_step(name))

    def state_at(self, pt_step: int, lam: float | None) -> CheckpointState:
        """The area state after PT step ``pt_step`` of a known PT history (a checkpoint no
        pilot may have started from, e.g. one the search tries)."""
        return self.pt_areas(lam).state_at(pt_step)

    def run(
        self,
        lr: np.ndarray,
        replay_ratio: float,
        checkpoint: str | None = None,
        *,
        state: CheckpointState | None = None,
        tokens_per_step: float | None = None,
        domain_tokens: float | None = None,
    ) -> CptRunInput:
        """A planned run: ``checkpoint`` checked (or named by ``state``'s caller), the tokens
        per step defaulting to the pilots' when they all used one."""
        if not 0.0 <= replay_ratio <= 1.0:
            raise InputError(f"replay_ratio == {replay_ratio!r}, must be in [0, 1]")
        name = checkpoint if state is not None and checkpoint else self.checkpoint_name(checkpoint)
        corpus = tokens_per_step
        if self.coverage is not None:
            corpus = self.coverage.corpus_tokens_per_step(tokens_per_step)
        corpus_tokens = domain_tokens if domain_tokens is not None else self.domain_tokens
        if corpus_tokens is not None:
            check_domain_tokens(corpus_tokens, [("the run", corpus, replay_ratio)])
        lr = np.asarray(lr, dtype=float)
        tokens = int(tokens_per_step) if tokens_per_step else None
        return CptRunInput(lr, replay_ratio, name, state, tokens, corpus, domain_tokens)

    def planned(
        self,
        schedule: Schedule,
        replay_ratio: float | None = None,
        *,
        checkpoint: str | None = None,
        tokens_per_step: int | None = None,
        domain_tokens: float | None = None,
        warmup_steps: int | None = None,
    ) -> CptRunInput:
        """The run ``predict`` is asked about: a CPT schedule and its replay ratio."""
        if replay_ratio is None:
            raise InputError(f"{param('replay_ratio')} is required for a CPT run")
        if warmup_steps is not None:
            raise InputError(
                f"{param('warmup_steps')}: only for a pre-training run; a CPT run's warmup "
                "is in its schedule"
            )
        lr = schedule.lr_array()
        return self.run(
            lr,
            replay_ratio,
            checkpoint,
            tokens_per_step=tokens_per_step,
            domain_tokens=domain_tokens,
        )

    def read_plan(self, path: str | Path) -> TrainingConfig:
        """A training config (YAML) of a CPT run, for laws of this kind."""
        return load_config(path)

    def plan_run(self, plan: TrainingConfig) -> CptRunInput:
        """The run a training config plans."""
        return self.planned(
            plan.schedule,
            plan.replay_ratio,
            checkpoint=plan.checkpoint,
            tokens_per_step=plan.tokens_per_step,
        )

    def pilot_run(self, run: Run) -> CptRunInput:
        """A pilot as the law reads it (its own tokens per step, no default)."""
        tokens = run.tokens_per_step
        return CptRunInput(run.cpt_lr, run.replay_ratio, run.checkpoint, None, tokens, tokens)

    def inputs(self, run: CptRunInput, steps: np.ndarray, needs: InputNeeds) -> Areas:
        """The law's inputs at CPT ``steps`` of ``run`` (0 = the checkpoint): the one place
        a CPT run becomes areas (memory, drop history, repetition discount, per-step LRs)."""
        state = run.state
        if state is None:
            state = self.checkpoint_state(run.checkpoint, needs.lam)
        return cpt_point_areas(
            run.lr,
            steps,
            needs.lam,
            state,
            run.replay_ratio,
            history=needs.history,
            tokens_per_step=run.corpus_tokens_per_step,
            domain_tokens=run.domain_tokens or self.domain_tokens,
            lr_reference=self.lr_reference if needs.steps else None,
        )

    def coverage_flags(
        self,
        *,
        peak_lr: float,
        replay_ratio: float,
        steps: int,
        checkpoint: str,
        tokens_per_step: int | None,
    ) -> list[str]:
        """One message per setting outside what the pilots covered (empty when all inside)."""
        cov = self.coverage
        if cov is None:
            return []
        flags = cov.lr_flags(peak_lr)
        low, high = min(cov.replay_ratios), max(cov.replay_ratios)
        if not self.replay_terms and abs(replay_ratio - low) > 1e-9:
            flags.append(
                f"replay {replay_ratio:g} differs from the pilots' single ratio {low:g} "
                "(replay fixed)"
            )
        elif not low - 1e-9 <= replay_ratio <= high + 1e-9:
            flags.append(f"replay {replay_ratio:g} outside the pilots' {low:g}..{high:g}")
        if steps > cov.steps_max:
            flags.append(f"{steps} steps beyond the longest pilot ({cov.steps_max})")
        flags += cov.tokens_flags(tokens_per_step, "the shift term depends on batch size")
        if self.history.known and checkpoint not in cov.checkpoints:
            flags.append(f"checkpoint '{checkpoint}' has no pilot run")
        return flags

    # -- the pilots' data, for the fit --------------------------------------------------

    def _pilots(self) -> PilotSet:
        self._runs()  # not built from pilots: an error
        return self.pilots  # type: ignore[return-value]

    def logged(self, validation_set: str) -> int:
        """How many pilots log ``validation_set``'s loss."""
        return sum(run.curve(validation_set) is not None for run in self._runs())

    def shared_replay_folds(self) -> list[int]:
        """Pilots (by index) whose replay ratio at least one other pilot shares.

        Their leave-one-out folds interpolate in replay, so they test the annealing memory
        rather than the replay form. Empty when fewer than 2 pilots qualify: then every
        fold counts.
        """
        ratios = [run.replay_ratio for run in self._runs()]
        shared = [i for i, ratio in enumerate(ratios) if ratios.count(ratio) >= 2]
        return shared if len(shared) >= 2 else []

    def fit_data(self, validation_set: str, needs: InputNeeds, pt_points: str = "all") -> FitData:
        """Every pilot's curve of ``validation_set``, pooled with its inputs, and the
        PT-phase points (``pt_points``: :data:`PT_POINT_CHOICES`; none when the manifest
        says so). ``run_index`` is the pilot, ``step`` the CPT step (PT step for PT-phase
        points, whose index is -1)."""
        if pt_points not in PT_POINT_CHOICES:
            raise InputError(
                f"pt_points == {pt_points!r}, must be one of {', '.join(PT_POINT_CHOICES)}"
            )
        pilots = self._pilots()
        parts = []
        for index, run in enumerate(pilots.runs):
            curve = run.curve(validation_set)
            if curve is not None:
                areas = self._pilot_inputs(index, curve.steps, needs)
                parts.append((areas, curve.values, index, curve.steps))
        history = self.history
        pt_curve = history.curve(validation_set)
        use = pilots.use_pretrain_points and pt_points != "none"
        if history.known and pt_curve is not None and use:
            pt_areas = self.pt_areas(needs.lam)
            first_checkpoint = min(history.checkpoints.values(), default=pt_areas.s1.size)
            start = max(history.warmup_steps + 1, PT_POINTS_FROM * first_checkpoint)
            keep = (pt_curve.steps >= start) & (pt_curve.steps <= pt_areas.s1.size)
            if pt_points == "checkpoint":
                keep &= np.isin(pt_curve.steps, list(history.checkpoints.values()))
            pt_steps = pt_curve.steps[keep]
            key = ("pt points", needs.lam, needs.history, pt_steps.tobytes())
            if key not in self._memo:
                self._memo[key] = pt_areas.points(pt_steps, needs.history)
            parts.append((self._memo[key], pt_curve.values[keep], -1, pt_steps))
        if not parts:
            raise InputError(f"no pilot logs a {validation_set} loss")
        return FitData.pool(parts)

    def _pilot_inputs(self, index: int, steps: np.ndarray, needs: InputNeeds) -> Areas:
        """The inputs of pilot ``index`` at ``steps``, computed once for both validation sets,
        every PT-point policy and either shift drive (the per-step LRs are dropped when
        ``needs`` has no use for them)."""
        key = ("pilot", index, needs.lam, needs.history, np.asarray(steps).tobytes())
        if key not in self._memo:
            run = self._pilots().runs[index]
            full = replace(needs, steps=self.lr_reference is not None)
            self._memo[key] = self.inputs(self.pilot_run(run), steps, full)
        areas = self._memo[key]
        return areas if needs.steps else replace(areas, steps=None)

    def replay_probe(self, replay_ratio: float) -> CptRunInput:
        """The first pilot's schedule at another replay ratio (to compare law variants
        between the pilots' ratios)."""
        run = self._runs()[0]
        tokens = run.tokens_per_step
        return CptRunInput(run.cpt_lr, replay_ratio, run.checkpoint, None, tokens, tokens)

    def notes(self) -> list[str]:
        """The runs' notes, what the pilots' replay ratios allow, and a warning when they
        already repeat the domain corpus many times."""
        notes = self.run_notes() + self._repeat_notes()
        ratios = sorted({run.replay_ratio for run in self._runs()})
        if len(ratios) == 1:
            notes.append(
                f"all pilots use replay ratio {ratios[0]:g}: the replay terms are not "
                "identifiable, so the law predicts that ratio only (replay is fixed)"
            )
        elif len(ratios) == 2:
            notes.append("only 2 distinct replay ratios: the replay terms are weakly identified")
        return notes

    def _repeat_notes(self) -> list[str]:
        """A warning when a pilot passes over the domain corpus (``domain_tokens``) more
        than :data:`MANY_EPOCHS` times: the repetition discount, a prior, then shapes the
        domain law more than the pilots test it."""
        if not self.domain_tokens:
            return []
        epochs, name = max(
            (run.steps * (run.tokens_per_step or 0) * (1 - run.replay_ratio), run.name)
            for run in self._runs()
        )
        epochs /= self.domain_tokens
        if epochs <= MANY_EPOCHS:
            return []
        return [
            f"domain_tokens: the pilots already pass over the domain corpus up to {epochs:.3g} "
            f"times (run '{name}'); past about {MANY_EPOCHS} the repetition discount, a prior, "
            "shapes the domain law: check the corpus size"
        ]

    def input_records(self) -> list[InputRecord]:
        """Every input log with its SHA-256, the PT log last."""
        pilots, records = self._pilots(), self.run_records()
        if pilots.pretrain.source:
            pretrain = pilots.pretrain
            records.append(
                InputRecord(name="pretrain", source=pretrain.source, sha256=pretrain.sha256)
            )
        return records
