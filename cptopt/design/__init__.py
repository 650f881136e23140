"""Design: search -> design. Which pilot runs to launch (first, and next), when to stop.

The decision it serves is the one :mod:`cptopt.search` makes (``recommend``); its
uncertainty is the fitted law's (its leave-one-pilot-out refits).

- :mod:`cptopt.design.pilot_value`: what a pilot is worth to a decision (linear-Gaussian
  preposterior maths; nothing there knows what a law is);
- :mod:`cptopt.design.pilot_model`: the law as a linear model over its refits, candidate
  pilots and decision options;
- :mod:`cptopt.design.next_pilot`: :func:`next_pilot`, the ranking and the stopping rule;
- :mod:`cptopt.design.first_pilots`: :func:`design_pilots`, the first pilots before any fit
  (greedy: reach, decision regret, D-optimality); :mod:`cptopt.design.prior` its prior
  (laws fitted on other domains, ``priors/``) and :mod:`cptopt.design.pilot_grid` its
  candidate pilots.
"""

from cptopt.design.first_pilots import (
    DesignedPilot,
    PilotDesign,
    design_pilots,
    write_pilot_configs,
)
from cptopt.design.next_pilot import (
    DEFAULT_P_BEST,
    DEFAULT_TOLERANCE,
    NextPilot,
    PilotScore,
    next_pilot,
    next_pilot_hint,
)

__all__ = [
    "DEFAULT_P_BEST",
    "DEFAULT_TOLERANCE",
    "DesignedPilot",
    "NextPilot",
    "PilotDesign",
    "PilotScore",
    "design_pilots",
    "next_pilot",
    "next_pilot_hint",
    "write_pilot_configs",
]
