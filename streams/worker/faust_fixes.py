"""Work-arounds for faust-streaming's rebalance handling; they hold against every broker.

Three defects lose or reorder events when partitions move (a worker joins, leaves or stops),
measured with a second profile worker joining and leaving mid-stream (tests/integration/
test_faults.py: 1 to 4 of about 19 events per user were never applied, and no list was made):

1. While a rebalance is under way Faust's streams skip the events they take from their buffers
   (they were fetched for the old assignment). A later event of the same partition is processed
   and acknowledged, and the commit then covers the skipped one: Faust's guard against a gap at
   the head of the acknowledged offsets lets exactly one missing offset through (``> 1``).
2. A partition the worker keeps is sought back to its committed offset, but the consumer
   remembers the highest offset it ever handed to a stream and drops every re-read message below
   it ("DROPPED MESSAGE ROFF"): the skipped events are never handed on again.
3. A message fetched before that seek can arrive after it, ahead of the events it follows, and a
   kept partition is not always read again from where events were skipped.

:func:`guard_rebalances` mends 1 and 2 for a worker's source topics: the commit waits until every
offset from the committed one on has been processed, and re-read messages are handed on.
:class:`InOrder` mends 3 for the profile agents. An event seen twice is recognised by its event id
(profiles) or stored again unchanged (items).
"""

from __future__ import annotations

import logging
import types
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger(__name__)


class _ReadOffsets(defaultdict):  # type: ignore[type-arg]
    """Faust's read-offset map, blind for ``topics``: no message of theirs counts as already read."""

    def __init__(self, topics: frozenset[str], current: dict[Any, Any]) -> None:
        super().__init__(lambda: None, current)
        self.topics = topics

    def __getitem__(self, tp: Any) -> Any:
        return None if tp.topic in self.topics else super().__getitem__(tp)


def guard_rebalances(app: Any, topics: Iterable[str]) -> None:
    """Apply both work-arounds to ``app``'s consumer for ``topics`` (its source topics)."""
    consumer = app.consumer
    names = frozenset(topics)
    consumer._read_offset = _ReadOffsets(names, consumer._read_offset)
    new_offset = consumer._new_offset

    def _new_offset(self: Any, tp: Any) -> int | None:
        acked, committed = self._acked[tp], self._committed_offset.get(tp)
        # Committed offsets name the next event to process: acked events must start there.
        if tp.topic in names and acked and committed is not None and min(acked) > committed:
            return None
        return new_offset(tp)

    consumer._new_offset = types.MethodType(_new_offset, consumer)


class InOrder:
    """Hands each partition's events to an agent in offset order, none left out.

    Faust's streams drop the events they take from their buffers while a rebalance is under way,
    and a partition the worker keeps is not always read again from where they were dropped; an
    event fetched before a seek can also arrive after it, ahead of the events it follows. When an
    event arrives past the next offset this worker has not processed yet, the partition is sought
    back to that offset and the early event is dropped (it is read again in its turn; the commit
    guard above keeps its offset uncommitted meanwhile). After a rebalance the next offset is the
    committed one, or the partition's first offset when nothing was committed yet.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._generation: int | None = None
        self._next: dict[Any, int] = {}

    async def events(self, events: Any) -> Any:
        async for event in events:
            if await self.admit(event):
                yield event

    async def batch(self, events: Any) -> list[Any]:
        """The events of a micro-batch that are in order, in order; the rest are read again."""
        return [event for event in events if await self.admit(event)]

    async def admit(self, event: Any) -> bool:
        """Whether ``event`` is next in its partition (or a redelivery the agent recognises); an
        early one is dropped and its partition sought back to the next offset not processed."""
        message = event.message
        if message.topic is None:  # in-memory channels (agent test contexts) have no offsets
            return True
        consumer = self.app.consumer
        if self.app.consumer_generation_id != self._generation:
            self._generation, self._next = self.app.consumer_generation_id, {}
        tp, offset = message.tp, message.offset
        expected = self._next.get(tp, consumer._committed_offset.get(tp))
        if expected is None:
            # Nothing committed (a new group; Faust also stores a committed 0 as None): the worker
            # reads from the log's beginning, so that is the first offset to process. Taking the
            # first event handed on instead would skip any that come after it.
            expected = (await consumer.earliest_offsets(tp)).get(tp)
        if expected is not None and offset > expected:
            logger.info("%s: offset %d came before %d; reading the partition again from %d", tp, offset, expected,
                        expected)
            await consumer.seek(tp, expected)
            self._next[tp] = expected
            return False
        if expected is None or offset == expected:
            self._next[tp] = offset + 1
        return True  # an offset below the next one is a redelivery: the agent recognises it
