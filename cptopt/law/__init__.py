"""The law: runs -> areas -> law. What a schedule does to the loss, and the fitted-law file.

- :mod:`cptopt.law.areas`: forward and annealing areas (S1, S2) of PT + CPT schedules;
- :mod:`cptopt.law.drops`: LR drops and their history (the multi-power memory's input);
- :mod:`cptopt.law.annealing`: annealing memories (the paper's S2, multi-power);
- :mod:`cptopt.law.forms`: the law forms (:class:`LawForm` and its replay forms);
- :mod:`cptopt.law.parameters`: coefficient specs and fitted parameters;
- :mod:`cptopt.law.fitted`: the fitted-law file (:class:`FittedLaw`, :func:`load_law`);
- :mod:`cptopt.law.uncertainty`: jackknife and interval quantiles.

docs/law.md explains the law in words.
"""

from cptopt.law.fitted import DEFAULT_LAW_PATH, FittedLaw, SelectionRow, load_law
from cptopt.law.forms import FORMS, PAPER_LAMBDA, LawForm, make_law
from cptopt.law.parameters import Parameter, ParamSpec

__all__ = [
    "DEFAULT_LAW_PATH",
    "FORMS",
    "PAPER_LAMBDA",
    "FittedLaw",
    "LawForm",
    "ParamSpec",
    "Parameter",
    "SelectionRow",
    "load_law",
    "make_law",
]
