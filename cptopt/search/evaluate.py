"""The objective and the constraints: the one place where settings are scored.

:class:`Evaluator` turns the final areas of many settings into the final general and domain
losses, the objective ``w_general * L_general(T) + w_domain * L_domain(T)`` and one value
per constraint (feasible when <= 0), vectorised. The search scores a :class:`Batch` of
searched settings (areas from :class:`~cptopt.search.shapes.FinalAreas`); the candidate
ranking scores a user's configurations from their own areas through the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cptopt.law.areas import Areas, CheckpointState
from cptopt.law.fitted import CptLaw
from cptopt.search.models import Constraints
from cptopt.search.shapes import Batch, FinalAreas

#: Points per chunk when evaluating the law (bounds memory at ~100 MB).
CHUNK = 250_000


@dataclass(frozen=True)
class CheckpointChoice:
    """A PT checkpoint CPT may start from."""

    label: str
    state: CheckpointState
    pt_step: int | None
    loss_potential: float | None
    piloted: bool


@dataclass
class Evaluator:
    """Final losses, objective and constraint values of many settings at once.

    ``final_areas`` may be shared between evaluators of the same law and checkpoints (a
    sweep over weights), so that per-shape work is done once.
    """

    law: CptLaw
    checkpoints: list[CheckpointChoice]
    w_general: float
    w_domain: float
    tokens_per_step: int | None = None
    constraints: Constraints | None = None
    final_areas: FinalAreas | None = None

    def __post_init__(self) -> None:
        sets = self.law.validation_sets
        self.forms = {vs: self.law.form_for(vs) for vs in sets}
        self.values = {vs: np.asarray(self.law.set_fit(vs).values, float) for vs in sets}
        self.replicas = {
            vs: np.asarray(self.law.set_fit(vs).jackknife, float).reshape(-1, self.values[vs].size)
            for vs in sets
        }
        if self.final_areas is None:
            states = [choice.state for choice in self.checkpoints]
            domain_tokens = self.constraints.domain_tokens if self.constraints else None
            self.final_areas = FinalAreas.for_scenario(
                self.law.scenario, self.law.needs, states, self.tokens_per_step, domain_tokens
            )
        start = self.final_areas.at_start()
        self.initial = {vs: self.forms[vs].evaluate(self.values[vs], start) for vs in self.forms}
        self.limits = self.constraints or Constraints()

    def reweighted(self, w_general: float, w_domain: float) -> Evaluator:
        """The same evaluator for other objective weights (shares the per-shape cache)."""
        return Evaluator(
            self.law,
            self.checkpoints,
            w_general,
            w_domain,
            self.tokens_per_step,
            self.constraints,
            self.final_areas,
        )

    # -- losses -------------------------------------------------------------------------

    def losses_at(
        self, areas: Areas, replicas: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(general, domain, objective)`` at the points of ``areas``, shape ``(n,)``.

        With ``replicas`` each has shape ``(1 + K, n)``: row 0 the fitted law, rows 1.. its
        K leave-one-pilot-out (jackknife) refits.
        """
        out = []
        for vs in self.law.validation_sets:
            values = self.values[vs]
            if replicas:
                values = np.vstack([values[None, :], self.replicas[vs]])
            out.append(self.forms[vs].evaluate(values, areas))
        general, domain = out
        return general, domain, self.w_general * general + self.w_domain * domain

    def losses(
        self, batch: Batch, replicas: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`losses_at` the last step of every setting of ``batch`` (in chunks)."""
        assert self.final_areas is not None
        parts = [
            self.losses_at(self.final_areas(batch.take(slice(start, start + CHUNK))), replicas)
            for start in range(0, max(len(batch), 1), CHUNK)
        ]
        general, domain, objective = (np.concatenate(p, axis=-1) for p in zip(*parts, strict=True))
        return general, domain, objective

    # -- constraints --------------------------------------------------------------------

    def constraint_names(self) -> list[str]:
        limits = self.limits
        names = ["positive_loss"]
        if limits.max_epochs is not None and limits.domain_tokens is not None:
            names.append("max_epochs")
        if limits.max_general_rise is not None:
            names.append("max_general_rise")
        if limits.max_steps is not None:
            names.append("max_steps")
        if limits.max_tokens is not None:
            names.append("max_tokens")
        return names

    def violations(
        self,
        steps: np.ndarray,
        replay_ratio: np.ndarray,
        checkpoint: np.ndarray,
        general: np.ndarray,
        domain: np.ndarray,
        tokens_per_step: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Constraint values per setting (feasible when <= 0), in the units of each limit.

        ``tokens_per_step`` per setting defaults to the evaluator's; where it is unknown
        (NaN) the token and epoch limits cannot be checked and count as kept.
        """
        limits = self.limits
        steps = np.asarray(steps, dtype=float)
        if tokens_per_step is None:
            tokens_per_step = np.asarray(self.tokens_per_step or np.nan, dtype=float)
        tokens = steps * tokens_per_step
        valid = np.isfinite(general) & np.isfinite(domain) & (general > 0) & (domain > 0)
        out: dict[str, np.ndarray] = {}
        for name in self.constraint_names():
            if name == "positive_loss":
                value = np.where(valid, 0.0, 1.0)
            elif name == "max_epochs":
                epochs = (1.0 - replay_ratio) * tokens / limits.domain_tokens  # type: ignore[operator]
                value = epochs - limits.max_epochs
            elif name == "max_general_rise":
                rise = general - self.initial["general"][checkpoint]
                value = rise - limits.max_general_rise
            elif name == "max_steps":
                value = steps - limits.max_steps  # type: ignore[operator]
            else:  # max_tokens
                value = tokens - limits.max_tokens  # type: ignore[operator]
            out[name] = np.nan_to_num(value, nan=-np.inf)
        return out

    def evaluate(self, batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """``(general, domain, objective, violations)`` of every setting, fitted law only.

        Where the law predicts a non-finite or non-positive loss (far outside what the
        pilots covered) the objective is replaced by a clearly bad finite value (the
        losses at the checkpoint + 1 nat) and the ``positive_loss`` constraint is violated.
        """
        general, domain, objective = self.losses(batch)
        valid = np.isfinite(general) & np.isfinite(domain) & (general > 0) & (domain > 0)
        if not valid.all():
            penalty = (
                self.w_general * self.initial["general"][batch.checkpoint]
                + self.w_domain * self.initial["domain"][batch.checkpoint]
                + 1.0
            )
            objective = np.where(valid, objective, penalty)
        violations = self.violations(
            batch.steps, batch.replay_ratio, batch.checkpoint, general, domain
        )
        return general, domain, objective, violations


def feasible_mask(violations: dict[str, np.ndarray], n: int) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    for values in violations.values():
        mask &= values <= 0
    return mask


def violation_text(name: str, value: float, constraints: Constraints) -> str:
    """One line on how much setting breaks constraint ``name`` (``value`` > 0)."""
    if name == "max_epochs":
        return f"domain epochs exceed max_epochs {constraints.max_epochs:g} by {value:.3g}"
    if name == "max_general_rise":
        return (
            f"general loss rises {value:.4f} nats more than max_general_rise "
            f"{constraints.max_general_rise:g}"
        )
    if name == "max_steps":
        return f"{value:.0f} steps over max_steps {constraints.max_steps}"
    if name == "max_tokens":
        return f"{value:.3g} tokens over max_tokens {constraints.max_tokens:g}"
    return "the law predicts a non-positive loss here"
