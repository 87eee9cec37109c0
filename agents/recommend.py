"""The interaction agents: decode -> skip redeliveries -> apply (``Recommender``) -> write the table -> emit.

Events whose item is not indexed yet wait on the retry topic under ``RetryPolicy``; bad ones are
dead-lettered with a reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from fusionrec.agents.emission import Decision, EmissionConfig, EmissionPolicy
from fusionrec.agents.engine import Duplicate, Recommender
from fusionrec.agents.ports import EventSink
from fusionrec.agents.profile import ProfileState
from fusionrec.agents.routing import dead_letter, internal_error, retry_unavailable, send_letter
from fusionrec.schemas import ErrorCode, EventError, Interaction, Recommendation

logger = logging.getLogger(__name__)


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
    return dict(raw.items() if isinstance(raw, dict) else raw)


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
