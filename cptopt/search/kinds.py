"""What each kind of law searches: its search config and its recommend function.

A table keyed by the law's record (:data:`LAW_SEARCHES`), as ``predict`` dispatches on the
scenario's run: a CPT law (:class:`~cptopt.law.CptLaw`) weighs its two losses and searches
CPT settings (:func:`~cptopt.search.recommendation.recommend`, :class:`SearchConfig`); a
law fitted to pre-training pilots (:class:`~cptopt.law.PretrainRunsLaw`) minimises its one
loss over the schedule (:func:`~cptopt.search.pretraining.recommend_pretrain`,
:class:`PretrainSearchConfig`). A new kind of law adds a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cptopt.exceptions import InputError, param
from cptopt.law.fitted import CptLaw, PretrainRunsLaw
from cptopt.search.models import OverridableConfig, Recommendation, SearchConfig
from cptopt.search.pretrain_models import PretrainRecommendation, PretrainSearchConfig
from cptopt.search.pretraining import recommend_pretrain
from cptopt.search.recommendation import recommend


@dataclass(frozen=True)
class LawSearch:
    """How one kind of law is searched: its config file's model (the keys and options it
    takes), its recommend function, and whether its objective weighs several losses."""

    config: type[OverridableConfig]
    recommend: Callable[..., Recommendation | PretrainRecommendation]
    weighted: bool


#: The search of each kind of law, keyed by its record.
LAW_SEARCHES: dict[type, LawSearch] = {
    CptLaw: LawSearch(SearchConfig, recommend, weighted=True),
    PretrainRunsLaw: LawSearch(PretrainSearchConfig, recommend_pretrain, weighted=False),
}


def law_search(law: CptLaw | PretrainRunsLaw) -> LawSearch:
    """The search of ``law``'s kind (a one-line error for a kind without one)."""
    search = LAW_SEARCHES.get(type(law))
    if search is None:
        raise InputError(
            f"{param('recommend()')} has no search for a law fitted to {law.fitted_to}"
        )
    return search


def recommend_for(
    law: CptLaw | PretrainRunsLaw, weights: Any = None, **options: Any
) -> Recommendation | PretrainRecommendation:
    """Search the settings of ``law``'s kind (:data:`LAW_SEARCHES`): ``weights`` (a CPT
    law's, default 0.5,0.5) and ``options`` go to its recommend function."""
    search = law_search(law)
    if weights is not None:
        if not search.weighted:
            raise InputError(
                f"{param('weights')}: this law was fitted to {law.fitted_to}; its search "
                "minimises its one loss"
            )
        options = {"weights": weights, **options}
    return search.recommend(law, **options)
