"""What apps use: a ``Publisher`` of items and interactions and a ``RecommendationConsumer``.

Both run on confluent-kafka and take the same :class:`Settings` as the workers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fusionrec.schemas import Event, EventError, Interaction, Item, Recommendation, StreamError, decode
from fusionrec.streams.kafka.config import kafka_config
from fusionrec.streams.kafka.produce import produce, producer_config
from fusionrec.streams.settings import Settings

logger = logging.getLogger(__name__)


class Publisher:
    """Publishes items (key = item id) and interactions (key = user id).

    The partitioner is murmur2, the one Faust and the Java client use, so a user's events land in
    the partition whose worker holds that user's profile. ``flush()`` waits for every delivery and
    raises :class:`StreamError` naming what failed.
    """

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        from confluent_kafka import Producer

        self.settings = settings
        self._failures: list[str] = []
        self.delivered = 0
        self._producer = Producer(producer_config(settings, **{"linger.ms": 5, **overrides}))

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()} key={msg.key()!r}: {err}")
        else:
            self.delivered += 1

    def _produce(self, topic: str, key: str, event: Event) -> None:
        produce(self._producer, topic, key=key.encode(), value=event.to_bytes(), on_delivery=self._on_delivery)

    def publish_item(self, item: Item) -> None:
        self._produce(self.settings.items_topic, item.id, item)

    def publish_interaction(self, interaction: Interaction) -> None:
        self._produce(self.settings.interactions_topic, interaction.user_id, interaction)

    def publish_many(self, events: Iterable[Item | Interaction], *, flush: bool = True) -> int:
        """Publish a batch of items and/or interactions; with ``flush``, wait until every one is
        confirmed (raising :class:`StreamError` naming the failures). Returns how many were sent."""
        n = 0
        for event in events:
            if isinstance(event, Item):
                self.publish_item(event)
            else:
                self.publish_interaction(event)
            n += 1
        if flush:
            self.flush()
        return n

    def flush(self, timeout_s: float = 30.0) -> None:
        left = self._producer.flush(timeout_s)
        if left:
            self._failures.append(f"{left} messages still undelivered after {timeout_s} s")
        if self._failures:
            failures, self._failures = self._failures, []
            raise StreamError(f"{len(failures)} publish failures: " + "; ".join(failures[:5]))

    def close(self) -> None:
        """Flush, then release the producer's connections."""
        try:
            self.flush()
        finally:
            self._producer.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Received:
    """A recommendation with where it was read from; ``timestamp_ms`` is the broker record time."""

    recommendation: Recommendation
    partition: int
    offset: int
    timestamp_ms: int


class RecommendationConsumer:
    """Reads the recommendations topic, optionally only for some users.

    Without ``group_id`` it reads every partition itself (no group join), from the beginning,
    the end, or a point in time (by the records' own timestamps); with one it joins that consumer
    group and resumes from its committed offsets. Iterate it with ``for`` or ``async for``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        users: Collection[str] | None = None,
        start: Literal["beginning", "end"] | datetime = "end",
        group_id: str | None = None,
    ) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.settings = settings
        self.users = {u.encode() for u in users} if users is not None else None
        topic = settings.recommendations_topic
        config = {
            **kafka_config(settings, consumer=True),
            "group.id": group_id or f"fusionrec-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": group_id is not None,
            "auto.offset.reset": "earliest" if start == "beginning" else "latest",
        }
        self._consumer = Consumer(config)
        if group_id:
            self._consumer.subscribe([topic])
        else:
            meta = self._consumer.list_topics(topic, timeout=10)
            if topic not in meta.topics or meta.topics[topic].error is not None:
                raise StreamError(f"topic {topic} does not exist")
            from fusionrec.streams.kafka.reader import end_offsets, first_offsets_since

            if isinstance(start, datetime):
                offsets = first_offsets_since(settings, topic, int(start.timestamp() * 1000))
            elif start == "end":
                # From fetch responses, not ListOffsets: Tansu answers "latest" short (docs/local-broker.md).
                offsets = end_offsets(settings, topic)
            else:
                offsets = dict.fromkeys(meta.topics[topic].partitions, OFFSET_BEGINNING)
            self._consumer.assign([TopicPartition(topic, p, o) for p, o in offsets.items()])

    def poll(self, timeout_s: float = 1.0) -> Received | None:
        """The next recommendation (for the selected users), or ``None`` when none came in time."""
        msg = self._consumer.poll(timeout_s)
        if msg is None:
            return None
        if msg.error():
            raise StreamError(f"consume failed: {msg.error()}")
        if self.users is not None and msg.key() not in self.users:
            return None
        try:
            rec = decode(Recommendation, msg.value(), max_bytes=self.settings.max_event_bytes)
        except EventError as exc:
            logger.warning("skipping undecodable recommendation at %s@%s: %s", msg.partition(), msg.offset(), exc)
            return None
        return Received(rec, msg.partition(), msg.offset(), msg.timestamp()[1])

    def __iter__(self) -> Iterator[Received]:
        while True:
            got = self.poll(1.0)
            if got is not None:
                yield got

    async def __aiter__(self) -> AsyncIterator[Received]:
        loop = asyncio.get_running_loop()
        while True:
            got = await loop.run_in_executor(None, self.poll, 0.5)
            if got is not None:
                yield got

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> RecommendationConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
