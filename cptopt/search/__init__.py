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
- :mod:`cptopt.search.candidates`: :func:`rank_candidates`;
- :mod:`cptopt.search.pretraining` (records in :mod:`~cptopt.search.pretrain_models`):
  :func:`recommend_pretrain`, a pre-training schedule from a law fitted to pre-training
  pilots;
- :mod:`cptopt.search.kinds`: each kind of law's search (:func:`recommend_for`).

Which pilot to run next is the design stage's (:mod:`cptopt.design`).
"""

from cptopt.search.candidates import checkpoint_choices, load_candidates, rank_candidates
from cptopt.search.kinds import LAW_SEARCHES, LawSearch, law_search, recommend_for
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
    search_config_law,
)
from cptopt.search.pretrain_models import (
    PretrainAssessment,
    PretrainRecommendation,
    PretrainSearchConfig,
    PretrainSearchSpace,
    PretrainSetting,
)
from cptopt.search.pretraining import recommend_pretrain
from cptopt.search.recommendation import dense_optimum, recommend

__all__ = [
    "LAW_SEARCHES",
    "Assessment",
    "Candidate",
    "CandidateRanking",
    "Constraints",
    "LawSearch",
    "PretrainAssessment",
    "PretrainRecommendation",
    "PretrainSearchConfig",
    "PretrainSearchSpace",
    "PretrainSetting",
    "Recommendation",
    "SearchConfig",
    "SearchSettings",
    "SearchSpace",
    "Setting",
    "checkpoint_choices",
    "dense_optimum",
    "law_search",
    "load_candidates",
    "load_search_config",
    "parse_weights",
    "rank_candidates",
    "recommend",
    "recommend_for",
    "recommend_pretrain",
    "search_config_law",
]
