"""The first pilots, before any fit: which N pilot runs to launch first (``cptopt design``).

There is no law yet, so the design reasons with a **prior**: laws fitted to the pilots of
other domains (by default the two bundled domains, ``priors/cpt-code.json`` and
``priors/cpt-cyr.json``: the protocol's five pilots each), each one's uncertainty the
Gaussian of :mod:`cptopt.design.next_pilot` (the span of its leave-one-pilot-out refits),
widened ``WIDEN`` times in SD because a new domain is further from them than their own
refits are. The user's runs are mapped onto each prior's: LRs as multiples of the
pre-training peak LR (``pretrain_lr``, default the top of the peak-LR range), steps as
multiples of the pilot length (a pilot is as long as the prior's pilots; its schedule's
shape kept), so the prior is used where it was fitted and a design costs the same for
pilots of any length.

Greedy design over candidate pilots (peak LRs x replay ratios x families of the space, or
the user's list), one pick at a time, each pick by, in order:

1. **reach**: a pilot that covers an end of the peak-LR or replay range the search space
   spans and no pilot covers yet (errors are largest where the pilots did not go: issue 21);
2. **the decision**: the expected regret of the recommendation after the pilots chosen so
   far (:class:`~cptopt.design.pilot_value.Outlook`; mean over the priors and the weight
   pairs, as a share of the objective); picks within ``tolerance`` of the best tie;
3. **information**: the D-optimality gain ``log det(I + C^1/2 I C^1/2)`` on the linearised
   log-loss model (mean over the priors).

``criterion="d_optimal"`` uses 3. only (the classical Bayesian D-optimal design, a
baseline). Everything is linear-Gaussian, so a design takes about a second.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cptopt._io import atomic_write_text
from cptopt._validation import MAX_SEED, MAX_STEPS
from cptopt._version import __version__
from cptopt.design.next_pilot import DEFAULT_TOLERANCE, decision_of
from cptopt.design.pilot_model import (
    LatentModel,
    PilotRun,
    eval_steps,
    grid_options,
    informations,
)
from cptopt.design.pilot_value import Draws, Outlook, posterior_covariance, sqrt_psd
from cptopt.exceptions import CptoptError, InputError, param
from cptopt.law.areas import Areas
from cptopt.law.fitted import CptLaw, load_cpt_law
from cptopt.law.scenario import InputNeeds
from cptopt.plan import TrainingConfig
from cptopt.schedules import Schedule
from cptopt.search.evaluate import Evaluator
from cptopt.search.models import Candidate, Constraints, SearchSpace, parse_weights, shape_schedule
from cptopt.search.space import ResolvedSpace, resolve_space

Criterion = Literal["decision", "d_optimal"]
#: The bundled priors (``priors/<name>.json``), the default.
DEFAULT_PRIORS = ("cpt-code", "cpt-cyr")
#: The prior's SD is its own jackknife's times this: another domain is further away.
WIDEN = 2.0
#: The decision's weight pairs when none are given (general, domain): it is not chosen yet.
DEFAULT_WEIGHTS = ((0.3, 0.7), (0.5, 0.5), (0.7, 0.3))
#: Candidate grid: peak LRs (log-spaced) x replay ratios, per family.
DESIGN_LRS, DESIGN_REPLAYS = 5, 6
#: Monte Carlo draws per expected regret (common to every candidate).
DESIGN_DRAWS = 256
#: A pilot within this share of a range's span (log span for LR) of its end covers that end.
REACH = 0.1
MAX_PILOTS = 20


class DesignedPilot(BaseModel):
    """One pilot run to launch, and why it is in the design."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(description="the order it was chosen in")
    name: str
    family: str
    schedule: str
    peak_lr: float
    replay_ratio: float
    steps: int
    reason: str
    covers: list[str] = Field(description="ends of the search space it reaches first")
    expected_regret_after: float = Field(
        description="of the decision once this and the pilots above have run (share)"
    )
    information: float = Field(description="log det gain of the design with it (nats)")
    config: TrainingConfig = Field(description="the pilot as a training config")


class PilotDesign(BaseModel):
    """The result of :func:`design_pilots`."""

    model_config = ConfigDict(extra="forbid")

    cptopt_version: str = __version__
    pilots: list[DesignedPilot]
    pilot_steps: int
    criterion: Criterion
    optimises: str = Field(description="what the design optimises, in words")
    priors: list[str]
    weights: list[tuple[float, float]]
    peak_lr: tuple[float, float]
    replay_ratio: tuple[float, float]
    expected_regret_before: float = Field(description="of the decision with no pilot (share)")
    expected_regret_after: float = Field(description="... after all the pilots (share)")
    n_candidate_pilots: int
    method: str
    notes: list[str]
    seconds: float


# -- the prior --------------------------------------------------------------------------


def bundled_prior(name: str) -> Path:
    """The path of a bundled prior (``cpt-code``, ``cpt-cyr``)."""
    return Path(str(resources.files("cptopt.design") / "priors" / f"{name}.json"))


def load_priors(priors: Sequence[str | Path | CptLaw] | None) -> list[tuple[str, CptLaw]]:
    """Each prior (a law, a law file, or a bundled prior's name) and its label."""
    out = []
    for prior in DEFAULT_PRIORS if priors is None else priors:
        if isinstance(prior, CptLaw):
            out.append(("law", prior))
            continue
        path = bundled_prior(prior) if prior in DEFAULT_PRIORS else Path(prior)
        try:
            law = load_cpt_law(path, "design_pilots()")
        except CptoptError as exc:
            raise InputError(f"{param('prior')}: {exc}") from None
        out.append((path.stem, law))
    if not out:
        raise InputError(f"{param('prior')}: give at least one prior law")
    return out


# -- candidates -------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A candidate pilot in the user's units."""

    name: str
    family: str
    lr: np.ndarray
    replay_ratio: float
    schedule: str
    plan: Schedule

    @property
    def peak(self) -> float:
        return float(self.lr.max())

    def same_as(self, other: Spec) -> bool:
        return (
            abs(self.replay_ratio - other.replay_ratio) < 1e-9
            and self.lr.size == other.lr.size
            and bool(np.allclose(self.lr, other.lr, rtol=1e-6, atol=1e-12))
        )


def grid_specs(space: SearchSpace, steps: int) -> list[Spec]:
    """Peak LRs x replay ratios x families of the space, ``steps`` long."""
    assert space.peak_lr is not None and space.replay_ratio is not None
    lrs = np.unique(np.geomspace(*space.peak_lr, DESIGN_LRS))
    replays = np.unique(np.round(np.linspace(*space.replay_ratio, DESIGN_REPLAYS), 4))
    decay = float(np.mean(space.decay_fraction))
    out = []
    for family in space.families:
        for lr in lrs:
            schedule = shape_schedule(family, steps, space.warmup_fraction[0], decay, lr)
            for replay in replays:
                out.append(
                    Spec(
                        f"{family} lr {lr:.2g} r {replay:.2f}",
                        family,
                        schedule.lr_array(),
                        float(replay),
                        schedule.describe(),
                        schedule,
                    )
                )
    return out


def listed_specs(candidates: Sequence[Candidate]) -> list[Spec]:
    return [
        Spec(
            c.name or f"candidate {i + 1}",
            c.schedule.family,
            c.schedule.lr_array(),
            c.replay_ratio,
            c.schedule.describe(),
            c.schedule,
        )
        for i, c in enumerate(candidates)
    ]


def inside(specs: list[Spec], space: SearchSpace, notes: list[str]) -> list[Spec]:
    """The candidates inside the space's peak-LR and replay ranges: a pilot outside the
    space the decision searches informs a setting nobody will run (and, being the most
    extreme, would be the most "informative" about the law's parameters)."""
    assert space.peak_lr is not None and space.replay_ratio is not None
    (low, high), (r_low, r_high) = space.peak_lr, space.replay_ratio
    kept = [
        s
        for s in specs
        if low * (1 - 1e-6) <= s.peak <= high * (1 + 1e-6)
        and r_low - 1e-9 <= s.replay_ratio <= r_high + 1e-9
    ]
    if not kept:
        raise InputError(
            f"{param('candidate_pilots')}: none inside the peak-LR and replay ranges searched"
        )
    if len(kept) < len(specs):
        notes.append(
            f"{len(specs) - len(kept)} candidate pilot(s) outside the peak-LR and replay "
            "ranges searched left out"
        )
    return kept


def reach(spec: Spec, space: SearchSpace) -> set[str]:
    """The ends of the space's peak-LR and replay ranges ``spec`` reaches."""
    assert space.peak_lr is not None and space.replay_ratio is not None
    out = set()
    low, high = np.log(space.peak_lr[0]), np.log(space.peak_lr[1])
    lr = np.log(spec.peak)
    if lr <= low + REACH * (high - low) + 1e-12:
        out.add("lowest peak LR")
    if lr >= high - REACH * (high - low) - 1e-12:
        out.add("highest peak LR")
    low, high = space.replay_ratio
    if spec.replay_ratio <= low + REACH * (high - low) + 1e-12:
        out.add("lowest replay")
    if spec.replay_ratio >= high - REACH * (high - low) - 1e-12:
        out.add("highest replay")
    return out


# -- one prior's view -------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate(PilotRun):
    """A :class:`PilotRun` whose law's input needs are worked out once for all candidates
    (the law recomputes them on every call: a third of a design's time)."""

    needs: InputNeeds | None = None

    def points(self, law: CptLaw, every: int) -> dict[str, Areas]:
        steps = eval_steps(self.lr.size, every)
        areas = law.scenario.inputs(self.law_run(law), steps, self.needs or law.needs)
        return dict.fromkeys(law.validation_sets, areas)


@dataclass
class PriorView:
    """One prior law: its latent model, the candidates' information, the decisions."""

    label: str
    info: np.ndarray  # (c, K, K)
    covariance: np.ndarray  # (K, K)
    outlooks: list[tuple[Outlook, float]]  # per weight pair, with the objective's scale


def _scaled_space(space: SearchSpace, factor: float, stretch: float) -> SearchSpace:
    """The space in a prior's units: LRs times ``factor``, steps times ``stretch``."""
    assert space.peak_lr is not None and space.steps is not None
    steps = tuple(max(10, int(round(v * stretch))) for v in space.steps)
    return space.model_copy(
        update={"peak_lr": tuple(v * factor for v in space.peak_lr), "steps": steps}
    )


def resample(lr: np.ndarray, n: int) -> np.ndarray:
    """A per-step LR stretched to ``n`` steps, its shape kept (warmup and decay fractions)."""
    if lr.size == n:
        return lr
    return np.interp((np.arange(n) + 0.5) / n, (np.arange(lr.size) + 0.5) / lr.size, lr)


def prior_view(
    label: str,
    law: CptLaw,
    specs: list[Spec],
    setup: tuple[SearchSpace, Constraints, float, int],
    weights: Sequence[tuple[float, float]],
    draws: tuple[int, int, float],
) -> PriorView:
    """The candidates and the decision as ``law`` sees them: LRs as multiples of the
    pre-training peak LR, steps as multiples of the pilot length (the prior's pilots'
    length: where the prior was fitted, and a design's cost that does not grow with it)."""
    space, constraints, pretrain_lr, steps = setup
    factor = float(np.max(law.pretrain.lr)) / pretrain_lr if law.pretrain.known else 1.0
    length = law.coverage.steps_max
    stretch = length / steps
    model = LatentModel(law, "ensemble")
    label_cp = law.scenario.checkpoint_name(None)
    state = law.scenario.checkpoint_state(label_cp, law.lam)
    needs = law.needs
    runs = [
        _Candidate(
            s.name,
            resample(s.lr, max(10, int(round(s.lr.size * stretch)))) * factor,
            s.replay_ratio,
            label_cp,
            state,
            s.schedule,
            None,
            needs,
        )
        for s in specs
    ]
    counts = [run.n_points for run in law.general.runs] or [20]
    every = max(1, int(round(length / float(np.median(counts)))))
    info, _, _ = informations(model, runs, every)
    covariance = WIDEN**2 * np.eye(model.dimension)
    limits = constraints.model_copy(update={"max_steps": None, "max_tokens": None})
    resolved: ResolvedSpace = resolve_space(
        law, _scaled_space(space, factor, stretch), limits, False
    )
    n_draws, seed, tolerance = draws
    outlooks = []
    for pair in weights:
        evaluator = Evaluator(law, resolved.checkpoints, *pair, resolved.tokens_per_step, limits)
        options = grid_options(law, resolved, evaluator)
        decision, _ = decision_of(model, options, pair, tolerance)
        outlook = Outlook(decision, covariance, Draws.standard(model.dimension, n_draws, seed))
        outlooks.append((outlook, float(abs(decision.objective.min()))))
    return PriorView(label, info, covariance, outlooks)


def _logdet(view: PriorView, base: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Per candidate in ``order``: ``log det(I + C^1/2 I C^1/2)`` with ``base`` info."""
    root = sqrt_psd(view.covariance)
    inner = root @ (base + view.info[order]) @ root
    return np.linalg.slogdet(np.eye(view.covariance.shape[0]) + inner)[1]


def _regret(view: PriorView, base: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Per candidate in ``order``: the decision's expected regret (share) after it."""
    posteriors = posterior_covariance(view.covariance, base + view.info[order])
    return np.mean([o.regret_after(posteriors) / scale for o, scale in view.outlooks], axis=0)


def _regret_now(views: list[PriorView]) -> float:
    return float(np.mean([o.regret / s for v in views for o, s in v.outlooks]))


# -- the design -------------------------------------------------------------------------


def _check(n_pilots: int, pilot_steps: int, seed: int, pretrain_lr: float | None) -> None:
    if not 1 <= n_pilots <= MAX_PILOTS:
        raise InputError(f"{param('n_pilots')} == {n_pilots}, must be in 1..{MAX_PILOTS}")
    if not 10 <= pilot_steps <= MAX_STEPS:
        raise InputError(f"{param('pilot_steps')} == {pilot_steps}, must be in 10..{MAX_STEPS}")
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"{param('seed')} == {seed}, must be in 0..{MAX_SEED}")
    if pretrain_lr is not None and not (np.isfinite(pretrain_lr) and pretrain_lr > 0):
        raise InputError(f"{param('pretrain_lr')} == {pretrain_lr!r}, must be a number > 0")


def _space(
    space: SearchSpace | None,
    constraints: Constraints,
    specs: list[Spec] | None,
    pilot_steps: int,
    notes: list[str],
) -> SearchSpace:
    """The space the decision searches: the user's, its missing ranges filled in."""
    space = space or SearchSpace()
    update: dict = {}
    if space.peak_lr is None:
        if specs is None:
            raise InputError(
                f"{param('peak_lr')} is required: before any pilot there is no LR range "
                "to take it from (e.g. 0.3x to 1x the pre-training peak LR)"
            )
        peaks = [s.peak for s in specs]
        update["peak_lr"] = (min(peaks), max(peaks))
    if space.replay_ratio is None:
        update["replay_ratio"] = (0.0, 0.5)
        notes.append("replay ratio range 0..0.5 (the priors' pilots'); set it to change it")
    if space.steps is None:
        longest = max(pilot_steps, constraints.max_steps or pilot_steps)
        update["steps"] = (pilot_steps, longest)
        notes.append(
            f"the decision is for runs of {pilot_steps}..{longest} steps (the pilots' length "
            "up to max_steps)"
            if longest > pilot_steps
            else f"the decision is for runs of {pilot_steps} steps (the pilots' length)"
        )
    for name in ("tokens_per_step", "max_tokens", "domain_tokens", "max_epochs"):
        if getattr(constraints, name) is not None:
            notes.append(f"{name} is not used: the priors count tokens in their own units")
    return space.model_copy(update=update)


def design_pilots(
    space: SearchSpace | None = None,
    constraints: Constraints | None = None,
    pilot_steps: int = 1000,
    n_pilots: int = 5,
    *,
    prior: Sequence[str | Path | CptLaw] | None = None,
    weights: Sequence[str | Sequence[float]] | None = None,
    pretrain_lr: float | None = None,
    candidate_pilots: Sequence[Candidate] | None = None,
    criterion: Criterion = "decision",
    tolerance: float = DEFAULT_TOLERANCE,
    draws: int = DESIGN_DRAWS,
    seed: int = 0,
) -> PilotDesign:
    """Choose the first ``n_pilots`` pilot runs, ``pilot_steps`` long, before any fit.

    ``space``, ``constraints``: the space ``recommend`` will search (``space.peak_lr`` is
    required unless ``candidate_pilots`` are given; replay defaults to 0..0.5, steps to
    ``pilot_steps``). ``prior``: law files (or bundled names) to reason with, default the
    bundled ``cpt-code`` and ``cpt-cyr``. ``weights``: the decision's weight pairs (default
    0.3,0.7, 0.5,0.5 and 0.7,0.3). ``pretrain_lr``: the pre-training peak LR (default the top
    of the peak-LR range), which maps LRs onto each prior's. ``candidate_pilots``: the runs
    to choose from (default: a grid of the space). ``criterion``: "decision" (reach, then
    expected regret, then information) or "d_optimal" (information only).
    """
    started = time.perf_counter()
    _check(n_pilots, pilot_steps, seed, pretrain_lr)
    if criterion not in ("decision", "d_optimal"):
        raise InputError(f"{param('criterion')} == {criterion!r}, must be decision or d_optimal")
    if draws < 2:
        raise InputError(f"{param('draws')} == {draws}, must be >= 2")
    if candidate_pilots is not None and not candidate_pilots:
        raise InputError(f"{param('candidate_pilots')}: no candidate pilots given")
    constraints = constraints or Constraints()
    notes: list[str] = []
    listed = listed_specs(candidate_pilots) if candidate_pilots is not None else None
    space = _space(space, constraints, listed, pilot_steps, notes)
    assert space.peak_lr is not None and space.replay_ratio is not None
    specs = inside(listed, space, notes) if listed is not None else grid_specs(space, pilot_steps)
    pairs = [tuple(parse_weights(w)[:2]) for w in (weights or DEFAULT_WEIGHTS)]
    reference = pretrain_lr or float(space.peak_lr[1])
    if pretrain_lr is None:
        notes.append(
            f"LRs mapped onto the priors' as multiples of {reference:.3g} (the top of the "
            "peak-LR range, taken as the pre-training peak LR); set pretrain_lr if it is not"
        )
    views = [
        prior_view(
            label,
            law,
            specs,
            (space, constraints, reference, pilot_steps),
            pairs,
            (draws, seed, tolerance),
        )
        for label, law in load_priors(prior)
    ]
    chosen = _greedy(views, specs, space, n_pilots, criterion, tolerance)
    if len(chosen) < n_pilots:
        notes.append(f"only {len(chosen)} distinct candidate pilots to choose from")
    return PilotDesign(
        pilots=chosen,
        pilot_steps=pilot_steps,
        criterion=criterion,
        optimises=_optimises(criterion),
        priors=[v.label for v in views],
        weights=pairs,
        peak_lr=space.peak_lr,
        replay_ratio=space.replay_ratio,
        expected_regret_before=_regret_now(views),
        expected_regret_after=chosen[-1].expected_regret_after if chosen else _regret_now(views),
        n_candidate_pilots=len(specs),
        method=_method(views, draws, seed),
        notes=notes,
        seconds=time.perf_counter() - started,
    )


def _unit(specs: list[Spec], space: SearchSpace) -> np.ndarray:
    """Each candidate's place in the space: log peak LR and replay, each scaled to 0..1."""
    assert space.peak_lr is not None and space.replay_ratio is not None
    lr = np.log([s.peak for s in specs])
    replay = np.array([s.replay_ratio for s in specs])
    out = np.zeros((len(specs), 2))
    for column, values, (low, high) in (
        (0, lr, np.log(space.peak_lr)),
        (1, replay, space.replay_ratio),
    ):
        if high > low:
            out[:, column] = (values - low) / (high - low)
    return out


def _greedy(
    views: list[PriorView],
    specs: list[Spec],
    space: SearchSpace,
    n_pilots: int,
    criterion: Criterion,
    tolerance: float,
) -> list[DesignedPilot]:
    decision = criterion == "decision"
    bases = [np.zeros_like(v.covariance) for v in views]
    picked: list[int] = []
    assert space.peak_lr is not None and space.replay_ratio is not None
    uncovered = {"lowest peak LR", "highest peak LR", "lowest replay", "highest replay"}
    if space.peak_lr[0] == space.peak_lr[1]:
        uncovered -= {"lowest peak LR", "highest peak LR"}
    if space.replay_ratio[0] == space.replay_ratio[1]:
        uncovered -= {"lowest replay", "highest replay"}
    reaches = [reach(s, space) for s in specs]
    unit = _unit(specs, space)
    logdet_before = 0.0
    out: list[DesignedPilot] = []
    for rank in range(1, n_pilots + 1):
        left = np.array(
            [i for i in range(len(specs)) if not any(specs[i].same_as(specs[j]) for j in picked)]
        )
        if left.size == 0:
            break
        pairs = list(zip(views, bases, strict=True))
        logdet = np.mean([_logdet(v, b, left) for v, b in pairs], axis=0)
        keep = np.ones(left.size, dtype=bool)
        spread, regret = np.zeros(left.size), np.full(left.size, np.nan)
        if decision:
            gain = np.array([len(reaches[i] & uncovered) for i in left])
            keep &= gain == gain.max()
            reached = np.flatnonzero(keep)  # the expected regret of these only: it is slow
            regret[reached] = np.mean([_regret(v, b, left[reached]) for v, b in pairs], axis=0)
            keep &= regret <= np.nanmin(regret) + tolerance
            if picked:  # the distance to the nearest pilot chosen: fill the space's gaps
                gaps = unit[left][:, None, :] - unit[picked][None, :, :]
                spread = np.round(np.sqrt((gaps**2).sum(axis=2)).min(axis=1), 9)
                keep &= spread >= spread[keep].max()
        best = int(np.flatnonzero(keep)[np.argmax(logdet[keep])])
        index = int(left[best])
        if np.isnan(regret[best]):  # d_optimal: the regret of the pick only, to report
            regret[best] = np.mean([_regret(v, b, left[[best]])[0] for v, b in pairs])
        covers = sorted(reaches[index] & uncovered) if decision else []
        uncovered -= reaches[index]
        picked.append(index)
        bases = [b + v.info[index] for v, b in zip(views, bases, strict=True)]
        spec = specs[index]
        gained = float(logdet[best] - logdet_before)
        out.append(
            DesignedPilot(
                rank=rank,
                name=spec.name,
                family=spec.family,
                schedule=spec.schedule,
                peak_lr=spec.peak,
                replay_ratio=spec.replay_ratio,
                steps=int(spec.lr.size),
                reason=_reason(covers, float(regret[best]), float(spread[best]), gained, decision),
                covers=covers,
                expected_regret_after=float(regret[best]),
                information=gained,
                config=TrainingConfig(
                    schedule=spec.plan, replay_ratio=spec.replay_ratio, name=spec.name
                ),
            )
        )
        logdet_before = float(logdet[best])
    return out


def _reason(covers: list[str], regret: float, spread: float, gain: float, decision: bool) -> str:
    parts = []
    if covers:
        parts.append("reaches the " + " and the ".join(covers) + " of the space")
    elif decision and spread > 0:
        parts.append(f"fills the widest gap left between the pilots ({spread:.2f} of the space)")
    if decision:
        parts.append(f"expected regret of the decision after it {regret:.2%}")
    parts.append(f"adds {gain:.2f} nats of information about the law")
    return "; ".join(parts)


def _optimises(criterion: Criterion) -> str:
    if criterion == "d_optimal":
        return "information about the law's parameters (Bayesian D-optimality)"
    return (
        "first the reach of the pilots (both ends of the peak-LR and replay ranges), then "
        "the expected regret of the decision recommend will make, then the gaps between "
        "the pilots (the farthest from any), then information about the law (D-optimality)"
    )


def _method(views: list[PriorView], draws: int, seed: int) -> str:
    return (
        f"greedy Bayesian design under {len(views)} prior law(s) "
        f"({', '.join(v.label for v in views)}): "
        f"each the Gaussian of its leave-one-pilot-out refits, SD x{WIDEN:g}; candidates "
        f"linearised along the refits, each curve a Kalman update; {draws} Monte Carlo "
        f"draws, seed {seed}"
    )


def write_pilot_configs(design: PilotDesign, folder: str | Path) -> list[Path]:
    """Each designed pilot as a training config (YAML), ``<rank>-<name>.yaml`` in ``folder``
    (created if missing), each file written atomically. Returns the paths, in rank order."""
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for pilot in design.pilots:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", pilot.name).strip("-.") or "pilot"
        data = pilot.config.model_dump(mode="json", exclude_none=True)
        text = f"# pilot {pilot.rank} of cptopt design: {pilot.reason}\n" + yaml.safe_dump(
            data, sort_keys=False
        )
        paths.append(atomic_write_text(folder / f"{pilot.rank}-{stem}.yaml", text))
    return paths
