"""The law as a linear-Gaussian model of its predictions, and the runs it is asked about.

:class:`LatentModel` writes every prediction of both laws as a linear function of a latent
``z ~ N(0, I_K)`` spanned by the K leave-one-pilot-out refits (see
:mod:`cptopt.design.next_pilot` for the method); :class:`PilotRun` is a run a pilot is or
could be; :func:`informations` is what the curves of runs would tell about ``z``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from cptopt.design.pilot_value import information
from cptopt.exceptions import InputError
from cptopt.law.areas import Areas, CheckpointState
from cptopt.law.fitted import CptLaw
from cptopt.law.scenario import CptRunInput
from cptopt.pilots.runs import PilotSet
from cptopt.search.candidates import checkpoint_choices
from cptopt.search.evaluate import Evaluator, feasible_mask
from cptopt.search.models import Candidate, shape_schedule
from cptopt.search.space import ResolvedSpace

Linearisation = Literal["ensemble", "jacobian"]
#: Grid of the decision options (points per dimension of the recommend space).
OPTION_RESOLUTION = {
    "peak_lr": 9,
    "replay_ratio": 11,
    "steps": 5,
    "warmup_fraction": 1,
    "decay_fraction": 3,
}
#: Grid of the candidate pilots: peak LRs (log-spaced) x replay ratios x families.
PILOT_LRS, PILOT_REPLAYS = 5, 6
#: Smallest eval noise used (a noiseless curve would pin its directions exactly).
MIN_NOISE = 1e-4


# -- the latent model --------------------------------------------------------------------


@dataclass
class LatentModel:
    """Predictions of both laws as linear functions of the latent ``z ~ N(0, I_K)``."""

    law: CptLaw
    linearisation: Linearisation

    def __post_init__(self) -> None:
        sets = self.law.validation_sets
        self.forms = {vs: self.law.form_for(vs) for vs in sets}
        self.values = {vs: np.asarray(self.law.set_fit(vs).values, dtype=float) for vs in sets}
        self.replicas = {
            vs: np.asarray(self.law.set_fit(vs).jackknife, dtype=float).reshape(
                -1, self.values[vs].size
            )
            for vs in sets
        }
        counts = {replicas.shape[0] for replicas in self.replicas.values()}
        self.k = min(counts)
        if self.k < 2 or len(counts) != 1:
            raise InputError(
                "the law has no leave-one-pilot-out refits (fit >= 3 pilots with the "
                "jackknife): next-pilot needs the fit's uncertainty"
            )
        scale = np.sqrt((self.k - 1) / self.k)
        self.deviations = {
            vs: scale * (r - r.mean(axis=0)) for vs, r in self.replicas.items()
        }  # (K, P): theta = theta_hat + D' z
        self.noise = {}
        for vs in sets:
            fit = self.law.set_fit(vs)
            noise = max(fit.noise, MIN_NOISE)
            offset = np.sqrt(max((fit.cv_rms or 0.0) ** 2 - noise**2, 0.0))
            self.noise[vs] = (noise, float(offset))

    @property
    def dimension(self) -> int:
        return self.k

    def sensitivity(
        self, validation_set: str, areas: Areas, log: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prediction ``(n,)`` (log-loss if ``log``) and its derivative by ``z``, ``(n, K)``.

        Rows where the fit or a refit predicts a non-positive or non-finite loss are NaN.
        """
        form, values = self.forms[validation_set], self.values[validation_set]
        if self.linearisation == "jacobian":
            prediction, jacobian = form.jacobian(values, areas)
            derivative = jacobian @ self.deviations[validation_set].T
            bad = ~(np.isfinite(prediction) & (prediction > 0))
            if log:
                derivative = derivative / np.where(bad, np.nan, prediction)[:, None]
                prediction = np.log(np.where(bad, np.nan, prediction))
        else:
            stacked = form.evaluate(np.vstack([values, self.replicas[validation_set]]), areas)
            bad = ~(np.isfinite(stacked) & (stacked > 0)).all(axis=0)
            if log:
                stacked = np.log(np.where(bad, np.nan, stacked))
            replicas = stacked[1:]
            derivative = np.sqrt((self.k - 1) / self.k) * (replicas - replicas.mean(axis=0)).T
            prediction = stacked[0]
        derivative[bad] = np.nan
        return np.where(bad, np.nan, prediction), derivative

    def parameter_variance(self, covariance: np.ndarray) -> dict[str, np.ndarray]:
        """Variance of every parameter ``(..., P)`` per set under latent ``covariance``."""
        return {
            vs: np.einsum("kp,...kl,lp->...p", d, covariance, d)
            for vs, d in self.deviations.items()
        }


# -- candidate pilots and decision options -----------------------------------------------


@dataclass(frozen=True)
class PilotRun:
    """A run a pilot could be (a candidate) or is (a pilot): its LR and where it starts."""

    name: str
    lr: np.ndarray
    replay_ratio: float
    checkpoint: str
    state: CheckpointState
    schedule: str
    tokens_per_step: int | None = None

    def law_run(self, law: CptLaw) -> CptRunInput:
        """This run as ``law``'s scenario reads it."""
        return law.scenario.run(
            self.lr,
            self.replay_ratio,
            self.checkpoint,
            state=self.state,
            tokens_per_step=self.tokens_per_step,
        )

    def points(self, law: CptLaw, every: int) -> dict[str, Areas]:
        """Areas at its eval steps, every ``every`` steps (step 0 excluded: it is known
        already), for each validation set."""
        areas = law.run_inputs(self.law_run(law), eval_steps(self.lr.size, every))
        return dict.fromkeys(law.validation_sets, areas)

    def repeats(self, other: PilotRun) -> bool:
        """Whether this run would log a prefix of ``other``'s curves (same LR, replay, start)."""
        n = self.lr.size
        return (
            self.checkpoint == other.checkpoint
            and abs(self.replay_ratio - other.replay_ratio) < 1e-9
            and n <= other.lr.size
            and bool(np.allclose(self.lr, other.lr[:n], rtol=1e-6, atol=1e-12))
        )


def eval_steps(length: int, every: int) -> np.ndarray:
    """Every ``every`` steps and the last one."""
    return np.unique(np.append(np.arange(every, length + 1, every), length))


def eval_interval(law: CptLaw, pilots: PilotSet | None) -> int:
    """Steps between two evaluations of a candidate: the pilots' median spacing."""
    if pilots is not None:
        spacing = [
            run.steps / max(int((series.steps > 0).sum()), 1)
            for run in pilots.runs
            for series in (run.general, run.domain)
            if series is not None
        ]
    else:
        counts = [run.n_points for run in law.general.runs] or [20]
        spacing = [law.coverage.steps_max / float(np.median(counts))]
    return max(1, int(round(float(np.median(spacing)))))


def pilot_runs(law: CptLaw, pilots: PilotSet) -> list[PilotRun]:
    """The pilots the law was fitted to, checked against the law file."""
    known = {run.name for run in law.general.runs}
    given = {run.name for run in pilots.runs}
    if known and known != given:
        raise InputError(
            f"the pilots given ({', '.join(sorted(given))}) are not the ones the law was "
            f"fitted to ({', '.join(sorted(known))})"
        )
    scenario, out = law.scenario, []
    for run in pilots.runs:
        label = scenario.checkpoint_name(run.checkpoint if scenario.history.known else None)
        state = scenario.checkpoint_state(label, law.lam)
        out.append(PilotRun(run.name, run.cpt_lr, run.replay_ratio, label, state, run.name))
    return out


def listed_pilots(
    law: CptLaw, candidate_pilots: Sequence[Candidate], default_tps: int | None
) -> list[PilotRun]:
    """The user's candidate pilots (a candidates file)."""
    choices, index = checkpoint_choices(law, candidate_pilots)
    return [
        PilotRun(
            candidate.name or f"candidate {i + 1}",
            candidate.schedule.lr_array(),
            candidate.replay_ratio,
            choices[index[i]].label,
            choices[index[i]].state,
            candidate.schedule.describe(),
            candidate.tokens_per_step or default_tps,
        )
        for i, candidate in enumerate(candidate_pilots)
    ]


def grid_pilots(space: ResolvedSpace, steps: int) -> list[PilotRun]:
    """Candidate pilots from the search space: peak LRs x replay ratios x families x
    checkpoints, ``steps`` long, the space's warmup and the middle of its WSD decay range."""
    lrs = np.unique(np.geomspace(*space.peak_lr, PILOT_LRS))
    replays = np.unique(np.round(np.linspace(*space.replay_ratio, PILOT_REPLAYS), 4))
    decay = float(np.mean(space.decay_fraction))
    out = []
    for choice in space.checkpoints:
        for family in space.families:
            for lr in lrs:
                schedule = shape_schedule(family, steps, space.warmup_fraction[0], decay, lr)
                for replay in replays:
                    name = f"{family} lr {lr:.2g} r {replay:.2f}"
                    if len(space.checkpoints) > 1:
                        name += f" @{choice.label}"
                    out.append(
                        PilotRun(
                            name,
                            schedule.lr_array(),
                            float(replay),
                            choice.label,
                            choice.state,
                            schedule.describe(),
                            space.tokens_per_step,
                        )
                    )
    return out


@dataclass
class Options:
    """The decision's options: labels and their final-step areas, infeasible ones dropped."""

    labels: list[str]
    areas: Areas


def grid_options(law: CptLaw, space: ResolvedSpace, evaluator: Evaluator) -> Options:
    """A full-factorial grid of the recommend space, the feasible settings only."""
    batch = space.grid(OPTION_RESOLUTION)
    _, _, _, violations = evaluator.evaluate(batch)
    keep = np.flatnonzero(feasible_mask(violations, len(batch)))
    if keep.size == 0:
        raise InputError("no setting of the search space satisfies the constraints")
    batch = batch.take(keep)
    assert evaluator.final_areas is not None
    labels = [space.setting(batch, i).describe() for i in range(len(batch))]
    return Options(labels, evaluator.final_areas(batch))


def listed_options(law: CptLaw, options: Sequence[Candidate], evaluator: Evaluator) -> Options:
    """The user's own options (``recommend --candidates`` format), feasible ones only."""
    runs = listed_pilots(law, options, evaluator.tokens_per_step)
    areas = Areas.concatenate(
        [law.run_inputs(run.law_run(law), np.array([run.lr.size])) for run in runs]
    )
    general, domain, _ = evaluator.losses_at(areas)
    labels = [c.label for c in evaluator.checkpoints]
    checkpoint = np.array([labels.index(run.checkpoint) for run in runs])
    steps = np.array([run.lr.size for run in runs])
    replay = np.array([run.replay_ratio for run in runs])
    tps = np.array([np.nan if r.tokens_per_step is None else r.tokens_per_step for r in runs])
    violations = evaluator.violations(steps, replay, checkpoint, general, domain, tps)
    keep = np.flatnonzero(feasible_mask(violations, len(runs)))
    if keep.size == 0:
        raise InputError("none of the options satisfies the constraints")
    return Options([runs[i].name for i in keep], areas.take(keep))


def informations(
    model: LatentModel, runs: Sequence[PilotRun], every: int
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Per run: information ``(c, K, K)``, log-loss sensitivities of both sets stacked, and
    how many of its points the law cannot predict. One law evaluation per set for all."""
    points = [run.points(model.law, every) for run in runs]
    per_set = {}
    for vs in model.law.validation_sets:
        parts = [p[vs] for p in points if vs in p]
        counts = [len(p[vs]) if vs in p else 0 for p in points]
        if not parts or not sum(counts):
            continue
        # Candidates that differ only in replay ratio run the same steps: their step sets
        # are held once, and so are their points' drop pairs (the same sums, bit for bit).
        together = Areas.concatenate(parts, share_steps=True)
        if together.history is not None:
            together = replace(together, history=together.history.shared())
        _, derivative = model.sensitivity(vs, together, log=True)
        per_set[vs] = np.split(derivative, np.cumsum(counts)[:-1])
    info = np.zeros((len(runs), model.dimension, model.dimension))
    stacked, bad = [], np.zeros(len(runs), dtype=int)
    for i in range(len(runs)):
        rows = []
        for vs, pieces in per_set.items():
            piece = pieces[i]
            bad[i] += int((~np.isfinite(piece).all(axis=1)).sum())
            piece = np.nan_to_num(piece)
            info[i] += information(piece, *model.noise[vs])
            rows.append(piece)
        stacked.append(np.vstack(rows) if rows else np.zeros((0, model.dimension)))
    return info, stacked, bad
