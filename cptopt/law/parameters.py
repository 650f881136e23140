"""Coefficients of a law: how a form declares them, and how a fit reports them.

A :class:`ParamSpec` is what a law form says about one coefficient before any fit (bounds,
the range random starts are drawn from, how the optimiser sees it). A :class:`Parameter` is
that coefficient after a fit (lmfit-style: value, bounds, standard error, at a bound).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class ParamSpec:
    """A coefficient of a law form: bounds, start range and how the optimiser sees it.

    ``log``: the optimiser works on ``log(value)`` (scale parameters spanning decades);
    ``linear``: the loss is linear in it given the shape parameters.
    """

    name: str
    lower: float
    upper: float
    start_low: float
    start_high: float
    log: bool = False
    linear: bool = False
    description: str = ""


class Parameter(BaseModel):
    """A fitted coefficient (lmfit-style): value, bounds, and its standard error."""

    model_config = ConfigDict(extra="forbid")

    name: str
    value: float
    min: float
    max: float
    vary: bool = True
    stderr: float | None = None
    at_bound: bool = False
    description: str = ""

    @property
    def relative_stderr(self) -> float | None:
        if self.stderr is None or self.value == 0:
            return None
        return abs(self.stderr / self.value)
