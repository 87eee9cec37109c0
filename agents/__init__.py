"""Agents route events (decode -> validate -> call -> write); the math they call is pure."""

from fusionrec.agents.emission import Decision, EmissionConfig, EmissionPolicy
from fusionrec.agents.profile import DEFAULT_EVENT_WEIGHTS, ProfileConfig, ProfileModel, ProfileState
from fusionrec.agents.ranking import Candidate, Filters, Ranked, RankWeights, overfetch, rank
from fusionrec.agents.search import Query, Searcher, SearchRequest, SearchWeights
from fusionrec.agents.stats import Catalogue, ItemInfo, ItemStats

__all__ = [
    "DEFAULT_EVENT_WEIGHTS",
    "Candidate",
    "Catalogue",
    "Decision",
    "EmissionConfig",
    "EmissionPolicy",
    "Filters",
    "ItemInfo",
    "ItemStats",
    "ProfileConfig",
    "ProfileModel",
    "ProfileState",
    "Query",
    "RankWeights",
    "Ranked",
    "SearchRequest",
    "SearchWeights",
    "Searcher",
    "overfetch",
    "rank",
]
