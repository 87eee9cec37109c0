"""Backfill operations on topics: read a range, export it to a file, import it back.

Ranges are chosen by offset or by *record timestamps*: the local Tansu broker answers
``offsets_for_times`` with append times and 0 past the end (docs/local-broker.md), so a time range is found
by reading records and comparing their own timestamps, which works on every broker.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fusionrec.schemas import ConfigError, StreamError

from fusionrec.streams.kafka.client import kafka_config
from fusionrec.streams.settings import Settings

logger = logging.getLogger(__name__)


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
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({**kafka_config(settings, consumer=True), "group.id": f"fusionrec-replay-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10)
        if topic not in meta.topics or meta.topics[topic].error is not None:
            raise StreamError(f"topic {topic} does not exist")
        partitions = sorted(meta.topics[topic].partitions)
        starts = {p: (from_offsets or {}).get(p, OFFSET_BEGINNING) for p in partitions}
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in partitions])
        ends: dict[int, int] = {}
        done: set[int] = set()
        last = time.monotonic()
        while len(done) < len(partitions) and time.monotonic() - last < idle_s:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                raise StreamError(f"reading {topic} failed: {msg.error()}")
            last = time.monotonic()
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
    finally:
        consumer.close()


def export_topic(settings: Settings, topic: str, path: Path, **range_: Any) -> int:
    """Write a topic range to JSONL (``.jsonl``) or Parquet (``.parquet``); returns the record count."""
    records = tqdm(read_topic(settings, topic, **range_), desc=f"export {topic}", unit="rec")
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [r.to_json() for r in records]
        pq.write_table(pa.Table.from_pylist(rows), path)
        return len(rows)
    if path.suffix != ".jsonl":
        raise ConfigError(f"export to .jsonl or .parquet, not {path.suffix or 'no suffix'}")
    n = 0
    with path.open("w") as f:
        for r in records:
            f.write(json.dumps(r.to_json()) + "\n")
            n += 1
    return n


def load_records(path: Path) -> list[Record]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [Record.from_json(d) for d in pq.read_table(path).to_pylist()]
    with path.open() as f:
        return [Record.from_json(json.loads(line)) for line in f if line.strip()]


def import_records(settings: Settings, topic: str, records: Iterable[Record], *, keep_partitions: bool = True) -> int:
    """Publish records to ``topic`` with their keys, headers and timestamps. With
    ``keep_partitions`` each goes to the partition it came from (same layout, same order)."""
    from confluent_kafka import Producer

    producer = Producer({**kafka_config(settings), "partitioner": "murmur2_random", "enable.idempotence": True})
    errors: list[str] = []
    n = 0
    for r in tqdm(list(records), desc=f"import {topic}", unit="rec"):
        kwargs: dict[str, Any] = {"key": r.key, "value": r.value, "timestamp": r.timestamp_ms,
                                  "headers": r.headers or None}
        if keep_partitions:
            kwargs["partition"] = r.partition
        while True:
            try:
                producer.produce(topic, on_delivery=lambda err, _m: err and errors.append(str(err)), **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        n += 1
    left = producer.flush(60)
    producer.close()
    if errors or left:
        raise StreamError(f"import into {topic}: {len(errors)} failed, {left} undelivered: {errors[:3]}")
    return n


def end_offsets(settings: Settings, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    """Each partition's end offset, from fetch responses' high watermarks (right on every broker,
    unlike Tansu's ListOffsets answer)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({**kafka_config(settings, consumer=True), "group.id": f"fusionrec-ends-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
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


def rebuild_profiles(settings: Settings, *, since_ms: int | None = None) -> tuple[int, dict[str, dict[int, int]]]:
    """Prepare the next profile generation, rebuilt from the interactions topic.

    A generation is a fresh consumer group and profile table (``fusionrec-profiles-g<N>``). Its
    offsets start at the beginning of the interactions topic (or at the first record whose own
    timestamp is at/after ``since_ms``) and at the end of the retry topic (replayed interactions
    re-enter it themselves). The current generation is left as it is, so switching back is a
    restart away. Restart the profile workers with ``FUSIONREC_PROFILE_GENERATION=<N>`` to rebuild;
    updates are idempotent by event id, so nothing is counted twice.
    """
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    nxt = settings.model_copy(update={"profile_generation": settings.profile_generation + 1})
    group = nxt.app_id("profiles")
    inter = first_offsets_since(settings, settings.interactions_topic, since_ms) if since_ms else {
        p: 0 for p in end_offsets(settings, settings.interactions_topic)}
    retry = end_offsets(settings, settings.retry_topic)
    offsets = [TopicPartition(settings.interactions_topic, p, o) for p, o in inter.items()]
    offsets += [TopicPartition(settings.retry_topic, p, o) for p, o in retry.items()]
    admin = AdminClient(kafka_config(settings))
    done = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, offsets)])
    refused = [tp for tp in done[group].result(timeout=30).topic_partitions if tp.error]
    if refused:
        raise StreamError(f"the broker refused offsets for {group}: {refused[:3]}")
    return nxt.profile_generation, {settings.interactions_topic: inter, settings.retry_topic: retry}


@dataclass
class ReencodeReport:
    previous: str
    current: str
    records: int
    stored: int
    failed: int
    caught_up: int


def reencode(
    settings: Settings, *, encoders: Mapping[str, Any], fetcher: Any, batch_size: int | None = None
) -> ReencodeReport:
    """Encode every item on the items topic into a new collection version with the current encoders
    and fusion, then switch the serving alias to it in one step; serving never sees a half-built index.

    Restartable: an earlier run's unfinished version (newer than the serving one) is dropped
    first. Items published while this runs are caught up after the switch. The old version is
    kept (roll back with ``promote``); drop it when no longer wanted.
    """
    from fusionrec.agents.encode_items import ItemEncoder
    from fusionrec.schemas import EventError

    from fusionrec.streams.index import MilvusVectorIndex

    alias = MilvusVectorIndex(settings.require_milvus_uri(), settings.collection,
                              token=settings.milvus_token.get_secret_value())
    fusion = settings.make_fusion(encoders)
    if not alias.exists():
        alias.ensure_collection(fusion.dim, fusion=fusion.spec())
    previous = alias.serving()
    versions = alias.versions()
    for leftover in versions[versions.index(previous) + 1:]:
        logger.info("dropping %s, left by an interrupted re-encode", leftover)
        alias.drop_version(leftover)
    target = alias.new_version(fusion.dim, fusion=fusion.spec())
    processor = ItemEncoder(encoders, fusion, target, fetcher, max_event_bytes=settings.max_event_bytes,
                            limits=settings.media_limits(), threads=settings.media_fetch_threads,
                            max_future_s=settings.max_future_s)
    size = batch_size or settings.encode_batch_size
    last: dict[int, int] = {}

    def run(records: Iterable[Record]) -> tuple[int, int, int]:
        n = stored = failed = 0
        batch: dict[str, Any] = {}

        def flush() -> None:
            nonlocal stored, failed
            if batch:
                bad = processor.encode_and_store(list(batch.values()))
                failed += len(bad)
                stored += len(batch) - len(bad)
                batch.clear()

        for r in records:
            n += 1
            last[r.partition] = r.offset
            try:
                item = processor.decode(r.value, r.key)
            except EventError:
                failed += 1  # the live worker dead-lettered it already
                continue
            batch.pop(item.id, None)
            batch[item.id] = item
            if len(batch) >= size:
                flush()
        flush()
        return n, stored, failed

    n, stored, failed = run(tqdm(read_topic(settings, settings.items_topic), desc="re-encode items", unit="item"))
    alias.promote(target.collection)
    caught_up, s2, f2 = run(read_topic(settings, settings.items_topic,
                                       from_offsets={p: o + 1 for p, o in last.items()}))
    return ReencodeReport(previous, target.collection, n + caught_up, stored + s2, failed + f2, caught_up)
