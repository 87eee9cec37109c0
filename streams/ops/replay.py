"""Backfill operations on topics: export a range to a file, import it back, rebuild profiles, re-encode items."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fusionrec.schemas import ConfigError, StreamError
from fusionrec.streams.build import make_fusion, media_limits
from fusionrec.streams.kafka.config import kafka_config
from fusionrec.streams.kafka.produce import Deliveries, producer_config
from fusionrec.streams.kafka.reader import Record, end_offsets, first_offsets_since, read_topic
from fusionrec.streams.settings import Settings

logger = logging.getLogger(__name__)


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

    producer = Producer(producer_config(settings))
    deliveries = Deliveries()
    for r in tqdm(list(records), desc=f"import {topic}", unit="rec"):
        kwargs: dict[str, Any] = {"key": r.key, "value": r.value, "timestamp": r.timestamp_ms,
                                  "headers": r.headers or None}
        if keep_partitions:
            kwargs["partition"] = r.partition
        deliveries.send(producer, topic, **kwargs)
    return deliveries.finish(producer, f"import into {topic}", 60)


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
    inter = first_offsets_since(settings, settings.interactions_topic, since_ms) if since_ms else dict.fromkeys(
        end_offsets(settings, settings.interactions_topic), 0)
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
    from fusionrec.streams.index import MilvusVectorIndex, PublishingIndex

    alias = MilvusVectorIndex(settings.require_milvus_uri(), settings.collection,
                              token=settings.milvus_token.get_secret_value())
    fusion = make_fusion(settings, encoders)
    if not alias.exists():
        alias.ensure_collection(fusion.dim, fusion=fusion.spec())
    previous = alias.serving()
    versions = alias.versions()
    for leftover in versions[versions.index(previous) + 1:]:
        logger.info("dropping %s, left by an interrupted re-encode", leftover)
        alias.drop_version(leftover)
    target = alias.new_version(fusion.dim, fusion=fusion.spec())
    # Published too, tagged with the new version: profile workers' index copies fill before the switch.
    published = PublishingIndex(target, settings, collection=lambda: target.collection)
    processor = ItemEncoder(encoders, fusion, published, fetcher, max_event_bytes=settings.max_event_bytes,
                            limits=media_limits(settings), threads=settings.media_fetch_threads,
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
