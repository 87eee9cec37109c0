"""Building the profile engine from settings: one place, used by the profile worker and by
``fusionrec evaluate``, so what is evaluated is what runs."""

from __future__ import annotations

from fusionrec.agents.profile import DEFAULT_EVENT_WEIGHTS, ProfileConfig, ProfileModel
from fusionrec.agents.ranking import Filters, RankWeights
from fusionrec.agents.recommend import Recommender, Views
from fusionrec.agents.stats import ItemStats

from fusionrec.streams.index import VectorIndex
from fusionrec.streams.settings import Settings


def profile_config(settings: Settings) -> ProfileConfig:
    return ProfileConfig(
        half_life_s=settings.profile_half_life_s, weights={**DEFAULT_EVENT_WEIGHTS, **settings.event_weights},
        short_term_alpha=settings.short_term_alpha, max_interests=settings.max_interests,
        rating_midpoint=settings.rating_midpoint,
    )


def rank_weights(settings: Settings) -> RankWeights:
    return RankWeights(
        content=settings.weight_content, cooccurrence=settings.weight_cooccurrence,
        popularity=settings.weight_popularity, freshness=settings.weight_freshness, diversity=settings.diversity,
        new_item_share=settings.new_item_share, new_item_interactions=settings.new_item_interactions,
        newness=settings.weight_newness, newness_half_life_s=settings.newness_half_life_s,
    )


def build_recommender(settings: Settings, index: VectorIndex, *, weights: RankWeights | None = None) -> Recommender:
    """A :class:`Recommender` with empty views; ``weights`` overrides the settings' ranking weights."""
    stats = ItemStats(popularity_half_life_s=settings.popularity_half_life_s,
                      trending_half_life_s=settings.trending_half_life_s,
                      recent_per_user=settings.cooccurrence_window)
    return Recommender(
        index, ProfileModel(profile_config(settings)), views=Views(stats=stats), top_k=settings.top_k,
        max_candidates=settings.max_candidates, max_event_bytes=settings.max_event_bytes,
        max_future_s=settings.max_future_s,
        max_queries=settings.max_queries, weights=weights or rank_weights(settings),
        filters=Filters(frozenset(settings.include_categories), frozenset(settings.exclude_categories)),
    )
