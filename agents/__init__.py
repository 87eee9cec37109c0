"""Agents route events (decode -> validate -> call -> write); the math they call is pure."""

from .profile import DEFAULT_EVENT_WEIGHTS, ProfileConfig, ProfileModel, ProfileState
from .ranking import overfetch, top_k_unseen

__all__ = ["DEFAULT_EVENT_WEIGHTS", "ProfileConfig", "ProfileModel", "ProfileState", "overfetch", "top_k_unseen"]
