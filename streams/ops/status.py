"""What `fusionrec status` shows: consumer lag, throughput per topic, Milvus collections."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fusionrec.schemas import VectorIndexError
from fusionrec.streams.kafka.config import kafka_config
from fusionrec.streams.kafka.reader import end_offsets
from fusionrec.streams.settings import Settings


@dataclass(frozen=True)
class LagRow:
    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(self.end - max(self.committed, 0), 0)


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    serving: bool
    count: int
    encoder_versions: list[str]


@dataclass
class StatusReport:
    lag: list[LagRow] = field(default_factory=list)
    rates: dict[str, tuple[int, float]] = field(default_factory=dict)
    collections: list[CollectionInfo] = field(default_factory=list)
    milvus_error: str = ""  # why the collections could not be listed (the store is down or stalled)


def collect(settings: Settings, *, interval_s: float = 2.0) -> StatusReport:
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    report = StatusReport()
    topics = [settings.items_topic, settings.interactions_topic, settings.retry_topic,
              settings.recommendations_topic, settings.dead_letters_topic]
    admin = AdminClient(kafka_config(settings))
    existing = set(admin.list_topics(timeout=10).topics)
    topics = [t for t in topics if t in existing]
    before = {t: end_offsets(settings, t) for t in topics}
    t0 = time.monotonic()
    time.sleep(interval_s)
    after = {t: end_offsets(settings, t) for t in topics}
    elapsed = time.monotonic() - t0
    for t in topics:
        total = sum(after[t].values())
        report.rates[t] = (total, (total - sum(before[t].values())) / elapsed)
    for group, group_topics in ((settings.app_id("encoder"), [settings.items_topic]),
                                (settings.app_id("profiles"), [settings.interactions_topic, settings.retry_topic])):
        try:
            got = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=10)
        except Exception:  # noqa: BLE001 - a group that never committed has nothing to show
            continue
        for tp in got.topic_partitions:
            if tp.topic in group_topics and tp.topic in after:
                report.lag.append(LagRow(group, tp.topic, tp.partition, tp.offset, after[tp.topic].get(tp.partition, 0)))
    try:
        report.collections = _collections(settings)
    except VectorIndexError as exc:
        report.milvus_error = str(exc)
    return report


def _collections(settings: Settings) -> list[CollectionInfo]:
    from fusionrec.streams.index import PROBE_TIMEOUT_S, MilvusVectorIndex

    alias = MilvusVectorIndex(settings.require_milvus_uri(), settings.collection,
                              token=settings.milvus_token.get_secret_value(), connect_timeout_s=PROBE_TIMEOUT_S,
                              connect_attempts=1)
    try:
        # Short deadlines: a stalled Milvus must not hang the operator's status command.
        serving, versions = alias.describe_versions(timeout_s=PROBE_TIMEOUT_S)
        return [CollectionInfo(name, name == serving, count, encoders) for name, count, encoders in versions]
    finally:
        alias.close()
