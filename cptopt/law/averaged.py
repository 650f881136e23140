"""Averaged laws: the weighted average of several law forms' predictions for one set.

A set whose form the pilots cannot decide (the LR area or a power of it; the course of the
forgetting with replay) is predicted by the average of its candidate forms, weighted by
their leave-one-pilot-out errors, instead of by the one a hard choice picks: one more pilot
then moves the weights a little instead of flipping the law (docs/law.md, section 6).

An :class:`AveragedLaw` is a :class:`~cptopt.law.forms.LawForm` whose parameters are its
members' (``relax^q.E``) and their weights (``weight.relax^q``): a law file stores it as
any other form, under a name that lists its members (``relax/relax^q``), and
:func:`build_law` rebuilds it from that name. Its members are fitted one by one
(:mod:`cptopt.fitting.averaging`), never jointly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from cptopt.law.areas import Areas
from cptopt.law.forms import FORMS, LawForm, make_law
from cptopt.law.parameters import ParamSpec

#: How a member of an averaged law is named: its form, and ``^q`` when its shift is driven
#: by a power of the LR (``relax^q``); members are joined by ``/`` (``relax/relax^q``).
LR_POWER_MARK = "^q"
MEMBER_SEPARATOR = "/"
#: A member's weight among the averaged law's parameters: ``weight.<member>``.
WEIGHT_PREFIX = "weight."
#: How far stored weights may sum from 1 (the fit normalises them; JSON keeps each float).
WEIGHT_SUM_TOLERANCE = 1e-9


def member_name(form: str, lr_power: bool) -> str:
    """The name of one member of an averaged law (:class:`AveragedLaw`)."""
    return form + (LR_POWER_MARK if lr_power else "")


def is_averaged(form: str) -> bool:
    """Whether ``form`` names an averaged law (its members joined by ``/``)."""
    return MEMBER_SEPARATOR in form


def member_forms(form: str) -> list[tuple[str, bool]]:
    """The members ``(form, lr_power)`` an averaged law's name lists; a ValueError when one
    is not a CPT form (:data:`~cptopt.law.forms.FORMS`), or fewer than two differ."""
    labels = form.split(MEMBER_SEPARATOR)
    members = [
        (label.removesuffix(LR_POWER_MARK), label.endswith(LR_POWER_MARK)) for label in labels
    ]
    unknown = [name for name, _ in members if name not in FORMS]
    if unknown:
        raise ValueError(
            f"averaged form {form!r}: {unknown[0]!r} is not a law form; its members are forms "
            f"of {', '.join(FORMS)} ({LR_POWER_MARK!r} marks an LR power) joined by "
            f"{MEMBER_SEPARATOR!r}"
        )
    if len(set(labels)) < max(2, len(labels)):
        raise ValueError(f"averaged form {form!r}: needs two or more different members")
    return members


def check_weights(form: str, names: list[str], values: list[float]) -> None:
    """A ValueError unless the stored parameters ``names``/``values`` of the averaged law
    ``form`` hold a weight per member, finite, non-negative and summing to 1 (within
    :data:`WEIGHT_SUM_TOLERANCE`)."""
    stored = dict(zip(names, values, strict=False))
    keys = [WEIGHT_PREFIX + label for label in form.split(MEMBER_SEPARATOR)]
    missing = [key for key in keys if key not in stored]
    if missing:
        raise ValueError(f"averaged form {form!r}: no {missing[0]} among the parameters")
    weights = np.array([stored[key] for key in keys], dtype=float)
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"{', '.join(keys)} must be finite and non-negative")
    if abs(weights.sum() - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise ValueError(f"{', '.join(keys)} sum to {weights.sum():.12g}, not 1")


class AveragedLaw(LawForm):
    """The weighted average of the predictions of several member forms, each with its own
    parameters: ``L = sum_k w_k L_k``, ``sum_k w_k = 1``.

    It carries what the pilots cannot decide (e.g. whether a set's shift counts the LR area
    or a power of it) instead of a hard choice that one more pilot can flip. The members are
    fitted on their own; the weights come from their leave-one-pilot-out errors
    (:mod:`cptopt.fitting.averaging`) and are stored as parameters (``weight.<member>``)
    after the members' (``<member>.<name>``), so a law file holds it as any other form.
    """

    replay_form = "average"

    def __init__(self, validation_set: str, members: list[LawForm]) -> None:
        if len(members) < 2:
            raise ValueError("an averaged law needs at least two members")
        first = members[0]
        self.members = members
        self.labels = [member_name(m.name, m.lr_power) for m in members]
        self.name = MEMBER_SEPARATOR.join(self.labels)
        self.validation_set = validation_set
        self.replay_terms = first.replay_terms
        self.checkpoint_known = first.checkpoint_known
        self.annealing = first.annealing
        self.domain_forward = first.domain_forward
        self.lr_power = any(m.lr_power for m in members)
        self.specs = self._specs()
        self.names = [spec.name for spec in self.specs]
        self.linear_names: list[str] = []
        self.shape_names = list(self.names)
        self.sizes = [len(m.names) for m in members]

    def _specs(self) -> list[ParamSpec]:
        specs = [
            replace(spec, name=f"{label}.{spec.name}")
            for label, member in zip(self.labels, self.members, strict=True)
            for spec in member.specs
        ]
        return specs + [
            ParamSpec(WEIGHT_PREFIX + label, 0.0, 1.0, 0.0, 1.0, description="weight of a member")
            for label in self.labels
        ]

    @property
    def needs_history(self) -> bool:
        return any(m.needs_history for m in self.members)

    @property
    def needs_steps(self) -> bool:
        return any(m.needs_steps for m in self.members)

    def split_members(self, values: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """``(..., P)`` vectors -> each member's ``(..., P_k)`` and the weights ``(..., K)``."""
        values = np.asarray(values, dtype=float)
        bounds = np.cumsum([0, *self.sizes])
        parts = [values[..., a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return parts, values[..., bounds[-1] :]

    def join(self, parts: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
        """The members' vectors and the weights as one vector of this law."""
        return np.concatenate([*(np.asarray(p, dtype=float) for p in parts), weights])

    def member_predictions(self, values: np.ndarray, areas: Areas) -> tuple[np.ndarray, np.ndarray]:
        """Each member's prediction ``(K, ..., n)`` under one vector ``values`` and the
        weights ``(K,)``: what :func:`~cptopt.law.uncertainty.between_member_variance`
        reads."""
        parts, weights = self.split_members(values)
        predictions = [m.evaluate(p, areas) for m, p in zip(self.members, parts, strict=True)]
        return np.array(predictions), np.asarray(weights, dtype=float)

    def basis(self, shape: dict[str, np.ndarray], areas: Areas) -> np.ndarray:
        raise TypeError("an averaged law has no linear basis: its members are fitted alone")

    def evaluate(self, values: np.ndarray, areas: Areas) -> np.ndarray:
        parts, weights = self.split_members(values)
        total = 0.0
        for k, (member, part) in enumerate(zip(self.members, parts, strict=True)):
            total = total + weights[..., k, None] * member.evaluate(part, areas)
        return np.asarray(total)

    def jacobian(self, values: np.ndarray, areas: Areas) -> tuple[np.ndarray, np.ndarray]:
        parts, weights = self.split_members(values)
        outs = [m.jacobian(p, areas) for m, p in zip(self.members, parts, strict=True)]
        prediction = sum(w * out[0] for w, out in zip(weights, outs, strict=True))
        columns = [w * out[1] for w, out in zip(weights, outs, strict=True)]
        columns.append(np.stack([out[0] for out in outs], axis=1))
        return np.asarray(prediction), np.concatenate(columns, axis=1)

    def derived(self, values: dict[str, float]) -> dict[str, float]:
        out = {}
        for label, member in zip(self.labels, self.members, strict=True):
            own = {name: values[f"{label}.{name}"] for name in member.names}
            out.update({f"{label}.{k}": v for k, v in member.derived(own).items()})
        return out


def build_law(form: str, validation_set: str, *settings: Any, **options: Any) -> LawForm:
    """:func:`~cptopt.law.forms.make_law` (the same arguments), and for a name of members
    joined by ``/`` (``relax/relax^q``) the :class:`AveragedLaw` of those members (``^q``:
    LR power; ``lr_power`` is then read from the names: :func:`member_forms`)."""
    if not is_averaged(form):
        return make_law(form, validation_set, *settings, **options)
    options.pop("lr_power", None)
    members = [
        make_law(name, validation_set, *settings, **options, lr_power=lr_power)
        for name, lr_power in member_forms(form)
    ]
    return AveragedLaw(validation_set, members)
