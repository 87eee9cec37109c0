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
    worker: dict[str, str] = field(default_factory=dict)  # the profile worker's own metrics, summarised
    worker_error: str = ""  # why its /metrics page could not be read


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The upper bound of the histogram bucket holding quantile ``q`` (cumulative ``(le, count)`` pairs).

    >>> quantile([(0.05, 50.0), (0.1, 98.0), (0.25, 100.0), (float("inf"), 100.0)], 0.99)
    0.25
    """
    total = buckets[-1][1] if buckets else 0.0
    return next((le for le, count in buckets if total and count >= q * total), float("nan"))


def summarise_metrics(before: str, after: str, elapsed_s: float) -> dict[str, str]:
    """The headline figures of two scrapes of a worker's /metrics page, ``elapsed_s`` apart."""
    from prometheus_client.parser import text_string_to_metric_families

    def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(x.name, tuple(sorted(x.labels.items()))): x.value
                for family in text_string_to_metric_families(text) for x in family.samples}

    a, b = samples(before), samples(after)

    def total(values: dict, name: str, **labels: str) -> float:
        return sum(v for (n, lab), v in values.items() if n == name and set(labels.items()) <= set(lab))

    out: dict[str, str] = {}
    handled = total(b, "fusionrec_events_total")
    out["events handled (all time)"] = f"{handled:.0f}"
    out["events/s now"] = f"{(handled - total(a, 'fusionrec_events_total')) / elapsed_s:.1f}"
    lists = "fusionrec_lists_emitted_total"
    out["lists/s now"] = f"{(total(b, lists) - total(a, lists)) / elapsed_s:.1f}"
    for outcome in ("emitted", "not_emitted", "duplicate", "deferred", "dead_letter"):
        out[f"events {outcome}"] = f"{total(b, 'fusionrec_events_total', outcome=outcome):.0f}"
    buckets = sorted((float(dict(lab)["le"]), v) for (n, lab), v in b.items()
                     if n == "fusionrec_event_to_list_seconds_bucket")
    for q in (0.5, 0.99):
        out[f"event->list p{q * 100:.0f} (bucket bound)"] = f"<= {1000 * quantile(buckets, q):.0f} ms"
    batches = total(b, "fusionrec_batch_size_count")
    out["mean batch size"] = f"{total(b, 'fusionrec_batch_size_sum') / batches:.1f}" if batches else "-"
    for name in ("consumer", "views", "index_replica"):
        out[f"{name} lag (records)"] = f"{total(b, f'fusionrec_{name}_lag_records'):.0f}"
    codes = sorted({dict(lab)["code"] for (n, lab) in b if n == "fusionrec_dead_letters_total"})
    for code in codes:
        out[f"dead letters {code}"] = f"{total(b, 'fusionrec_dead_letters_total', code=code):.0f}"
    return out


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
    scraped = _scrape(settings, report)
    t0 = time.monotonic()
    time.sleep(interval_s)
    after = {t: end_offsets(settings, t) for t in topics}
    elapsed = time.monotonic() - t0
    if scraped is not None and (again := _scrape(settings, report)) is not None:
        report.worker = summarise_metrics(scraped, again, elapsed)
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


def _scrape(settings: Settings, report: StatusReport) -> str | None:
    import httpx

    try:
        return httpx.get(f"{settings.worker_url}/metrics", timeout=5).raise_for_status().text
    except httpx.HTTPError as exc:
        report.worker_error = f"{settings.worker_url}/metrics: {exc}"
        return None


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
