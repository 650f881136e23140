"""Scenarios: one per kind of pilot, the owner of everything that kind decides.

A scenario is decided once, when a manifest is read (:func:`scenario_of` the pilot set) or
a law file is (``FittedLaw.scenario``), and from then on it answers for its kind:

- its validation sets (``general`` and ``domain`` for CPT pilots, ``loss`` for
  pre-training runs);
- the one conversion of a run, pilot or planned, into the law's inputs
  (:meth:`~CptScenario.inputs`; :class:`cptopt.search.shapes.FinalAreas` is the vectorised
  twin for many searched settings);
- each validation set's fit data (:meth:`~CptScenario.fit_data`: the fit receives arrays,
  never the pilot set);
- what the pilots covered and the flags of a setting outside it;
- the default steps a prediction reports (``run.report_steps``).

- :mod:`cptopt.law.scenario.cpt`: :class:`CptScenario`, :class:`CptRunInput`;
- :mod:`cptopt.law.scenario.pretraining`: :class:`PretrainScenario`,
  :class:`PretrainRunInput`;
- :mod:`cptopt.law.scenario._base`: :class:`InputNeeds`, :class:`FitData`,
  :class:`Coverage`, :class:`InputRecord`.

A new kind of pilot is a new scenario here (and its manifest ``kind``, its pilot set in
``pilots/runs.py``, its law record in ``law/fitted.py``, its fit in ``fitting/``:
docs/architecture.md).
"""

from __future__ import annotations

from cptopt.exceptions import InputError
from cptopt.law.scenario._base import (
    RANGE_TOLERANCE,
    Coverage,
    FitData,
    InputNeeds,
    InputRecord,
)
from cptopt.law.scenario.cpt import PT_POINT_CHOICES, PT_POINTS_FROM, CptRunInput, CptScenario
from cptopt.law.scenario.pretraining import LOSS, PretrainRunInput, PretrainScenario
from cptopt.pilots.runs import Pilots

#: Either scenario.
Scenario = CptScenario | PretrainScenario
#: A run as the law reads it, of either kind.
RunInput = CptRunInput | PretrainRunInput
#: The scenario of each manifest ``kind``.
SCENARIOS: dict[str, type[CptScenario] | type[PretrainScenario]] = {
    CptScenario.kind: CptScenario,
    PretrainScenario.kind: PretrainScenario,
}


def scenario_type(kind: str) -> type[CptScenario] | type[PretrainScenario]:
    """The scenario of a manifest's ``kind`` ("cpt" or "pretrain")."""
    if kind not in SCENARIOS:
        raise InputError(f"kind == {kind!r}, must be one of {', '.join(SCENARIOS)}")
    return SCENARIOS[kind]


def scenario_of(pilots: Pilots) -> Scenario:
    """The scenario of a pilot set (its ``kind``), built from it (the fit reads its data
    through it)."""
    kind = getattr(type(pilots), "kind", None)
    if kind not in SCENARIOS:
        raise InputError(f"not a pilot set: {type(pilots).__name__}")
    return SCENARIOS[kind].from_pilots(pilots)  # type: ignore[arg-type]


__all__ = [
    "LOSS",
    "PT_POINTS_FROM",
    "PT_POINT_CHOICES",
    "RANGE_TOLERANCE",
    "SCENARIOS",
    "Coverage",
    "CptRunInput",
    "CptScenario",
    "FitData",
    "InputNeeds",
    "InputRecord",
    "PretrainRunInput",
    "PretrainScenario",
    "RunInput",
    "Scenario",
    "scenario_of",
    "scenario_type",
]
