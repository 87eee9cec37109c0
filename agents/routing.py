"""What every agent does with a message it cannot process: one dead-letter record, then go on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from fusionrec.agents.ports import EventSink
from fusionrec.schemas import DeadLetter, ErrorCode, EventError, VectorIndexError, VectorStoreUnavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")

# A dead letter must always fit where it is sent: Kafka producers and brokers refuse records over
# 1 MB by default, and a letter carrying a 1.5 MB original in base64 is 2 MB. The original's head
# is kept (the letter says so); the whole record stays at its topic, partition and offset, where
# `fusionrec deadletters --replay` reads it back from.
MAX_ORIGINAL_BYTES = 256 * 1024
MAX_KEY_BYTES = 1024
MAX_REASON_CHARS = 2000
SEND_RETRY_MAX_S = 30.0


def dead_letter(message: Any, error: EventError, *, origin: bytes | None = None) -> DeadLetter:
    """The dead-letter record for a Faust/aiokafka-style ``message`` (topic, partition, offset, key, value).

    ``origin`` (``b"topic|partition|offset"``) names the first record when ``message`` is a retry
    of it, so the dead letter points at (and ``--replay`` re-publishes to) the original topic.
    An original over :data:`MAX_ORIGINAL_BYTES` is cut to that size and the letter says so
    (``original_truncated``, ``original_size``), so the letter itself can always be written.
    """
    topic, partition, offset = message.topic, message.partition, message.offset
    if origin:
        o_topic, o_partition, o_offset = origin.decode().rsplit("|", 2)
        topic, partition, offset = o_topic, int(o_partition), int(o_offset)
    value = message.value
    original = value if isinstance(value, bytes) else b"" if value is None else str(value).encode()
    key = message.key if isinstance(message.key, bytes) or message.key is None else str(message.key).encode()
    reason = error.reason if len(error.reason) <= MAX_REASON_CHARS else error.reason[:MAX_REASON_CHARS] + "..."
    logger.warning("dead letter %s[%s]@%s: %s: %s", topic, partition, offset, error.code, reason)
    return DeadLetter(
        # In-memory channels (agent test contexts) have no topic, partition or offset.
        source_topic=str(topic or ""),
        partition=-1 if partition is None else partition,
        offset=-1 if offset is None else offset,
        key=None if key is None else key[:MAX_KEY_BYTES],
        error_code=error.code,
        reason=reason,
        original=original[:MAX_ORIGINAL_BYTES],
        original_size=len(original),
        original_truncated=len(original) > MAX_ORIGINAL_BYTES or (key is not None and len(key) > MAX_KEY_BYTES),
        failed_at=datetime.now(UTC),
    )


async def send_letter(sink: EventSink, topic: str, letter: DeadLetter) -> None:
    """Write ``letter``, waiting out a failing broker rather than raising.

    A letter that fails to send must not take the worker down with it: the agent would restart,
    and the events of its micro-batch whose offsets were already committed would be lost. After
    three failed sends the original is left out of the letter (it stays at its source offset).
    """
    delay, attempt = 0.2, 0
    while True:
        try:
            await sink.send(topic, letter.key, letter)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the producer says, the letter is retried
            attempt += 1
            logger.warning("writing a dead letter for %s[%s]@%s failed (%s: %s); retrying in %.1f s",
                           letter.source_topic, letter.partition, letter.offset, type(exc).__name__, exc, delay)
            if attempt == 3 and letter.original:
                letter = letter.model_copy(update={"original": b"", "original_truncated": True})
            await asyncio.sleep(delay)
            delay = min(delay * 2, SEND_RETRY_MAX_S)


def internal_error(exc: BaseException) -> EventError:
    """An unexpected exception on one event, turned into a dead letter rather than a dead worker."""
    logger.exception("unexpected error while processing an event")
    return EventError(ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")


async def retry_unavailable(
    fn: Callable[[], Awaitable[T]], *, what: str, max_delay_s: float = 30.0, refusals: int = 3,
) -> T:
    """Run ``fn`` until the vector store answers.

    An unreachable store says nothing about the event, so the event is not dead-lettered: the
    partition waits (with capped exponential backoff) and no input is lost. A store that answers
    but refuses the request (:class:`VectorIndexError`) is asked ``refusals`` times in all, in case
    the refusal was passing; then the refusal is this event's :class:`EventError` (``index_rejected``).
    """
    delay, refused = 0.2, 0
    while True:
        try:
            return await fn()
        except VectorStoreUnavailable as exc:
            logger.warning("%s: vector store unavailable (%s); retrying in %.1f s", what, exc, delay)
        except VectorIndexError as exc:
            refused += 1
            if refused >= refusals:
                raise EventError(ErrorCode.INDEX_REJECTED, f"the vector store refused {what}: {exc}") from exc
            logger.warning("%s: vector store refused the request (%s); asking again in %.1f s", what, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay_s)
