"""The recommendation engine: profile update, retrieval and ranking for one event or one user.

``Recommender`` is what the profile agent calls and what the offline evaluation replays; ``Views``
holds the co-occurrence and popularity statistics it ranks with. Both are plain objects: no Faust, no
Kafka; the index is the ``VectorIndex`` port.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from fusionrec.agents.ports import ItemVector, VectorIndex
from fusionrec.agents.profile import ProfileModel, ProfileState
from fusionrec.agents.ranking import Candidate, Filters, RankWeights, overfetch, rank, shortlist
from fusionrec.agents.stats import Catalogue, ItemInfo, ItemStats
from fusionrec.encoders.fusion import query_transform
from fusionrec.encoders.query import QueryEncoder
from fusionrec.schemas import (
    ErrorCode,
    EventError,
    FusionrecError,
    Interaction,
    InteractionType,
    Item,
    QueryError,
    Recommendation,
    RecommendedItem,
    check_not_ahead,
    decode,
)

logger = logging.getLogger(__name__)

PROFILE_VERSION = "profile-v2"
FUSION_CHECK_S = 30.0


@dataclass(frozen=True)
class ListRequest:
    """One list to make: for ``state`` of ``user_id``, after ``trigger`` when an event asked for it."""

    state: ProfileState
    user_id: str
    trigger: Interaction | None = None
    filters: Filters | None = None
    k: int | None = None
    encoder_version: str | None = None  # of the trigger's item; the engine's last one when None


@dataclass(frozen=True)
class Applied:
    """An event applied to its user's profile: the profile after it and the list it yields."""

    event: Interaction
    state: ProfileState
    recommendation: Recommendation


@dataclass(frozen=True)
class Duplicate:
    """An event whose id the profile already holds (a redelivery): yielded, nothing written."""

    event_id: str


class Views:
    """The catalogue and the catalogue-wide statistics, shared between the thread that feeds them
    and the threads that rank; every access holds the lock."""

    def __init__(self, catalogue: Catalogue | None = None, stats: ItemStats | None = None) -> None:
        self.catalogue = catalogue or Catalogue()
        self.stats = stats or ItemStats()
        self.lock = threading.Lock()

    def learn_item(self, item: Item) -> None:
        info = ItemInfo(item.title, item.category or "", item.available,
                        item.updated_at.timestamp() if item.updated_at else 0.0)
        with self.lock:
            self.catalogue.learn_one(item.id, info, version=item.version)

    def learn_interaction(self, event_id: str, user_id: str, item_id: str, weight: float, timestamp: float) -> None:
        with self.lock:
            info = self.catalogue.get(item_id)
            self.stats.learn_one(event_id, user_id, item_id, weight, timestamp, info.category if info else "")


class Recommender:
    """Applies one interaction to a profile state and builds the user's fresh list.

    Candidates come from three sources, merged: nearest neighbours in the vector index of the
    profile's short-term and interest vectors (over-fetched, seen items dropped outside the
    index), items that co-occur with the user's recent items, and popular/trending items (the
    only source for a user with no history). :func:`~fusionrec.agents.ranking.rank` blends,
    filters and diversifies them. Pure apart from the index and views it is given.
    """

    def __init__(
        self, index: VectorIndex, model: ProfileModel, *, views: Views, top_k: int, max_candidates: int,
        max_event_bytes: int, weights: RankWeights | None = None, filters: Filters | None = None,
        per_source: int = 50, cache_size: int = 50_000, max_queries: int = 4, max_future_s: float = 86_400.0,
        queries: QueryEncoder | None = None,
    ) -> None:
        self.index = index
        self.model = model
        self.views = views
        self.top_k = top_k
        self.max_candidates = max_candidates
        self.max_event_bytes = max_event_bytes
        self.max_future_s = max_future_s
        self.weights = weights or RankWeights()
        self.filters = filters or Filters()
        self.per_source = per_source
        self.max_queries = max_queries
        self.encoder_version = "unknown"
        self._cache: OrderedDict[str, ItemVector] = OrderedDict()
        self.cache_size = cache_size
        self.queries = queries
        self._fusion: tuple[float, dict | None, Callable[[np.ndarray], np.ndarray]] = (-1e9, None, query_transform(None))

    def fusion_spec(self) -> dict | None:
        """The collection's fusion spec, re-read every :data:`FUSION_CHECK_S`, so a re-encode with
        another fusion is picked up (cached item vectors of the old space are dropped then)."""
        checked, spec, transform = self._fusion
        now = time.monotonic()
        if now - checked > FUSION_CHECK_S:
            new = self.index.fusion_spec()
            if (new or {}).get("version") != (spec or {}).get("version"):
                transform = query_transform(new)
                self._cache.clear()
            self._fusion = (now, new, transform)
        return self._fusion[1]

    def query(self, vector: np.ndarray) -> np.ndarray:
        """A profile or query vector shaped for the index as the collection's fusion says."""
        self.fusion_spec()
        return self._fusion[2](vector)

    def encode_queries(self, modality: str, inputs: Sequence[object]) -> np.ndarray:
        """Search words (or decoded pictures) as rows of the fused item space (blocking: a model call)."""
        spec = self.fusion_spec()
        if self.queries is None:
            raise QueryError("this worker encodes no queries (FUSIONREC_SEARCH_MODALITIES is empty)", status=422)
        if spec is None:
            raise QueryError("nothing is indexed yet: there is no catalogue to search", status=503)
        return self.queries.encode(modality, inputs, spec)

    def vectors(self, ids: Sequence[str]) -> dict[str, ItemVector]:
        """Item vectors by id, from a cache in front of the index.

        A cached vector is used while its version is the newest the catalogue has seen; a newer
        item version (re-encoded content) is fetched again. Vectors fetched before the encoder
        stored the newest version are not cached.
        """
        with self.views.lock:
            newest = {i: self.views.catalogue.version(i) for i in ids}
        out, missing = {}, []
        for i in ids:
            hit = self._cache.get(i)
            if hit is not None and hit.version >= newest[i]:
                self._cache.move_to_end(i)
                out[i] = hit
            else:
                missing.append(i)
        if missing:
            for i, v in self.index.get(missing).items():
                out[i] = v
                if v.version >= newest[i]:
                    self._cache[i] = v
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    def decode(self, raw: bytes | None, key: bytes | None) -> Interaction:
        event = decode(Interaction, raw, max_bytes=self.max_event_bytes)
        # Profiles live in the partition of their user: a wrongly keyed event would split a profile.
        if key is None or key.decode(errors="replace") != event.user_id:
            raise EventError(ErrorCode.KEY_MISMATCH, f"message key {key!r} is not the user id {event.user_id!r}")
        check_not_ahead(event.timestamp, "timestamp", max_ahead_s=self.max_future_s, now=time.time())
        return event

    def handle_many(
        self, events: Sequence[Interaction], states: Mapping[str, ProfileState], *, now: float | None = None,
    ) -> tuple[dict[str, ProfileState], list[Applied | Duplicate | EventError]]:
        """Apply a micro-batch of events in order, then make one list per applied event (blocking:
        index calls). One ``get`` fetches every item the batch names, one search serves every list.

        Returns each touched user's final state and one outcome per event, in event order: the
        :class:`Applied` event with its list, a :class:`Duplicate` (the profile already holds it,
        or an earlier event of the batch had the same id) or the :class:`EventError` it failed with.
        ``states`` is not changed, so a batch can be run again after a failure.
        """
        vectors = self.vectors(list(dict.fromkeys(e.item_id for e in events if e.item_id is not None)))
        searched = self._search_vectors(events, states)
        current = dict(states)
        outcomes: list[Applied | Duplicate | EventError | int] = []
        requests: list[ListRequest] = []
        for event in events:
            state = current.get(event.user_id) or ProfileState()
            item = vectors.get(event.item_id) if event.item_id is not None else None
            if state.has_applied(event.event_id):
                outcomes.append(Duplicate(event.event_id))
            elif event.type is InteractionType.SEARCH:
                found = searched.get(event.event_id)
                if isinstance(found, EventError):
                    outcomes.append(found)
                    continue
                state = current[event.user_id] = self.model.learn_query(state, event.event_id, found, event.query or "")
                outcomes.append(len(requests))
                requests.append(ListRequest(state, event.user_id, trigger=event))
            elif item is None:
                outcomes.append(EventError(ErrorCode.UNKNOWN_ITEM, f"item {event.item_id!r} is not in the index"))
            else:
                state = current[event.user_id] = self.model.learn_one(
                    state, event.event_id, event.item_id, item.vector, event.type, event.value,
                    event.timestamp.timestamp(),
                )
                outcomes.append(len(requests))
                requests.append(ListRequest(state, event.user_id, trigger=event, encoder_version=item.encoder_version))
        if requests:
            self.encoder_version = requests[-1].encoder_version or self.encoder_version
        lists = self.recommend_many(requests, now=now)
        done = [Applied(requests[o].trigger, requests[o].state, lists[o]) if isinstance(o, int) else o
                for o in outcomes]
        return {u: s for u, s in current.items() if s is not states.get(u)}, done  # type: ignore[misc]

    def _search_vectors(
        self, events: Sequence[Interaction], states: Mapping[str, ProfileState],
    ) -> dict[str, np.ndarray | EventError]:
        """The query vector of each search event not applied yet, by event id (one model call), or
        the error every one of them fails with."""
        todo = {e.event_id: e.query or "" for e in events if e.type is InteractionType.SEARCH
                and not (states.get(e.user_id) or ProfileState()).has_applied(e.event_id)}
        if not todo:
            return {}
        try:
            rows = self.encode_queries("text", list(todo.values()))
        except FusionrecError as exc:
            error = EventError(ErrorCode.ENCODE_FAILED, f"search query not encoded: {exc}")
            return dict.fromkeys(todo, error)
        return dict(zip(todo, rows, strict=True))

    def title(self, item_id: str) -> str:
        info = self.views.catalogue.get(item_id)
        return f"\u201c{info.title}\u201d" if info and info.title else item_id

    def recommend(
        self, state: ProfileState, user_id: str, *, trigger: Interaction | None = None,
        filters: Filters | None = None, k: int | None = None, now: float | None = None,
    ) -> Recommendation:
        """The list for ``state`` now (blocking: index calls). Works for a user with no history too."""
        return self.recommend_many([ListRequest(state, user_id, trigger=trigger, filters=filters, k=k)], now=now)[0]

    def recommend_many(self, requests: Sequence[ListRequest], *, now: float | None = None) -> list[Recommendation]:
        """One list per request, as :meth:`recommend` makes each, with one index search for all of
        them and the catalogue-wide sources (popular, trending) read once."""
        if not requests:
            return []
        now = time.time() if now is None else now
        queries = [r.state.queries(self.max_queries) for r in requests]
        limits = [overfetch(self.per_source, len(r.state.seen), self.max_candidates) for r in requests]
        flat = [self.query(q[1]) for qs in queries for q in qs]
        # One search at the largest limit; each request keeps its own prefix of the ranked hits.
        found = iter(self.index.search_many(flat, max(limits)) if flat else [])
        hits = [[next(found)[:limit] for _ in qs] for qs, limit in zip(queries, limits, strict=True)]
        popular: dict[tuple[int, str | None], list[tuple[str, float]]] = {}
        with self.views.lock:
            built = [self._candidates(r, qs, h, popular, now)
                     for r, qs, h in zip(requests, queries, hits, strict=True)]
        wanted = list(dict.fromkeys(i for _, pool, _ in built for i in pool)) if self.weights.diversity else []
        vectors = {i: v.vector for i, v in self.vectors(wanted).items()} if self.weights.diversity else None
        out = []
        with self.views.lock:
            for r, (candidates, pool, interactions) in zip(requests, built, strict=True):
                ranked = rank(
                    {i: candidates[i] for i in pool}, k=r.k or self.top_k, weights=self.weights,
                    catalogue=self.views.catalogue, exclude=set(r.state.seen), filters=r.filters or self.filters,
                    now=now, vectors=vectors, interactions=interactions,
                )
                out.append(Recommendation(
                    user_id=r.user_id,
                    items=[RecommendedItem(item_id=x.item_id, score=x.score, reason=x.reason) for x in ranked],
                    model_version=f"{PROFILE_VERSION}+{r.encoder_version or self.encoder_version}",
                    generated_at=datetime.now(UTC),
                    trigger_event_id=r.trigger.event_id if r.trigger else None,
                    trigger_timestamp=r.trigger.timestamp if r.trigger else None,
                ))
        return out

    def _candidates(
        self, r: ListRequest, queries: list[tuple[str, np.ndarray, float]], results: list[list[tuple[str, float]]],
        popular: dict[tuple[int, str | None], list[tuple[str, float]]], now: float,
    ) -> tuple[dict[str, Candidate], list[str], dict[str, int] | None]:
        """Candidates of one request from its search hits, co-occurrence and popularity, and the
        shortlist :func:`rank` orders; the caller holds the views' lock."""
        state, k = r.state, r.k or self.top_k
        seen = set(state.seen)
        stats, catalogue = self.views.stats, self.views.catalogue
        candidates: dict[str, Candidate] = {}

        def cand(item_id: str) -> Candidate:
            c = candidates.get(item_id)
            if c is None:
                c = candidates[item_id] = Candidate(item_id)
            return c

        def top(n: int, category: str | None = None) -> list[tuple[str, float]]:
            if (n, category) not in popular:
                popular[n, category] = (stats.popular(n, category=category) if category
                                        else stats.popular(n, trending=True))
            return popular[n, category]

        last = self.title(state.recent[-1]) if state.recent else ""
        if state.last_query:
            last_reason = f"matches your search \u2018{state.last_query}\u2019"
        else:
            last_reason = f"similar to {last}" if last else "similar to items you liked"
        for (name, _, weight), hits in zip(queries, results, strict=True):
            reason = last_reason if name == "short" else "similar to items you liked"
            # Over-fetched so that per_source unseen hits remain; the seen ones are dropped here.
            for item_id, score in [h for h in hits if h[0] not in seen][: self.per_source]:
                cand(item_id).add("content", weight * score, reason)
        for item_id, score, via in stats.neighbours(state.recent[-5:], self.per_source):
            cand(item_id).add("cooccurrence", score, f"often chosen with {self.title(via)}")
        for item_id, score in top(self.per_source):
            cand(item_id).add("popularity", score, "popular now")
        recent_categories = {info.category for i in state.recent[-5:] if (info := catalogue.get(i)) and info.category}
        for category in sorted(recent_categories):
            for item_id, score in top(self.per_source // 2, category):
                cand(item_id).add("popularity", score, f"popular in {category}")
        first_seen = stats.first_seen
        for item_id, score in stats.popularity_of(list(candidates)).items():
            c = candidates[item_id]
            c.popularity = max(c.popularity, score)
            c.first_seen = first_seen.get(item_id, 0.0)
        filters = r.filters or self.filters
        pool = shortlist(candidates, 4 * k, weights=self.weights, catalogue=catalogue, exclude=seen,
                         filters=filters, now=now)
        interactions = None
        if self.weights.new_item_share:
            counts = stats.counts
            new = sorted((i for i, c in candidates.items() if i not in seen and c.content > 0
                          and counts.get(i, 0) < self.weights.new_item_interactions),
                         key=lambda i: -candidates[i].content)
            in_pool = set(pool)
            pool += [i for i in new[: 4 * self.weights.new_item_slots(k)] if i not in in_pool]
            interactions = {i: counts.get(i, 0) for i in pool}
        return candidates, pool, interactions
