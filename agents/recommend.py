"""The interaction agents: micro-batch -> decode -> skip redeliveries -> apply (``Recommender``) -> write the table -> emit.

Events whose item is not indexed yet wait on the retry topic under ``RetryPolicy``; bad ones are
dead-lettered with a reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fusionrec.agents.emission import Decision, EmissionConfig, EmissionPolicy
from fusionrec.agents.engine import Applied, Duplicate, Recommender
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


def _bind(event: Any) -> None:
    """Make ``event`` this task's current Faust event: tables read and write a key in the partition
    of the current event, and a micro-batch spans partitions. Only the context variable is set:
    ``Stream._set_current_event`` would also overwrite the attribute ``take_events`` reads to
    buffer the next message, which then buffers a stale event in place of the one that arrived."""
    from faust.streams import _current_event

    _current_event.set(weakref.ref(event))


class Ordering(Protocol):
    """Keeps each partition's events in offset order (the worker's is ``streams.worker.faust_fixes.InOrder``)."""

    def events(self, events: AsyncIterator[Any]) -> AsyncIterator[Any]: ...
    async def batch(self, events: Sequence[Any]) -> list[Any]: ...


class AsIs:
    """Events as the stream hands them: for in-memory channels, which have no offsets."""

    def events(self, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
        return events

    async def batch(self, events: Sequence[Any]) -> list[Any]:
        return list(events)


def register(
    app: Any, *, topic: Any, retry_topic: Any, table: MutableMapping[bytes, bytes], processor: Recommender,
    sink: EventSink, recommendations: str, dead_letters: str, retry: RetryPolicy,
    emission: EmissionPolicy[Interaction] | None = None, in_order: Ordering | None = None,
    batch_size: int = 1, batch_wait_s: float = 0.0,
) -> tuple[Any, Any]:
    """Add the ``recommend`` and ``retry_pending`` agents to a Faust ``app``.

    ``recommend`` takes interactions in micro-batches of up to ``batch_size`` (from all the
    worker's partitions), waiting at most ``batch_wait_s`` for one to fill, and runs each batch through
    :meth:`Recommender.handle_many` (one index search for the whole batch); Faust acknowledges a
    batch's offsets only after its table writes and sends. Each agent yields one outcome per event:
    the :class:`Recommendation` it emitted, the :class:`DeadLetter` it wrote, a :class:`Duplicate`,
    :class:`NotEmitted` (the emission policy held it or the list did not change) or a
    :class:`Deferred`. An interaction whose item is not indexed yet goes to the retry topic (same
    partitions, same key, so the same worker and profile table take it up) and is retried with
    growing delays until the item exists or ``retry.timeout_s`` has passed since it was first read;
    then it is dead-lettered. ``in_order`` keeps each stream's events in offset order across rebalances.
    """
    retry_name = retry_topic.get_topic_name()
    ordered = in_order or AsIs()
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

    async def fail(message: Any, attempt: int, first_seen: float, exc: Exception, event_id: str | None) -> Any:
        """Defer an event whose item is not indexed yet; dead-letter any other failure."""
        error = exc if isinstance(exc, EventError) else internal_error(exc)
        waited = time.time() - first_seen
        if error.code is ErrorCode.UNKNOWN_ITEM and event_id is not None and waited < retry.timeout_s:
            headers = _headers(message)
            headers.update({
                ATTEMPT: str(attempt + 1).encode(),
                FIRST_SEEN: repr(first_seen).encode(),
                ORIGIN: headers.get(ORIGIN) or f"{message.topic}|{message.partition}|{message.offset}".encode(),
            })
            await sink.send(retry_name, message.key, message.value, headers)
            return Deferred(event_id, attempt + 1)
        if error.code is ErrorCode.UNKNOWN_ITEM:
            error = EventError(error.code, f"{error.reason}; gave up after {attempt} retries over {waited:.0f} s")
        letter = dead_letter(message, error, origin=_headers(message).get(ORIGIN))
        await send_letter(sink, dead_letters, letter)
        return letter

    async def process(batch: Sequence[tuple[Any, int, float]], bind: Callable[[Any], None]) -> list[Any]:
        """Outcomes of ``(event, attempt, first_seen)``s, in order: decode, apply the batch, write, emit.

        ``bind(event)`` makes ``event`` the current one before its user's profile is read or written.
        """
        loop = asyncio.get_running_loop()
        outcomes: list[Any] = [None] * len(batch)
        decoded: list[tuple[int, Interaction]] = []
        for n, (event, attempt, first_seen) in enumerate(batch):
            try:
                decoded.append((n, processor.decode(event.message.value, event.message.key)))
            except Exception as exc:  # noqa: BLE001 - one bad event must not stop the worker
                outcomes[n] = await fail(event.message, attempt, first_seen, exc, None)
        if not decoded:
            return outcomes
        last = {ev.user_id: batch[n][0] for n, ev in decoded}
        states = {}
        for user, event in last.items():
            bind(event)  # a RocksDB-backed table reads the current event's partition too
            states[user] = ProfileState.from_bytes(table.get(event.message.key))
        events = [ev for _, ev in decoded]
        try:
            updated, results = await retry_unavailable(
                lambda: loop.run_in_executor(None, processor.handle_many, events, states), what="recommend"
            )
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop the worker
            if len(decoded) > 1:  # the store refused the batch: each event alone, so only the culprit fails
                logger.warning("a batch of %d events failed (%s); applying them one by one", len(decoded), exc)
                for n, _ in decoded:
                    outcomes[n] = (await process([batch[n]], bind))[0]
                return outcomes
            results = [exc for _ in decoded]
            updated = {}
        for user, state in updated.items():
            bind(last[user])
            table[last[user].message.key] = state.to_bytes()
        for (n, interaction), result in zip(decoded, results, strict=True):
            event, attempt, first_seen = batch[n]
            if isinstance(result, Applied):
                outcomes[n] = await emit(event.message.key, result.recommendation, interaction)
            elif isinstance(result, Duplicate):
                # Redelivery after a crash or rebalance: already in the profile, nothing to redo.
                outcomes[n] = result
            else:
                outcomes[n] = await fail(event.message, attempt, first_seen, result, interaction.event_id)
        return outcomes

    @app.agent(topic, name="recommend")
    async def recommend(stream: Any) -> Any:
        async for events in stream.take_events(batch_size, within=batch_wait_s or None):
            batch = [(e, 0, e.message.timestamp or time.time()) for e in await ordered.batch(events)]
            for outcome in await process(batch, _bind):
                yield outcome

    @app.agent(retry_topic, name="retry_pending")
    async def retry_pending(stream: Any) -> Any:
        async for event in ordered.events(stream.events()):
            message = event.message
            headers = _headers(message)
            attempt = int(headers.get(ATTEMPT, b"1"))
            first_seen = float(headers.get(FIRST_SEEN, b"0")) or time.time()
            # Records on a retry partition wait in order; each sleeps out only its own remaining delay.
            due = (message.timestamp or time.time()) + retry.delay(attempt)
            await asyncio.sleep(max(0.0, due - time.time()))
            yield (await process([(event, attempt, first_seen)], _bind))[0]

    return recommend, retry_pending
