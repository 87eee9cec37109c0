"""What every agent does with a message it cannot process: one dead-letter record, then go on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from fusionrec.schemas import DeadLetter, ErrorCode, EventError, VectorIndexError

logger = logging.getLogger(__name__)
T = TypeVar("T")


def dead_letter(message: Any, error: EventError, *, origin: bytes | None = None) -> DeadLetter:
    """The dead-letter record for a Faust/aiokafka-style ``message`` (topic, partition, offset, key, value).

    ``origin`` (``b"topic|partition|offset"``) names the first record when ``message`` is a retry
    of it, so the dead letter points at (and ``--replay`` re-publishes to) the original topic.
    """
    topic, partition, offset = message.topic, message.partition, message.offset
    if origin:
        o_topic, o_partition, o_offset = origin.decode().rsplit("|", 2)
        topic, partition, offset = o_topic, int(o_partition), int(o_offset)
    logger.warning("dead letter %s[%s]@%s: %s", topic, partition, offset, error)
    value = message.value
    return DeadLetter(
        # In-memory channels (agent test contexts) have no topic, partition or offset.
        source_topic=str(topic or ""),
        partition=-1 if partition is None else partition,
        offset=-1 if offset is None else offset,
        key=message.key if isinstance(message.key, bytes) or message.key is None else str(message.key).encode(),
        error_code=error.code,
        reason=error.reason,
        original=value if isinstance(value, bytes) else b"" if value is None else str(value).encode(),
        failed_at=datetime.now(UTC),
    )


def internal_error(exc: BaseException) -> EventError:
    """An unexpected exception on one event, turned into a dead letter rather than a dead worker."""
    logger.exception("unexpected error while processing an event")
    return EventError(ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")


async def retry_unavailable(fn: Callable[[], Awaitable[T]], *, what: str, max_delay_s: float = 30.0) -> T:
    """Run ``fn`` until the vector store answers.

    An unreachable store says nothing about the event, so the event is not dead-lettered: the
    partition waits (with capped exponential backoff) and no input is lost.
    """
    delay = 0.2
    while True:
        try:
            return await fn()
        except VectorIndexError as exc:
            logger.warning("%s: vector store unavailable (%s); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
