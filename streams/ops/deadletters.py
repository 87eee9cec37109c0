"""Reading the dead-letter topic, and re-publishing its records once the cause is fixed."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from fusionrec.schemas import DeadLetter, ErrorCode, EventError, StreamError, decode
from fusionrec.streams.kafka.produce import Deliveries, producer_config
from fusionrec.streams.kafka.reader import group_less_consumer, messages, topic_partitions
from fusionrec.streams.settings import Settings


def read_dead_letters(
    settings: Settings, *, codes: Iterable[ErrorCode] = (), idle_s: float = 2.0, limit: int | None = None
) -> Iterator[DeadLetter]:
    """Every dead letter from the start of the topic (optionally of some codes), until none has come
    for ``idle_s``. Group-less: reading never moves anyone's offsets."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    topic = settings.dead_letters_topic
    wanted = set(codes)
    consumer = group_less_consumer(settings, "dlq")
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in topic_partitions(consumer, topic)])
        count = 0
        for msg in messages(consumer, topic, idle_s if limit != 0 else 0.0):
            try:
                letter = decode(DeadLetter, msg.value(), max_bytes=2**31)
            except EventError:
                continue  # not ours: something else wrote to the topic
            if not wanted or letter.error_code in wanted:
                count += 1
                yield letter
                if count == limit:
                    break
    finally:
        consumer.close()


def read_record(
    settings: Settings, topic: str, partition: int, offset: int, *, timeout_s: float = 10.0
) -> tuple[bytes | None, bytes]:
    """The key and value of one record, read where it was written."""
    from confluent_kafka import TopicPartition

    consumer = group_less_consumer(settings, "dlq", **{"fetch.message.max.bytes": 64 * 2**20})
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                raise StreamError(f"reading {topic}[{partition}]@{offset} failed: {msg.error()}")
            if msg.offset() == offset:
                return msg.key(), msg.value() or b""
            break  # the offset is gone (retention, compaction): the next record came instead
    finally:
        consumer.close()
    raise StreamError(f"{topic}[{partition}]@{offset} is no longer on the broker")


def originals(settings: Settings, letter: DeadLetter) -> tuple[bytes | None, bytes]:
    """The key and bytes to re-publish for ``letter``: its own copy, or the source record when the
    letter holds only the head of a large original."""
    if not letter.original_truncated:
        return letter.key, letter.original
    return read_record(settings, letter.source_topic, letter.partition, letter.offset)


def replay(settings: Settings, letters: Iterable[DeadLetter]) -> int:
    """Publish each letter's original bytes, with its original key, back to its source topic.

    Safe to repeat: interactions are applied once per event id, and a re-published item replaces
    the stored version of itself. A letter whose original was cut is replayed from the source
    record itself.
    """
    from confluent_kafka import Producer

    # an original over 1 MB goes back as it came
    producer = Producer(producer_config(settings, **{"message.max.bytes": 64 * 2**20}))
    deliveries = Deliveries()
    for letter in letters:
        key, value = originals(settings, letter)
        deliveries.send(producer, letter.source_topic, key=key, value=value)
    return deliveries.finish(producer, "replay", 30)
