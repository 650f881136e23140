"""The prior of a first-pilots design (:mod:`cptopt.design.first_pilots`): laws fitted to
other domains' pilots (by default the bundled ``priors/cpt-code.json`` and
``priors/cpt-cyr.json``), and what one of them says of the candidates and of the decision,
in its own units (LRs as multiples of the pre-training peak, steps of its pilots' length)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from cptopt.design.next_pilot import decision_of
from cptopt.design.pilot_grid import Spec
from cptopt.design.pilot_model import LatentModel, PilotRun, eval_steps, grid_options, informations
from cptopt.design.pilot_value import Draws, Outlook, posterior_covariance, sqrt_psd
from cptopt.exceptions import CptoptError, InputError, param
from cptopt.law.areas import Areas
from cptopt.law.fitted import CptLaw, load_cpt_law
from cptopt.law.scenario import InputNeeds
from cptopt.search.evaluate import Evaluator
from cptopt.search.models import Constraints, SearchSpace
from cptopt.search.space import ResolvedSpace, resolve_space

#: The bundled priors (``priors/<name>.json``), the default.
DEFAULT_PRIORS = ("cpt-code", "cpt-cyr")
#: The prior's SD is its own jackknife's times this: another domain is further away.
WIDEN = 2.0


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


def logdet_gain(view: PriorView, base: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Per candidate in ``order``: ``log det(I + C^1/2 I C^1/2)`` with ``base`` info."""
    root = sqrt_psd(view.covariance)
    inner = root @ (base + view.info[order]) @ root
    return np.linalg.slogdet(np.eye(view.covariance.shape[0]) + inner)[1]


def regret_after(view: PriorView, base: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Per candidate in ``order``: the decision's expected regret (share) after it."""
    posteriors = posterior_covariance(view.covariance, base + view.info[order])
    return np.mean([o.regret_after(posteriors) / scale for o, scale in view.outlooks], axis=0)


def regret_now(views: list[PriorView]) -> float:
    return float(np.mean([o.regret / s for v in views for o, s in v.outlooks]))
