"""Reading topics without a consumer group: a range of records, and where each partition ends.

Ranges are chosen by offset or by *record timestamps*: the local Tansu broker answers
``offsets_for_times`` with append times and 0 past the end (docs/local-broker.md), so a time range is found
by reading records and comparing their own timestamps, which works on every broker.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fusionrec.schemas import StreamError
from fusionrec.streams.kafka.config import kafka_config
from fusionrec.streams.settings import Settings


def group_less_consumer(settings: Settings, purpose: str, **overrides: Any) -> Any:
    """A consumer for assigned partitions only: it joins no group and never commits, so reading moves
    nobody's offsets."""
    from confluent_kafka import Consumer

    return Consumer({**kafka_config(settings, consumer=True), "group.id": f"fusionrec-{purpose}-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, **overrides})


def topic_partitions(consumer: Any, topic: str) -> list[int]:
    """The partitions of ``topic``; :class:`StreamError` when it does not exist."""
    meta = consumer.list_topics(topic, timeout=10)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        raise StreamError(f"topic {topic} does not exist")
    return sorted(meta.topics[topic].partitions)


def messages(consumer: Any, topic: str, idle_s: float) -> Iterator[Any]:
    """What ``consumer`` reads, until nothing has come for ``idle_s``; a read error is a :class:`StreamError`."""
    last = time.monotonic()
    while time.monotonic() - last < idle_s:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            raise StreamError(f"reading {topic} failed: {msg.error()}")
        last = time.monotonic()
        yield msg


@dataclass(frozen=True)
class Record:
    """One record as it was on the topic."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        b64 = lambda b: None if b is None else base64.b64encode(b).decode()  # noqa: E731
        return {"partition": self.partition, "offset": self.offset, "timestamp_ms": self.timestamp_ms,
                "key": b64(self.key), "value": b64(self.value),
                "headers": [[k, base64.b64encode(v or b"").decode()] for k, v in self.headers]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Record:
        unb64 = lambda s: None if s is None else base64.b64decode(s)  # noqa: E731
        return cls(doc["partition"], doc["offset"], doc["timestamp_ms"], unb64(doc["key"]), unb64(doc["value"]),
                   [(k, base64.b64decode(v)) for k, v in doc.get("headers", [])])


def read_topic(
    settings: Settings, topic: str, *, since_ms: int | None = None, until_ms: int | None = None,
    from_offsets: dict[int, int] | None = None, idle_s: float = 3.0,
) -> Iterator[Record]:
    """Every record of ``topic`` (group-less, from the beginning or ``from_offsets``) up to its end
    when the read started, optionally only those with ``since_ms <= timestamp < until_ms``."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    consumer = group_less_consumer(settings, "replay")
    try:
        partitions = topic_partitions(consumer, topic)
        starts = {p: (from_offsets or {}).get(p, OFFSET_BEGINNING) for p in partitions}
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in partitions])
        ends: dict[int, int] = {}
        done: set[int] = set()
        for msg in messages(consumer, topic, idle_s):
            p = msg.partition()
            if p in done:
                continue
            if p not in ends:
                # The high watermark of the first fetch response: the end when this read started.
                ends[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)[1]
            ts = msg.timestamp()[1]
            if (since_ms is None or ts >= since_ms) and (until_ms is None or ts < until_ms):
                yield Record(p, msg.offset(), ts, msg.key(), msg.value(), list(msg.headers() or []))
            if msg.offset() + 1 >= ends[p]:
                done.add(p)
                if len(done) == len(partitions):
                    break
    finally:
        consumer.close()


def end_offsets(settings: Settings, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    """Each partition's end offset, from fetch responses' high watermarks (right on every broker,
    unlike Tansu's ListOffsets answer)."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    consumer = group_less_consumer(settings, "ends")
    try:
        partitions = topic_partitions(consumer, topic)
        ends: dict[int, int] = {}
        for p in partitions:
            tp = TopicPartition(topic, p, OFFSET_BEGINNING)
            consumer.assign([tp])
            deadline = time.monotonic() + timeout_s
            while True:
                consumer.poll(0.1)
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
                if high >= 0:
                    ends[p] = high
                    break
                if time.monotonic() > deadline:
                    raise StreamError(f"no high watermark for {topic}[{p}]")
        return ends
    finally:
        consumer.close()


def first_offsets_since(settings: Settings, topic: str, since_ms: int) -> dict[int, int]:
    """Per partition, the offset of the first record whose own timestamp is ``>= since_ms`` (the
    end offset when there is none)."""
    firsts = end_offsets(settings, topic)
    seen: set[int] = set()
    for r in read_topic(settings, topic):
        if r.partition not in seen and r.timestamp_ms >= since_ms:
            firsts[r.partition] = r.offset
            seen.add(r.partition)
    return firsts
