"""The interaction path: decode -> validate -> update the profile -> retrieve -> rank -> emit."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fusionrec.encoders.fusion import query_transform
from fusionrec.schemas import (
    ErrorCode,
    EventError,
    Interaction,
    Item,
    Recommendation,
    RecommendedItem,
    check_not_ahead,
    decode,
    valid_id,
)
from fusionrec.streams.index import ItemVector, VectorIndex
from fusionrec.streams.kafka.sinks import EventSink

from fusionrec.agents.emission import Decision, EmissionConfig, EmissionPolicy
from fusionrec.agents.profile import ProfileModel, ProfileState
from fusionrec.agents.ranking import Candidate, Filters, RankWeights, overfetch, rank, shortlist
from fusionrec.agents.routing import dead_letter, internal_error, retry_unavailable, send_letter
from fusionrec.agents.stats import Catalogue, ItemInfo, ItemStats

logger = logging.getLogger(__name__)

PROFILE_VERSION = "profile-v2"
FUSION_CHECK_S = 30.0


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
        self._fusion: tuple[float, str | None, Callable[[np.ndarray], np.ndarray]] = (-1e9, None, query_transform(None))

    def query(self, vector: np.ndarray) -> np.ndarray:
        """A profile vector shaped for the index as the collection's fusion says (re-read every
        :data:`FUSION_CHECK_S`, so a re-encode with another fusion is picked up; cached item
        vectors of the old space are dropped then)."""
        checked, version, transform = self._fusion
        now = time.monotonic()
        if now - checked > FUSION_CHECK_S:
            spec = self.index.fusion_spec()
            new = (spec or {}).get("version")
            if new != version:
                transform = query_transform(spec)
                self._cache.clear()
            self._fusion = (now, new, transform)
        return transform(vector)

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

    def handle(self, event: Interaction, state: ProfileState) -> tuple[ProfileState, Recommendation]:
        """Blocking (index calls): the new state and the list it yields."""
        item = self.vectors([event.item_id]).get(event.item_id)
        if item is None:
            raise EventError(ErrorCode.UNKNOWN_ITEM, f"item {event.item_id!r} is not in the index")
        self.encoder_version = item.encoder_version
        state = self.model.learn_one(
            state, event.event_id, event.item_id, item.vector, event.type, event.value, event.timestamp.timestamp()
        )
        return state, self.recommend(state, event.user_id, trigger=event)

    def _title(self, item_id: str) -> str:
        info = self.views.catalogue.get(item_id)
        return f"\u201c{info.title}\u201d" if info and info.title else item_id

    def recommend(
        self, state: ProfileState, user_id: str, *, trigger: Interaction | None = None,
        filters: Filters | None = None, k: int | None = None, now: float | None = None,
    ) -> Recommendation:
        """The list for ``state`` now (blocking: index calls). Works for a user with no history too."""
        k = k or self.top_k
        now = time.time() if now is None else now
        seen = set(state.seen)
        queries = state.queries(self.max_queries)
        limit = overfetch(self.per_source, len(seen), self.max_candidates)
        results = self.index.search_many([self.query(q[1]) for q in queries], limit) if queries else []
        candidates: dict[str, Candidate] = {}

        def cand(item_id: str) -> Candidate:
            return candidates.setdefault(item_id, Candidate(item_id))

        with self.views.lock:
            last = self._title(state.recent[-1]) if state.recent else ""
            for (name, _, weight), hits in zip(queries, results, strict=True):
                reason = f"similar to {last}" if name == "short" and last else "similar to items you liked"
                # Over-fetched so that per_source unseen hits remain; the seen ones are dropped here.
                for item_id, score in [h for h in hits if h[0] not in seen][: self.per_source]:
                    cand(item_id).add("content", weight * score, reason)
            for item_id, score, via in self.views.stats.neighbours(state.recent[-5:], self.per_source):
                cand(item_id).add("cooccurrence", score, f"often chosen with {self._title(via)}")
            for item_id, score in self.views.stats.popular(self.per_source, trending=True):
                cand(item_id).add("popularity", score, "popular now")
            recent_categories = {
                info.category for i in state.recent[-5:] if (info := self.views.catalogue.get(i)) and info.category
            }
            for category in sorted(recent_categories):
                for item_id, score in self.views.stats.popular(self.per_source // 2, category=category):
                    cand(item_id).add("popularity", score, f"popular in {category}")
            first_seen = self.views.stats.first_seen
            for item_id, score in self.views.stats.popularity_of(list(candidates)).items():
                c = candidates[item_id]
                c.popularity = max(c.popularity, score)
                c.first_seen = first_seen.get(item_id, 0.0)
            catalogue = self.views.catalogue
            filters = filters or self.filters
            pool = shortlist(candidates, 4 * k, weights=self.weights, catalogue=catalogue, exclude=seen,
                             filters=filters, now=now)
            interactions = None
            if self.weights.new_item_share:
                counts = self.views.stats.counts
                new = sorted((i for i, c in candidates.items() if i not in seen and c.content > 0
                              and counts.get(i, 0) < self.weights.new_item_interactions),
                             key=lambda i: -candidates[i].content)
                in_pool = set(pool)
                pool += [i for i in new[: 4 * self.weights.new_item_slots(k)] if i not in in_pool]
                interactions = {i: counts.get(i, 0) for i in pool}
        vectors = {i: v.vector for i, v in self.vectors(pool).items()} if self.weights.diversity else None
        with self.views.lock:
            ranked = rank(
                {i: candidates[i] for i in pool}, k=k, weights=self.weights, catalogue=catalogue, exclude=seen,
                filters=filters, now=now, vectors=vectors, interactions=interactions,
            )
        return Recommendation(
            user_id=user_id,
            items=[RecommendedItem(item_id=r.item_id, score=r.score, reason=r.reason) for r in ranked],
            model_version=f"{PROFILE_VERSION}+{self.encoder_version}",
            generated_at=datetime.now(UTC),
            trigger_event_id=trigger.event_id if trigger else None,
            trigger_timestamp=trigger.timestamp if trigger else None,
        )


@dataclass(frozen=True)
class Deferred:
    """An event whose item is not indexed yet: sent to the retry topic, applied later or dead-lettered."""

    event_id: str
    attempt: int


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry an interaction that names an item not yet encoded, and when to give up.

    >>> p = RetryPolicy(first_delay_s=2.0, max_delay_s=60.0, timeout_s=600.0)
    >>> [p.delay(a) for a in (1, 2, 3, 10)]
    [2.0, 4.0, 8.0, 60.0]
    """

    first_delay_s: float = 2.0
    max_delay_s: float = 60.0
    timeout_s: float = 600.0

    def delay(self, attempt: int) -> float:
        return min(self.first_delay_s * 2 ** (attempt - 1), self.max_delay_s)


# Headers a deferred interaction carries on the retry topic.
ATTEMPT = "fusionrec-attempt"
FIRST_SEEN = "fusionrec-first-seen"  # epoch seconds the event was first read
ORIGIN = "fusionrec-origin"  # "topic|partition|offset" of the original record


def _headers(message: Any) -> dict[str, bytes]:
    raw = message.headers or {}
    return {k: v for k, v in (raw.items() if isinstance(raw, dict) else raw)}


@dataclass(frozen=True)
class NotEmitted:
    """An applied event whose list was not published: unchanged, or held by the rate cap."""

    event_id: str
    decision: Decision


def register(
    app: Any, *, topic: Any, retry_topic: Any, table: MutableMapping[bytes, bytes], processor: Recommender,
    sink: EventSink, recommendations: str, dead_letters: str, retry: RetryPolicy,
    emission: EmissionPolicy[Interaction] | None = None, in_order: Callable[[Any], Any] | None = None,
) -> tuple[Any, Any]:
    """Add the ``recommend`` and ``retry_pending`` agents to a Faust ``app``.

    Each yields one outcome per event: the :class:`Recommendation` it emitted, the
    :class:`DeadLetter` it wrote, a :class:`Duplicate`, :class:`NotEmitted` (the emission policy
    held it or the list did not change) or a :class:`Deferred`. An interaction
    whose item is not indexed yet goes to the retry topic (same partitions, same key, so the same
    worker and profile table take it up) and is retried with growing delays until the item exists
    or ``retry.timeout_s`` has passed since it was first read; then it is dead-lettered.
    ``in_order`` wraps each stream's events (the worker passes one that keeps them in offset order
    across rebalances, ``streams.faust_fixes.InOrder``).
    """
    retry_name = retry_topic.get_topic_name()
    ordered = in_order or (lambda events: events)
    emission = emission or EmissionPolicy(EmissionConfig(only_changed=False))

    async def emit(key: bytes, rec: Recommendation, trigger: Interaction) -> Recommendation | NotEmitted:
        decision = emission.offer(rec.user_id, [i.item_id for i in rec.items], now=time.time(), trigger=trigger)
        if decision is not Decision.EMIT:
            return NotEmitted(trigger.event_id, decision)
        await sink.send(recommendations, key, rec)
        return rec

    if emission.config.min_interval_s > 0:

        @app.timer(interval=max(emission.config.min_interval_s / 4, 0.05))
        async def flush_held() -> None:
            loop = asyncio.get_running_loop()
            for user, trigger in emission.due(now=time.time()):
                key = user.encode()
                state = ProfileState.from_bytes(table.get(key))
                try:
                    rec = await retry_unavailable(
                        lambda: loop.run_in_executor(None, lambda: processor.recommend(state, user, trigger=trigger)),
                        what="flush_held",
                    )
                except EventError as exc:  # the event itself was applied; only its held list is lost
                    logger.warning("held list for %s not sent: %s", user, exc)
                    continue
                await emit(key, rec, trigger)

    async def process(message: Any, attempt: int, first_seen: float) -> Any:
        loop = asyncio.get_running_loop()
        try:
            interaction = processor.decode(message.value, message.key)
            state = ProfileState.from_bytes(table.get(message.key))
            if state.has_applied(interaction.event_id):
                # Redelivery after a crash or rebalance: already in the profile, nothing to redo.
                return Duplicate(interaction.event_id)
            state, rec = await retry_unavailable(
                lambda: loop.run_in_executor(None, processor.handle, interaction, state), what="recommend"
            )
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop the worker
            error = exc if isinstance(exc, EventError) else internal_error(exc)
            waited = time.time() - first_seen
            if error.code is ErrorCode.UNKNOWN_ITEM and waited < retry.timeout_s:
                headers = _headers(message)
                headers.update({
                    ATTEMPT: str(attempt + 1).encode(),
                    FIRST_SEEN: repr(first_seen).encode(),
                    ORIGIN: headers.get(ORIGIN) or f"{message.topic}|{message.partition}|{message.offset}".encode(),
                })
                await sink.send(retry_name, message.key, message.value, headers)
                return Deferred(interaction.event_id, attempt + 1)
            if error.code is ErrorCode.UNKNOWN_ITEM:
                error = EventError(error.code, f"{error.reason}; gave up after {attempt} retries over {waited:.0f} s")
            letter = dead_letter(message, error, origin=_headers(message).get(ORIGIN))
            await send_letter(sink, dead_letters, letter)
            return letter
        table[message.key] = state.to_bytes()
        return await emit(message.key, rec, interaction)

    @app.agent(topic, name="recommend")
    async def recommend(stream: Any) -> Any:
        async for event in ordered(stream.events()):
            message = event.message
            yield await process(message, 0, message.timestamp or time.time())

    @app.agent(retry_topic, name="retry_pending")
    async def retry_pending(stream: Any) -> Any:
        async for event in ordered(stream.events()):
            message = event.message
            headers = _headers(message)
            attempt = int(headers.get(ATTEMPT, b"1"))
            first_seen = float(headers.get(FIRST_SEEN, b"0")) or time.time()
            # Records on a retry partition wait in order; each sleeps out only its own remaining delay.
            due = (message.timestamp or time.time()) + retry.delay(attempt)
            await asyncio.sleep(max(0.0, due - time.time()))
            yield await process(message, attempt, first_seen)

    return recommend, retry_pending


def register_page(app: Any, *, table: Any, processor: Recommender) -> Any:
    """``GET /recommend/{user}/?k=10&category=a&exclude_category=b``: a user's list now, without an
    event (cold-start users get popular items). Routed to the worker that owns the user's partition."""

    @app.page("/recommend/{user}/")
    @app.table_route(table=table, match_info="user")
    async def recommendation_page(web: Any, request: Any, user: str) -> Any:
        if not valid_id(user):
            return web.json({"error": "not a valid user id (1-256 characters, no control characters)"}, status=400)
        query = request.query
        try:
            k = int(query.get("k", processor.top_k))
        except ValueError:
            return web.json({"error": "k must be an integer"}, status=400)
        filters = Filters(
            include_categories=frozenset(query.getall("category", [])),
            exclude_categories=frozenset(query.getall("exclude_category", [])),
        )
        state = ProfileState.from_bytes(table.get(user.encode()))
        loop = asyncio.get_running_loop()
        rec = await loop.run_in_executor(
            None, lambda: processor.recommend(state, user, filters=filters, k=max(1, min(k, 1000)))
        )
        return web.bytes(rec.to_bytes(), content_type="application/json")

    @app.page("/profile/{user}/")
    @app.table_route(table=table, match_info="user")
    async def profile_page(web: Any, request: Any, user: str) -> Any:
        """What the worker holds for a user (for operators and for checking replays)."""
        if not valid_id(user):
            return web.json({"error": "not a valid user id (1-256 characters, no control characters)"}, status=400)
        state = ProfileState.from_bytes(table.get(user.encode()))
        return web.json({
            "user_id": user,
            "n_events": state.n_events,
            "seen": list(state.seen),
            "recent": list(state.recent),
            "interests": len(state.interests),
            "vectors_sha256": state.digest(),
        })

    return recommendation_page, profile_page
