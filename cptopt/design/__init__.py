"""Design: search -> design. Which pilot run to launch next, and when to stop piloting.

The decision it serves is the one :mod:`cptopt.search` makes (``recommend``); its
uncertainty is the fitted law's (its leave-one-pilot-out refits).

- :mod:`cptopt.design.pilot_value`: what a pilot is worth to a decision (linear-Gaussian
  preposterior maths; nothing there knows what a law is);
- :mod:`cptopt.design.pilot_model`: the law as a linear model over its refits, candidate
  pilots and decision options;
- :mod:`cptopt.design.next_pilot`: :func:`next_pilot`, the ranking and the stopping rule.
"""

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
    "NextPilot",
    "PilotScore",
    "next_pilot",
    "next_pilot_hint",
]
