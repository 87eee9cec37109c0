"""The interaction path: decode -> validate -> update the profile -> retrieve -> rank -> emit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fusionrec.schemas import (
    ErrorCode,
    EventError,
    Interaction,
    Recommendation,
    RecommendedItem,
    decode,
)
from fusionrec.streams.index import VectorIndex
from fusionrec.streams.sinks import EventSink

from .profile import ProfileModel, ProfileState
from .ranking import overfetch, top_k_unseen
from .routing import dead_letter, internal_error, retry_unavailable

logger = logging.getLogger(__name__)

PROFILE_VERSION = "profile-v1"


@dataclass(frozen=True)
class Duplicate:
    """An event whose id the profile already holds (a redelivery): yielded, nothing written."""

    event_id: str


class Recommender:
    """Applies one interaction to a profile state and builds the user's fresh list.

    Pure apart from the vector index it is given; the agent owns the table and the topics.
    """

    def __init__(
        self, index: VectorIndex, model: ProfileModel, *, top_k: int, max_candidates: int, max_event_bytes: int
    ) -> None:
        self.index = index
        self.model = model
        self.top_k = top_k
        self.max_candidates = max_candidates
        self.max_event_bytes = max_event_bytes

    def decode(self, raw: bytes | None, key: bytes | None) -> Interaction:
        event = decode(Interaction, raw, max_bytes=self.max_event_bytes)
        # Profiles live in the partition of their user: a wrongly keyed event would split a profile.
        if key is None or key.decode(errors="replace") != event.user_id:
            raise EventError(ErrorCode.KEY_MISMATCH, f"message key {key!r} is not the user id {event.user_id!r}")
        return event

    def handle(self, event: Interaction, state: ProfileState) -> tuple[ProfileState, Recommendation]:
        """Blocking (index calls): the new state and the list it yields."""
        found = self.index.get([event.item_id])
        item = found.get(event.item_id)
        if item is None:
            raise EventError(ErrorCode.UNKNOWN_ITEM, f"item {event.item_id!r} is not in the index")
        state = self.model.learn_one(
            state, event.event_id, event.item_id, item.vector, event.type, event.value, event.timestamp.timestamp()
        )
        return state, self.recommend(state, event, f"{PROFILE_VERSION}+{item.encoder_version}")

    def recommend(self, state: ProfileState, event: Interaction | None, model_version: str) -> Recommendation:
        profile = state.vector()
        ranked: list[tuple[str, float]] = []
        if profile is not None:
            limit = overfetch(self.top_k, len(state.seen), self.max_candidates)
            ranked = top_k_unseen(self.index.search(profile, limit), set(state.seen), self.top_k)
        return Recommendation(
            user_id=event.user_id if event else "",
            items=[RecommendedItem(item_id=i, score=round(s, 6), reason="similar to your profile") for i, s in ranked],
            model_version=model_version,
            generated_at=datetime.now(UTC),
            trigger_event_id=event.event_id if event else None,
            trigger_timestamp=event.timestamp if event else None,
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


def register(
    app: Any, *, topic: Any, retry_topic: Any, table: MutableMapping[bytes, bytes], processor: Recommender,
    sink: EventSink, recommendations: str, dead_letters: str, retry: RetryPolicy,
) -> tuple[Any, Any]:
    """Add the ``recommend`` and ``retry_pending`` agents to a Faust ``app``.

    Each yields one outcome per event: the :class:`Recommendation` it emitted, the
    :class:`DeadLetter` it wrote, a :class:`Duplicate`, or a :class:`Deferred`. An interaction
    whose item is not indexed yet goes to the retry topic (same partitions, same key, so the same
    worker and profile table take it up) and is retried with growing delays until the item exists
    or ``retry.timeout_s`` has passed since it was first read; then it is dead-lettered.
    """
    retry_name = retry_topic.get_topic_name()

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
            await sink.send(dead_letters, message.key, letter)
            return letter
        table[message.key] = state.to_bytes()
        await sink.send(recommendations, message.key, rec)
        return rec

    @app.agent(topic, name="recommend")
    async def recommend(stream: Any) -> Any:
        async for event in stream.events():
            message = event.message
            yield await process(message, 0, message.timestamp or time.time())

    @app.agent(retry_topic, name="retry_pending")
    async def retry_pending(stream: Any) -> Any:
        async for event in stream.events():
            message = event.message
            headers = _headers(message)
            attempt = int(headers.get(ATTEMPT, b"1"))
            first_seen = float(headers.get(FIRST_SEEN, b"0")) or time.time()
            # Records on a retry partition wait in order; each sleeps out only its own remaining delay.
            due = (message.timestamp or time.time()) + retry.delay(attempt)
            await asyncio.sleep(max(0.0, due - time.time()))
            yield await process(message, attempt, first_seen)

    return recommend, retry_pending
