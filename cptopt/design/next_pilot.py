"""Which pilot run to launch next, and when to stop piloting (decision-focused design).

:func:`next_pilot` ranks candidate pilot runs by how much each is expected to improve the
decision ``recommend`` makes, with the maths of :mod:`cptopt.design.pilot_value`:

1. **The law's uncertainty.** The K leave-one-pilot-out refits in the law file span a
   latent space: ``theta_s = theta_hat_s + D_s' z`` per validation set, ``D_s`` the
   replicas' deviations scaled so that ``z ~ N(0, I_K)`` has exactly the jackknife
   covariance. Both sets share ``z``: every fold leaves a pilot out of both, so the stacked
   replicas carry the cross-set covariance (a pilot's misfit shows in both losses), and
   tied parameters (``CptLaw.tied``) move together without special cases. This is the
   Gaussian behind ``P(best)`` of ``recommend --candidates``. The jackknife is rank
   deficient (K - 1 < P parameters): working in the replicas' span needs no
   regularisation, and directions no refit moves stay certain.
2. **Linear in z.** A prediction is linearised along the replicas: its secant over the
   refits (``linearisation="ensemble"``, the default, as the prediction intervals use
   them; it follows the law where refits are far apart) or the law's Jacobian times
   ``D_s'`` (exact for small spreads only).
3. **A candidate pilot** logs both losses every ``eval_every`` steps (the pilots' spacing):
   log-loss = law + eval noise (the set's ``noise``, independent per point) + a common
   offset per curve (``sqrt(cv_rms^2 - noise^2)``: the held-out error beyond the noise, a
   misfit the points of one curve share and cannot average away). Its information updates
   the covariance (a Kalman step) whatever it shows; the expected regret of the
   recommendation made after it averages over what it may show (preposterior analysis).
   A candidate that repeats a pilot (same LR, replay and checkpoint) would reproduce that
   pilot's curve up to seed noise and adds nothing.
4. **The decision**: a grid of the space ``recommend`` searches (or the user's options),
   objective ``w_g L_general(T) + w_d L_domain(T)``. Piloting stops when the expected
   regret is below the tolerance (the noise floor), ``P(best)`` reaches its threshold, or no
   candidate lowers the expected regret by the tolerance.

The prior is the jackknife itself, not the jackknife conditioned again on the pilots'
curves: K pilots pin all K - 1 latent directions, and on the bundled cyr data that
conditioning left no uncertainty (expected regret 0) where the real regret was 1.7 %.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cptopt._validation import MAX_SEED, MAX_STEPS
from cptopt._version import __version__
from cptopt.design.pilot_model import (
    LatentModel,
    Linearisation,
    Options,
    PilotRun,
    eval_interval,
    grid_options,
    grid_pilots,
    informations,
    listed_options,
    listed_pilots,
    pilot_runs,
)
from cptopt.design.pilot_value import (
    DEFAULT_DRAWS,
    Decision,
    Draws,
    Outlook,
    posterior_covariance,
)
from cptopt.exceptions import CptoptError, InputError, param
from cptopt.law.fitted import CptLaw
from cptopt.pilots.runs import PilotSet
from cptopt.search.candidates import checkpoint_choices
from cptopt.search.evaluate import Evaluator
from cptopt.search.models import Candidate, Constraints, SearchSpace, parse_weights
from cptopt.search.space import ResolvedSpace, resolve_space

#: Default tolerance: a regret below 0.1 % of the objective is below the noise floor (the
#: seed-to-seed spread of a final loss on the bundled runs is 0.08-0.44 %).
DEFAULT_TOLERANCE = 0.001
#: Default P(best) at which the decision counts as settled.
DEFAULT_P_BEST = 0.95


# -- results ----------------------------------------------------------------------------


class ParameterGain(BaseModel):
    """How much a pilot narrows one parameter: 1 - posterior / prior variance."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="'<validation set> <parameter>'")
    reduction: float


class PilotScore(BaseModel):
    """One candidate pilot run and what it is expected to do to the decision."""

    model_config = ConfigDict(extra="forbid")

    rank: int
    name: str
    schedule: str
    peak_lr: float
    replay_ratio: float
    steps: int
    checkpoint: str
    tokens: float | None = Field(description="steps x tokens per step (None when unknown)")
    expected_regret_after: float = Field(description="of the recommendation made after it")
    value: float = Field(description="expected regret now minus after (value of information)")
    p_best_after: float
    predictive_sd: float = Field(
        description="RMS over its eval points and both losses of the SD of log-loss now"
    )
    pins_down: list[ParameterGain]
    duplicate_of: str | None = Field(default=None, description="the pilot it repeats")
    flags: list[str] = Field(description="settings outside what the pilots covered")


class NextPilot(BaseModel):
    """The result of :func:`next_pilot`."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, serialize_by_alias=True)

    cptopt_version: str = __version__
    weights: tuple[float, float]
    recommendation: str = Field(description="the best decision option under the fitted law")
    objective: float
    expected_regret: float = Field(description="of the recommendation now (objective units)")
    p_best: float = Field(description="P(the recommendation is the best, up to the tolerance)")
    tolerance: float = Field(description="regret below this is noise (objective units)")
    settled: bool = Field(description="no further pilot is worth running")
    reason: str = Field(description="why (not) settled")
    candidate_pilots: list[PilotScore] = Field(
        alias="candidates", description="the best candidate pilots, best first"
    )
    n_candidate_pilots: int = Field(alias="n_candidates")
    n_options: int = Field(description="decision options (before pruning)")
    n_contenders: int = Field(description="options that can be the best")
    method: str
    notes: list[str]
    seconds: float

    @property
    def best(self) -> PilotScore | None:
        """The pilot to run next (None when no candidate was scored)."""
        return self.candidate_pilots[0] if self.candidate_pilots else None


# -- scoring -----------------------------------------------------------------------------


def decision_of(
    model: LatentModel, options: Options, weights: tuple[float, float], tolerance: float
) -> tuple[Decision, list[str]]:
    """The options' objective and its derivative by ``z`` (options the law cannot predict
    dropped), the tolerance made absolute (a share of the recommended objective)."""
    objective = np.zeros(len(options.areas))
    sensitivity = np.zeros((len(options.areas), model.dimension))
    for weight, vs in zip(weights, model.law.validation_sets, strict=True):
        prediction, derivative = model.sensitivity(vs, options.areas, log=False)
        objective = objective + weight * prediction
        sensitivity = sensitivity + weight * derivative
    valid = np.flatnonzero(np.isfinite(objective) & np.isfinite(sensitivity).all(axis=1))
    if valid.size == 0:
        raise InputError("the law predicts no valid loss for any decision option")
    objective, sensitivity = objective[valid], sensitivity[valid]
    absolute = tolerance * abs(float(objective.min()))
    labels = [options.labels[i] for i in valid]
    return Decision(objective, sensitivity, absolute), labels


def parameter_gains(
    model: LatentModel, prior: np.ndarray, posteriors: np.ndarray, top: int = 3
) -> list[list[ParameterGain]]:
    """Per candidate, the parameters whose variance it narrows most (at least 5 %)."""
    before = model.parameter_variance(prior)
    after = model.parameter_variance(posteriors)
    names, reductions = [], []
    for vs in model.law.validation_sets:
        names += [f"{vs} {name}" for name in model.forms[vs].names]
        known = before[vs] > 1e-30
        reductions.append(np.where(known, 1.0 - after[vs] / np.where(known, before[vs], 1), 0))
    reduction = np.concatenate(reductions, axis=1)
    out = []
    for row in reduction:
        order = [i for i in np.argsort(-row, kind="stable")[:top] if row[i] >= 0.05]
        out.append([ParameterGain(name=names[i], reduction=float(row[i])) for i in order])
    return out


def stop_rule(
    regret: float, p_best: float, best_value: float, decision: Decision, threshold: float
) -> tuple[bool, str]:
    """Whether piloting should stop, and why (one sentence)."""
    tolerance = decision.tolerance
    share = decision.objective.min()
    if regret <= tolerance:
        return True, (
            f"the expected regret of the recommendation, {regret:.2g} ({regret / share:.2%}), "
            f"is below the tolerance {tolerance:.2g}: no further pilot is worth running"
        )
    if p_best >= threshold:
        return True, (
            f"P(best) of the recommendation is {p_best:.2f} >= {threshold:g}: no further "
            "pilot is worth running"
        )
    if best_value < tolerance:
        return True, (
            f"the expected regret is {regret:.2g} ({regret / share:.2%}), but no candidate "
            f"lowers it by the tolerance {tolerance:.2g}: no further pilot of these is worth "
            "running (the uncertainty left is where these pilots do not reach)"
        )
    return False, (
        f"the expected regret of the recommendation is {regret:.2g} ({regret / share:.2%}), "
        f"above the tolerance {tolerance:.2g}: a pilot can still change the decision"
    )


def _check_settings(
    tolerance: float,
    p_best_threshold: float,
    top_k: int | None,
    draws: int,
    pilot_steps: int | None,
    candidate_pilots: Sequence[Candidate] | None,
    seed: int,
) -> None:
    if candidate_pilots is not None and not candidate_pilots:
        raise InputError("no candidate pilots given")
    if candidate_pilots is not None and pilot_steps is not None:
        raise InputError(
            f"{param('pilot_steps')} sets the grid's length; candidate pilots give their own"
        )
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise InputError(f"{param('tolerance')} == {tolerance!r}, must be a finite number >= 0")
    if not 0 < p_best_threshold <= 1:
        raise InputError(f"{param('p_best_threshold')} == {p_best_threshold!r}, must be in (0, 1]")
    if top_k is not None and top_k < 1:
        raise InputError(f"{param('top_k')} == {top_k}, must be >= 1")
    if draws < 2:
        raise InputError(f"draws == {draws}, must be >= 2")
    if pilot_steps is not None and not 10 <= pilot_steps <= MAX_STEPS:
        raise InputError(f"{param('pilot_steps')} == {pilot_steps}, must be in 10..{MAX_STEPS}")
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"{param('seed')} == {seed}, must be in 0..{MAX_SEED}")


def _options(
    law: CptLaw,
    options: Sequence[Candidate] | None,
    evaluator_args: tuple,
    space_args: tuple,
) -> tuple[Options, str]:
    """The decision's options and a sentence saying what they are."""
    weights, constraints, default_tps = evaluator_args
    if options is not None:
        if not options:
            raise InputError("no decision options given")
        choices, _ = checkpoint_choices(law, options)
        evaluator = Evaluator(law, choices, *weights, default_tps, constraints)
        chosen = listed_options(law, options, evaluator)
        return chosen, f"the {len(chosen.labels)} feasible options given"
    resolved = space_args[0]
    # The space keeps steps and tokens within the budget (as recommend does).
    limits = constraints.model_copy(update={"max_steps": None, "max_tokens": None})
    evaluator = Evaluator(law, resolved.checkpoints, *weights, resolved.tokens_per_step, limits)
    chosen = grid_options(law, resolved, evaluator)
    return chosen, (
        f"a grid of {len(chosen.labels)} feasible settings of the space recommend searches "
        "(the recommendation is its best point)"
    )


def _updates(
    model: LatentModel,
    prior: np.ndarray,
    runs: list[PilotRun],
    existing: list[PilotRun],
    every: int,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, list[str | None]]:
    """Per candidate: the covariance it leaves, its log-loss sensitivities, its points the
    law cannot predict, and the pilot it repeats (a repeat adds nothing)."""
    info, stacked, bad = informations(model, runs, every)
    repeats = [next((p.name for p in existing if run.repeats(p)), None) for run in runs]
    info[[i for i, r in enumerate(repeats) if r is not None]] = 0.0
    return posterior_covariance(prior, info), stacked, bad, repeats


def next_pilot(
    law: CptLaw,
    weights: str | Sequence[float] = (0.5, 0.5),
    *,
    pilots: PilotSet | None = None,
    candidate_pilots: Sequence[Candidate] | None = None,
    options: Sequence[Candidate] | None = None,
    space: SearchSpace | None = None,
    constraints: Constraints | None = None,
    allow_extrapolation: bool = False,
    pilot_steps: int | None = None,
    top_k: int | None = 5,
    tolerance: float = DEFAULT_TOLERANCE,
    p_best_threshold: float = DEFAULT_P_BEST,
    linearisation: Linearisation = "ensemble",
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> NextPilot:
    """Rank candidate pilot runs by the expected regret of the recommendation after each.

    ``weights``: ``(w_general, w_domain)`` or ``"0.3,0.7"``. ``pilots``: the pilots the law
    was fitted to (recommended: a candidate that repeats one adds nothing; candidates log at
    their eval spacing). ``candidate_pilots``: the pilot runs to rank (default: peak LRs x replay
    ratios x families of the search space, ``pilot_steps`` long, default the longest pilot).
    ``options``: the settings the decision chooses between (default: a grid of the space).
    ``space``, ``constraints``, ``allow_extrapolation``: as for ``recommend``. ``top_k``:
    candidates reported (None: all). ``tolerance`` (a share of the objective) and
    ``p_best_threshold``: the stopping rule. ``linearisation``: "ensemble" (secants over the
    refits) or "jacobian". ``draws``, ``seed``: the Monte Carlo draws.
    """
    started = time.perf_counter()
    _check_settings(tolerance, p_best_threshold, top_k, draws, pilot_steps, candidate_pilots, seed)
    w_general, w_domain, normalised = parse_weights(weights)
    constraints = constraints or Constraints()
    model = LatentModel(law, linearisation)
    resolved = resolve_space(law, space or SearchSpace(), constraints, allow_extrapolation)
    evaluator_args = ((w_general, w_domain), constraints, resolved.tokens_per_step)
    chosen_options, options_text = _options(law, options, evaluator_args, (resolved,))
    decision, labels = decision_of(model, chosen_options, (w_general, w_domain), tolerance)
    every = eval_interval(law, pilots)
    runs = _candidate_runs(law, resolved, candidate_pilots, pilot_steps)
    existing = pilot_runs(law, pilots) if pilots is not None else []
    prior = np.eye(model.dimension)
    posteriors, stacked, bad, repeats = _updates(model, prior, runs, existing, every)
    result = Outlook(decision, prior, Draws.standard(model.dimension, draws, seed))
    regret_after = result.regret_after(posteriors)
    # A repeat is worth nothing by construction, not by a subtraction that rounds to 1e-16.
    regret_after[[i for i, pilot in enumerate(repeats) if pilot is not None]] = result.regret
    value = result.regret - float(regret_after.min())
    settled, reason = stop_rule(result.regret, result.p_best, value, decision, p_best_threshold)
    outcome, per_run = (result, regret_after), (stacked, bad, repeats)
    scores = _scores(law, model, runs, (prior, posteriors), outcome, per_run, top_k)
    return NextPilot(
        weights=(w_general, w_domain),
        recommendation=labels[decision.chosen],
        objective=float(decision.objective[decision.chosen]),
        expected_regret=result.regret,
        p_best=result.p_best,
        tolerance=decision.tolerance,
        settled=settled,
        reason=reason,
        candidate_pilots=scores,
        n_candidate_pilots=len(runs),
        n_options=len(labels),
        n_contenders=int(result.kept.size),
        method=_method(model, options_text, draws, seed),
        notes=list(law.notes) + _notes(pilots, normalised, (w_general, w_domain), bad, every),
        seconds=time.perf_counter() - started,
    )


def _candidate_runs(
    law: CptLaw,
    space: ResolvedSpace,
    candidate_pilots: Sequence[Candidate] | None,
    pilot_steps: int | None,
) -> list[PilotRun]:
    """The candidate pilots: the user's, or a grid of the search space ``pilot_steps`` long
    (default: the longest pilot)."""
    if candidate_pilots is None:
        return grid_pilots(space, pilot_steps or law.coverage.steps_max)
    return listed_pilots(law, candidate_pilots, space.tokens_per_step)


def next_pilot_hint(
    law: CptLaw,
    weights: Sequence[float],
    *,
    space: SearchSpace | None = None,
    constraints: Constraints | None = None,
    allow_extrapolation: bool = False,
    options: Sequence[Candidate] | None = None,
) -> NextPilot | None:
    """:func:`next_pilot` reporting the best candidate only, or None when it cannot answer
    (a law without refits, a space it cannot grid): the hint ``recommend`` prints."""
    try:
        return next_pilot(
            law,
            weights,
            space=space,
            constraints=constraints,
            allow_extrapolation=allow_extrapolation,
            options=options,
            top_k=1,
        )
    except CptoptError:
        return None


def _scores(
    law: CptLaw,
    model: LatentModel,
    runs: list[PilotRun],
    covariances: tuple[np.ndarray, np.ndarray],
    outcome: tuple[Outlook, np.ndarray],
    per_run: tuple[list[np.ndarray], np.ndarray, list[str | None]],
    top_k: int | None,
) -> list[PilotScore]:
    """The ``top_k`` best candidates (largest value, then fewest steps), scored in full."""
    result, regret_after = outcome
    value = result.regret - regret_after
    order = sorted(range(len(runs)), key=lambda i: (-value[i], runs[i].lr.size, runs[i].name))
    order = order if top_k is None else order[:top_k]
    prior, posteriors = covariances[0], covariances[1][order]
    p_best_after = result.p_best_after(posteriors)
    stacked, bad, repeats = per_run
    gains = parameter_gains(model, prior, posteriors)
    scores = []
    for rank, i in enumerate(order):
        run = runs[i]
        rows = stacked[i]
        spread = (
            float(np.sqrt(np.mean(np.einsum("nk,kl,nl->n", rows, prior, rows))))
            if len(rows)
            else 0.0
        )
        flags = law.scenario.coverage_flags(
            peak_lr=float(run.lr.max()),
            replay_ratio=run.replay_ratio,
            steps=int(run.lr.size),
            checkpoint=run.checkpoint,
            tokens_per_step=run.tokens_per_step,
        )
        if bad[i]:
            flags.append(f"the law or a refit predicts no valid loss at {bad[i]} of its points")
        scores.append(
            PilotScore(
                rank=rank + 1,
                name=run.name,
                schedule=run.schedule,
                peak_lr=float(run.lr.max()),
                replay_ratio=run.replay_ratio,
                steps=int(run.lr.size),
                checkpoint=run.checkpoint,
                tokens=None
                if run.tokens_per_step is None
                else float(run.lr.size * run.tokens_per_step),
                expected_regret_after=float(regret_after[i]),
                value=float(value[i]),
                p_best_after=float(p_best_after[rank]),
                predictive_sd=spread,
                pins_down=gains[rank],
                duplicate_of=repeats[i],
                flags=flags,
            )
        )
    return scores


def _notes(
    pilots: PilotSet | None,
    normalised: bool,
    weights: tuple[float, float],
    bad: np.ndarray,
    every: int,
) -> list[str]:
    where = "the pilots'" if pilots is not None else "the law file's"
    notes = [f"candidates are evaluated every {every} steps ({where} spacing)"]
    if pilots is None:
        notes.append(
            "pilots not given: a candidate that repeats a pilot is not recognised (its "
            "value is overstated); pass the pilots' manifest"
        )
    if normalised:
        notes.append(f"weights normalised to {weights[0]:.4g},{weights[1]:.4g}")
    if bad.any():
        notes.append(f"{int((bad > 0).sum())} candidate(s) reach settings the law cannot predict")
    return notes


def _method(model: LatentModel, options_text: str, draws: int, seed: int) -> str:
    return (
        f"expected regret of the recommendation under a Gaussian on the parameters (mean: "
        f"the fit; covariance: the jackknife over its {model.dimension} leave-one-pilot-out "
        f"refits, both sets jointly), {model.linearisation} linearisation; each candidate "
        f"updates it as a Kalman step (eval noise + a per-curve offset); decision over "
        f"{options_text}; {draws} Monte Carlo draws, seed {seed}"
    )
