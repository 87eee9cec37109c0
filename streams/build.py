"""Building objects from settings, in one place: the encoders, the fusion, the media policy and the
profile engine. The workers, the operator jobs and ``fusionrec evaluate`` all build here, so what is
evaluated is what runs; ``Settings`` itself stays plain data."""

from __future__ import annotations

from collections.abc import Mapping

from fusionrec.agents.engine import Recommender, Views
from fusionrec.agents.profile import DEFAULT_EVENT_WEIGHTS, ProfileConfig, ProfileModel
from fusionrec.agents.ranking import Filters, RankWeights
from fusionrec.agents.search import Searcher, SearchWeights
from fusionrec.agents.stats import ItemStats
from fusionrec.encoders import Encoder, Fusion
from fusionrec.encoders.media import MediaLimits
from fusionrec.encoders.media.fetch import MediaPolicy
from fusionrec.encoders.query import QueryEncoder
from fusionrec.schemas import MediaKind
from fusionrec.streams.index import VectorIndex
from fusionrec.streams.settings import Settings


def media_policy(settings: Settings) -> MediaPolicy:
    return MediaPolicy(
        media_root=settings.media_root,
        allow_http=settings.media_allow_http,
        allow_private_hosts=settings.media_allow_private_hosts,
        timeout_s=settings.media_timeout_s,
        retries=settings.media_retries,
        max_bytes={
            MediaKind.IMAGE: settings.max_image_bytes,
            MediaKind.AUDIO: settings.max_audio_bytes,
            MediaKind.VIDEO: settings.max_video_bytes,
        },
    )


def media_limits(settings: Settings) -> MediaLimits:
    return MediaLimits(max_audio_s=settings.max_audio_s, audio_windows=settings.audio_windows,
                       max_video_s=settings.max_video_s, video_frames=settings.video_frames)


def load_encoders(settings: Settings) -> dict[str, Encoder]:
    """The configured encoders (models load here: only encoder workers and tools call this)."""
    from fusionrec.encoders import load_encoders as load

    return load(
        settings.modalities, text_model=settings.text_model, image_model=settings.image_model,
        audio_model=settings.audio_model, vector_dims=settings.vector_dims, model_dir=settings.model_dir,
        device=settings.device, batch_size=settings.encode_batch_size, threads=settings.torch_threads,
        compile=settings.compile_models,
    )


def make_fusion(settings: Settings, encoders: Mapping[str, Encoder]) -> Fusion:
    from fusionrec.encoders import make_fusion as make

    return make(settings.fusion, encoders, weights=settings.fusion_weights, model=settings.fusion_model)


def profile_config(settings: Settings) -> ProfileConfig:
    return ProfileConfig(
        half_life_s=settings.profile_half_life_s, weights={**DEFAULT_EVENT_WEIGHTS, **settings.event_weights},
        short_term_alpha=settings.short_term_alpha, max_interests=settings.max_interests,
        rating_midpoint=settings.rating_midpoint, search_weight=settings.search_event_weight,
    )


def rank_weights(settings: Settings) -> RankWeights:
    return RankWeights(
        content=settings.weight_content, cooccurrence=settings.weight_cooccurrence,
        popularity=settings.weight_popularity, freshness=settings.weight_freshness, diversity=settings.diversity,
        new_item_share=settings.new_item_share, new_item_interactions=settings.new_item_interactions,
        newness=settings.weight_newness, newness_half_life_s=settings.newness_half_life_s,
    )


def query_encoder(settings: Settings) -> QueryEncoder | None:
    """The encoders of search words and pictures, as the items' own were configured (loaded at first use)."""
    if not settings.search_modalities:
        return None
    common = {"model_dir": settings.model_dir, "device": settings.device, "batch_size": settings.encode_batch_size,
              "threads": settings.torch_threads}

    def text() -> Encoder:
        from fusionrec.encoders import load_text_encoder

        return load_text_encoder(settings.text_model, **common)

    def image() -> Encoder:
        from fusionrec.encoders.image import load_image_encoder

        return load_image_encoder(settings.image_model, **common)

    loaders = {"text": text, "image": image}
    return QueryEncoder({m: loaders[m] for m in settings.search_modalities}, fusion_model=settings.fusion_model)


def search_weights(settings: Settings) -> SearchWeights:
    return SearchWeights(
        personalization=settings.search_personalization, profile=settings.search_weight_profile,
        cooccurrence=settings.search_weight_cooccurrence, popularity=settings.search_weight_popularity,
        pool=settings.search_pool,
    )


def build_searcher(settings: Settings, recommender: Recommender) -> Searcher:
    return Searcher(recommender, search_weights(settings))


def build_recommender(settings: Settings, index: VectorIndex, *, weights: RankWeights | None = None,
                      queries: QueryEncoder | None = None) -> Recommender:
    """A :class:`Recommender` with empty views; ``weights`` overrides the settings' ranking weights and
    ``queries`` encodes search words (for ``search`` events)."""
    stats = ItemStats(popularity_half_life_s=settings.popularity_half_life_s,
                      trending_half_life_s=settings.trending_half_life_s,
                      recent_per_user=settings.cooccurrence_window)
    return Recommender(
        index, ProfileModel(profile_config(settings)), views=Views(stats=stats), top_k=settings.top_k,
        max_candidates=settings.max_candidates, max_event_bytes=settings.max_event_bytes,
        max_future_s=settings.max_future_s,
        max_queries=settings.max_queries, weights=weights or rank_weights(settings),
        filters=Filters(frozenset(settings.include_categories), frozenset(settings.exclude_categories)),
        queries=queries,
    )
