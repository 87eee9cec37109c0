"""Agents route events (decode -> validate -> call -> write); the math they call is pure."""

from .emission import Decision, EmissionConfig, EmissionPolicy
from .profile import DEFAULT_EVENT_WEIGHTS, ProfileConfig, ProfileModel, ProfileState
from .ranking import Candidate, Filters, Ranked, RankWeights, overfetch, rank
from .stats import Catalogue, ItemInfo, ItemStats

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
    "RankWeights",
    "Ranked",
    "overfetch",
    "rank",
]
