"""The law: runs -> areas -> law. What a schedule does to the loss, and the fitted-law file.

- :mod:`cptopt.law.areas`: forward and annealing areas (S1, S2) of PT + CPT schedules;
- :mod:`cptopt.law.drops`: LR drops and their history (the multi-power memory's input);
- :mod:`cptopt.law.annealing`: annealing memories (the paper's S2, multi-power);
- :mod:`cptopt.law.forms`: the law forms (:class:`LawForm` and its replay forms);
- :mod:`cptopt.law.averaged`: averaged laws (the weighted average of member forms, the
  default fit's law per set) and :func:`~cptopt.law.averaged.build_law`;
- :mod:`cptopt.law.parameters`: coefficient specs and fitted parameters;
- :mod:`cptopt.law.scenario`: one scenario per kind of pilot (the law's inputs, the fit
  data, what the pilots covered);
- :mod:`cptopt.law.fitted`: the fitted-law file (:data:`FittedLaw`: :class:`CptLaw` or
  :class:`PretrainRunsLaw`; :func:`load_law`, :func:`load_cpt_law`);
- :mod:`cptopt.law.uncertainty`: jackknife and interval quantiles.

docs/law.md explains the law in words.
"""

from cptopt.law.fitted import (
    DEFAULT_LAW_PATH,
    SCHEMA_VERSION,
    CptLaw,
    FittedLaw,
    LawRecord,
    PretrainRunsLaw,
    SelectionRow,
    cpt_law,
    load_cpt_law,
    load_law,
)
from cptopt.law.forms import FORMS, PAPER_LAMBDA, LawForm, make_law
from cptopt.law.parameters import Parameter, ParamSpec
from cptopt.law.scenario import (
    Coverage,
    CptRunInput,
    CptScenario,
    InputNeeds,
    PretrainRunInput,
    PretrainScenario,
    Scenario,
    scenario_of,
    scenario_type,
)

__all__ = [
    "DEFAULT_LAW_PATH",
    "FORMS",
    "PAPER_LAMBDA",
    "SCHEMA_VERSION",
    "Coverage",
    "CptLaw",
    "CptRunInput",
    "CptScenario",
    "FittedLaw",
    "InputNeeds",
    "LawForm",
    "LawRecord",
    "ParamSpec",
    "Parameter",
    "PretrainRunInput",
    "PretrainRunsLaw",
    "PretrainScenario",
    "Scenario",
    "SelectionRow",
    "cpt_law",
    "load_cpt_law",
    "load_law",
    "make_law",
    "scenario_of",
    "scenario_type",
]
