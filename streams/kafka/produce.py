"""Producing with confluent-kafka, one way everywhere: the SDK's publisher, topic import, dead-letter replay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fusionrec.schemas import StreamError
from fusionrec.streams.kafka.config import kafka_config
from fusionrec.streams.settings import Settings


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Idempotent, keyed like the Java client (murmur2), so apps, tools and workers agree on partitions."""
    return {**kafka_config(settings), "partitioner": "murmur2_random", "enable.idempotence": True, **overrides}


def produce(producer: Any, topic: str, *, on_delivery: Callable[[Any, Any], None], **record: Any) -> None:
    """Queue one record; while the local queue is full, let deliveries drain and try again."""
    while True:
        try:
            producer.produce(topic, on_delivery=on_delivery, **record)
            break
        except BufferError:
            producer.poll(0.1)
    producer.poll(0)


class Deliveries:
    """Counts what a tool sends and collects the failures its delivery reports name."""

    def __init__(self) -> None:
        self.sent = 0
        self.errors: list[str] = []

    def on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))

    def send(self, producer: Any, topic: str, **record: Any) -> None:
        produce(producer, topic, on_delivery=self.on_delivery, **record)
        self.sent += 1

    def finish(self, producer: Any, what: str, timeout_s: float) -> int:
        """Flush and close ``producer``; :class:`StreamError` unless every record was delivered."""
        left = producer.flush(timeout_s)
        producer.close()
        if self.errors or left:
            raise StreamError(f"{what}: {len(self.errors)} failed, {left} undelivered of {self.sent}: {self.errors[:3]}")
        return self.sent
