"""Search: fit -> search. Choose CPT settings with the fitted law, or rank the user's own.

- :mod:`cptopt.search.models`: what to search (space, constraints, settings, candidates)
  and what it found (recommendation, ranking);
- :mod:`cptopt.search.space`: the resolved space;
- :mod:`cptopt.search.shapes`: the areas of many settings at their last step;
- :mod:`cptopt.search.evaluate`: the objective and the constraints (the one place);
- :mod:`cptopt.search.assess`: full assessments of the settings reported;
- :mod:`cptopt.search.refine`: local refinement and the dense search;
- :mod:`cptopt.search.study`, :mod:`cptopt.search.storage`: the Optuna study;
- :mod:`cptopt.search.recommendation`: :func:`recommend`;
- :mod:`cptopt.search.candidates`: :func:`rank_candidates`.

Which pilot to run next is the design stage's (:mod:`cptopt.design`).
"""

from cptopt.search.candidates import checkpoint_choices, load_candidates, rank_candidates
from cptopt.search.models import (
    Assessment,
    Candidate,
    CandidateRanking,
    Constraints,
    Recommendation,
    SearchConfig,
    SearchSettings,
    SearchSpace,
    Setting,
    load_search_config,
    parse_weights,
)
from cptopt.search.recommendation import dense_optimum, recommend

__all__ = [
    "Assessment",
    "Candidate",
    "CandidateRanking",
    "Constraints",
    "Recommendation",
    "SearchConfig",
    "SearchSettings",
    "SearchSpace",
    "Setting",
    "checkpoint_choices",
    "dense_optimum",
    "load_candidates",
    "load_search_config",
    "parse_weights",
    "rank_candidates",
    "recommend",
]
