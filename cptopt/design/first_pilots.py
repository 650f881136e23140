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
   with ``reach_peak_lr`` / ``reach_replay`` (the ranges the user expects to recommend in,
   wider than the space searched now) the ranges are the space's and the reach's together,
   and so are the candidates' and the decision's;
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
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cptopt._io import atomic_write_text
from cptopt._validation import MAX_SEED, MAX_STEPS
from cptopt._version import __version__
from cptopt.design.next_pilot import DEFAULT_TOLERANCE
from cptopt.design.pilot_grid import (
    Spec,
    grid_specs,
    inside,
    listed_specs,
    reach,
    reach_range,
    widen,
)
from cptopt.design.prior import (
    WIDEN,
    PriorView,
    load_priors,
    logdet_gain,
    prior_view,
    regret_after,
    regret_now,
)
from cptopt.exceptions import InputError, param
from cptopt.law.fitted import CptLaw
from cptopt.plan import TrainingConfig
from cptopt.search.models import Candidate, Constraints, SearchSpace, parse_weights

Criterion = Literal["decision", "d_optimal"]
#: The decision's weight pairs when none are given (general, domain): it is not chosen yet.
DEFAULT_WEIGHTS = ((0.3, 0.7), (0.5, 0.5), (0.7, 0.3))
#: Monte Carlo draws per expected regret (common to every candidate).
DESIGN_DRAWS = 256
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
    reach_peak_lr: tuple[float, float] | None = Field(
        default=None,
        description="with a reach: the peak-LR range the pilots spread over and the decision "
        "is judged on (the space's and the reach's together)",
    )
    reach_replay: tuple[float, float] | None = Field(
        default=None, description="... the replay range (the space's and the reach's together)"
    )
    expected_regret_before: float = Field(description="of the decision with no pilot (share)")
    expected_regret_after: float = Field(description="... after all the pilots (share)")
    n_candidate_pilots: int
    method: str
    notes: list[str]
    seconds: float


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


def _check_method(criterion: str, draws: int, candidate_pilots: Sequence[Candidate] | None) -> None:
    if criterion not in ("decision", "d_optimal"):
        raise InputError(f"{param('criterion')} == {criterion!r}, must be decision or d_optimal")
    if draws < 2:
        raise InputError(f"{param('draws')} == {draws}, must be >= 2")
    if candidate_pilots is not None and not candidate_pilots:
        raise InputError(f"{param('candidate_pilots')}: no candidate pilots given")


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
    reach_peak_lr: str | Sequence[float] | None = None,
    reach_replay: str | Sequence[float] | None = None,
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
    ``reach_peak_lr``, ``reach_replay``: the ranges you expect to *recommend* in, wider than
    the space searched now (``"LO,HI"`` or ``(lo, hi)``; default None: the space's): the
    pilots may go there and spread over the space and the reach together, and the decision
    the priors judge is over both.
    """
    started = time.perf_counter()
    _check(n_pilots, pilot_steps, seed, pretrain_lr)
    _check_method(criterion, draws, candidate_pilots)
    reach_lr = reach_range(reach_peak_lr, "reach_peak_lr", replay=False)
    reach_rp = reach_range(reach_replay, "reach_replay", replay=True)
    constraints = constraints or Constraints()
    notes: list[str] = []
    listed = listed_specs(candidate_pilots) if candidate_pilots is not None else None
    space = _space(space, constraints, listed, pilot_steps, notes)
    assert space.peak_lr is not None and space.replay_ratio is not None
    wide = widen(space, reach_lr, reach_rp, notes)  # the space itself when no reach
    assert wide.peak_lr is not None and wide.replay_ratio is not None
    specs = inside(listed, wide, notes) if listed is not None else grid_specs(wide, pilot_steps)
    pairs = [tuple(parse_weights(w)[:2]) for w in (weights or DEFAULT_WEIGHTS)]
    reference = pretrain_lr or float(space.peak_lr[1])
    if pretrain_lr is None:
        notes.append(
            f"LRs mapped onto the priors' as multiples of {reference:.3g} (the top of the "
            "peak-LR range, taken as the pre-training peak LR); set pretrain_lr if it is not"
        )
    setup, sampling = (wide, constraints, reference, pilot_steps), (draws, seed, tolerance)
    views = [prior_view(lb, law, specs, setup, pairs, sampling) for lb, law in load_priors(prior)]
    widened = (reach_lr, reach_rp) != (None, None)
    chosen = _greedy(views, specs, wide, n_pilots, criterion, (tolerance, widened))
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
        reach_peak_lr=wide.peak_lr if widened else None,
        reach_replay=wide.replay_ratio if widened else None,
        expected_regret_before=regret_now(views),
        expected_regret_after=chosen[-1].expected_regret_after if chosen else regret_now(views),
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
    settings: tuple[float, bool],
) -> list[DesignedPilot]:
    """``settings``: the tolerance, and whether ``space`` is widened by a reach."""
    tolerance, widened = settings
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
        logdet = np.mean([logdet_gain(v, b, left) for v, b in pairs], axis=0)
        keep = np.ones(left.size, dtype=bool)
        spread, regret = np.zeros(left.size), np.full(left.size, np.nan)
        if decision:
            gain = np.array([len(reaches[i] & uncovered) for i in left])
            keep &= gain == gain.max()
            reached = np.flatnonzero(keep)  # the expected regret of these only: it is slow
            regret[reached] = np.mean([regret_after(v, b, left[reached]) for v, b in pairs], axis=0)
            keep &= regret <= np.nanmin(regret) + tolerance
            if picked:  # the distance to the nearest pilot chosen: fill the space's gaps
                gaps = unit[left][:, None, :] - unit[picked][None, :, :]
                spread = np.round(np.sqrt((gaps**2).sum(axis=2)).min(axis=1), 9)
                keep &= spread >= spread[keep].max()
        best = int(np.flatnonzero(keep)[np.argmax(logdet[keep])])
        index = int(left[best])
        if np.isnan(regret[best]):  # d_optimal: the regret of the pick only, to report
            regret[best] = np.mean([regret_after(v, b, left[[best]])[0] for v, b in pairs])
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
                reason=_reason(
                    covers, float(regret[best]), float(spread[best]), gained, (decision, widened)
                ),
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


def _reason(
    covers: list[str], regret: float, spread: float, gain: float, kind: tuple[bool, bool]
) -> str:
    decision, widened = kind
    parts = []
    if covers:
        where = "the space and reach" if widened else "the space"
        parts.append("reaches the " + " and the ".join(covers) + f" of {where}")
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
