"""The profile workers' in-process copy of the vector index, and the encoder's side that feeds it.

A profile worker asks the index for every list it makes. Served milvus-lite answers one search in
about 50 ms on 10,000 items, so a worker asking it per event tops out near 20 events/s. Instead the
encoder writes every vector it stores to Milvus *and* to the item-vectors topic
(:class:`PublishingIndex`), and each profile worker tails that topic into a
:class:`MemoryVectorIndex` (:class:`ReplicaIndex`) and searches it in process: a micro-batch's
queries are one matrix product. Milvus stays the system of record (search from other services,
re-encodes, ``fusionrec status``). An item is searchable on a worker once its record is read:
the feeder polls every :data:`POLL_S`, so a few tens of milliseconds after the encoder stored it
(``tests/integration/test_replica.py`` holds it to a bound).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fusionrec.agents.ports import ItemVector, VectorIndex
from fusionrec.schemas import EventError, StoredVector, StreamError, VectorStoreUnavailable, decode
from fusionrec.streams.index.memory import MemoryVectorIndex
from fusionrec.streams.kafka.produce import Deliveries, producer_config
from fusionrec.streams.kafka.reader import end_offsets, group_less_consumer
from fusionrec.streams.settings import Settings

logger = logging.getLogger(__name__)

POLL_S = 0.05
# The copy's consumer fetches with a longer wait than the workers' (on the local broker every
# consumer's empty fetches cost CPU); a stored vector still arrives within this.
FETCH_WAIT_MS = 200
PUBLISH_TIMEOUT_S = 30.0
MAX_RECORD_BYTES = 2**20
SERVING_CHECK_S = 30.0


class Serving:
    """The versioned collection a store's alias serves (``fusionrec replay re-encode`` switches it),
    asked again every :data:`SERVING_CHECK_S`; ``default`` for stores without versions."""

    def __init__(self, store: VectorIndex, default: str) -> None:
        self.store = store
        self.default = default
        self._checked = -1e9
        self._name = default

    def __call__(self) -> str:
        now = time.monotonic()
        if now - self._checked > SERVING_CHECK_S:
            serving = getattr(self.store, "serving", None)
            self._name = serving() if serving else self.default
            self._checked = now
        return self._name


def to_record(collection: str, item: ItemVector) -> StoredVector:
    return StoredVector(
        id=item.id, collection=collection, vector=np.asarray(item.vector, dtype="<f4").tobytes(),
        encoder_version=item.encoder_version, fusion_version=item.fusion_version, category=item.category,
        available=item.available, updated_at_ms=item.updated_at_ms, version=item.version,
    )


def from_record(record: StoredVector) -> ItemVector:
    return ItemVector(
        id=record.id, vector=np.frombuffer(record.vector, dtype="<f4").astype(np.float32),
        encoder_version=record.encoder_version, fusion_version=record.fusion_version, category=record.category,
        available=record.available, updated_at_ms=record.updated_at_ms, version=record.version,
    )


class PublishingIndex:
    """The store, plus every upserted vector published on the item-vectors topic once stored.

    An upsert returns when Milvus holds the vectors and the broker has acknowledged their records;
    a broker that does not is :class:`VectorStoreUnavailable`, so the encoder retries the batch
    (upserts are idempotent) instead of leaving the replicas behind the store.
    """

    def __init__(self, store: VectorIndex, settings: Settings, *, collection: Callable[[], str] | None = None) -> None:
        from confluent_kafka import Producer

        self.store = store
        self.topic = settings.vectors_topic
        self.collection = collection or Serving(store, settings.collection)
        self._producer = Producer(producer_config(settings, **{"linger.ms": 2}))

    def ensure_collection(self, dim: int, *, fusion: Mapping[str, Any] | None = None) -> None:
        self.store.ensure_collection(dim, fusion=fusion)

    def fusion_spec(self) -> dict[str, Any] | None:
        return self.store.fusion_spec()

    def upsert(self, items: Sequence[ItemVector]) -> None:
        self.store.upsert(items)
        deliveries = Deliveries()
        collection = self.collection()
        for item in items:
            # Keyed by version and item: compaction keeps each version's newest vector of each item.
            deliveries.send(self._producer, self.topic, key=f"{collection}/{item.id}".encode(),
                            value=to_record(collection, item).to_bytes())
        left = self._producer.flush(PUBLISH_TIMEOUT_S)
        if left or deliveries.errors:
            raise VectorStoreUnavailable(f"stored {len(items)} vectors but could not publish them on {self.topic}: "
                                         f"{left} undelivered, errors {deliveries.errors[:3]}")

    def get(self, ids: Sequence[str]) -> dict[str, ItemVector]:
        return self.store.get(ids)

    def search(self, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        return self.store.search(vector, limit)

    def search_many(self, vectors: Sequence[np.ndarray], limit: int) -> list[list[tuple[str, float]]]:
        return self.store.search_many(vectors, limit)

    def count(self) -> int:
        return self.store.count()

    def close(self) -> None:
        self._producer.flush(PUBLISH_TIMEOUT_S)
        self.store.close()


class ReplicaIndex:
    """Searches an in-process copy of the collection, kept from the item-vectors topic by a thread.

    Reads wait (up to ``ready_timeout_s``) until the copy has caught up with the topic's end as it
    was at start, so a restarted worker never ranks from half a catalogue. ``get`` asks the store
    for ids the copy does not hold yet: an item stored a moment ago is found either way. Writes and
    the fusion spec go to the store. Records name the versioned collection they were stored in; a
    copy is kept per version and the one the alias serves is searched (a re-encode's new version
    fills while the old one serves; after the switch the old copy is dropped).
    """

    def __init__(self, store: VectorIndex, settings: Settings, *, ready_timeout_s: float = 120.0) -> None:
        self.store = store
        self.settings = settings
        self._copies: dict[str, MemoryVectorIndex] = {}
        self._served: str | None = None
        # The serving version and its fusion spec, asked of Milvus by a thread of their own every
        # SERVING_CHECK_S: searches never wait for a Milvus round trip.
        self._serving = Serving(store, settings.collection)
        self._now_serving: str | None = None
        self._spec: dict[str, Any] | None = None
        self.ready_timeout_s = ready_timeout_s
        self.applied = 0
        self.lag = 0  # records of the topic not read yet, as of the last poll
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="index-replica", daemon=True)
        self._thread.start()
        self._watcher = threading.Thread(target=self._watch, name="index-replica-serving", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while True:
            try:
                serving = getattr(self.store, "serving", None)
                self._now_serving = serving() if serving else self.settings.collection
                self._spec = self.store.fusion_spec()
            except Exception as exc:  # noqa: BLE001 - Milvus down: keep serving what was known, ask again
                logger.warning("index replica: cannot ask Milvus which version it serves (%s)", exc)
            if self._stop.wait(SERVING_CHECK_S):
                return

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._feed()
                return
            except StreamError as exc:  # e.g. the topic is not created yet: wait for it
                logger.warning("index replica: %s; trying again in 2 s", exc)
                self._stop.wait(2.0)
            except Exception:  # a dead feeder leaves searches on stale vectors: say so loudly
                logger.exception("index replica feeder stopped")
                return

    def _feed(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        topic = self.settings.vectors_topic
        ends = end_offsets(self.settings, topic)
        consumer = group_less_consumer(self.settings, "replica", **{"fetch.wait.max.ms": FETCH_WAIT_MS})
        try:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
            position = dict.fromkeys(ends, 0)
            while not self._stop.is_set():
                batch = consumer.consume(1000, timeout=POLL_S)
                rows = []
                for msg in batch:
                    if msg.error() is not None:
                        continue
                    position[msg.partition()] = msg.offset() + 1
                    row = self._row(msg.value())
                    if row is not None:
                        rows.append(row)
                if rows:
                    self._apply(rows)
                if not self._ready.is_set() and all(position[p] >= end for p, end in ends.items()):
                    logger.info("index replica ready: %d vectors", sum(c.count() for c in self._copies.values()))
                    self._ready.set()
                for p in ends:
                    high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)[1]
                    ends[p] = max(ends[p], high)
                self.lag = sum(max(0, ends[p] - position[p]) for p in ends)
        finally:
            consumer.close()

    def _row(self, raw: bytes | None) -> tuple[str, ItemVector] | None:
        try:
            record = decode(StoredVector, raw, max_bytes=MAX_RECORD_BYTES)
        except EventError as exc:
            logger.warning("skipped a bad record on %s: %s", self.settings.vectors_topic, exc)
            return None
        return record.collection, from_record(record)

    def _apply(self, rows: list[tuple[str, ItemVector]]) -> None:
        by_collection: dict[str, list[ItemVector]] = {}
        for collection, row in rows:
            by_collection.setdefault(collection, []).append(row)
        for collection, vectors in by_collection.items():
            copy = self._copies.get(collection)
            if copy is None:
                copy = self._copies[collection] = MemoryVectorIndex()
                copy.ensure_collection(len(vectors[0].vector))
            try:
                copy.upsert(vectors)
            except Exception as exc:  # noqa: BLE001 - a vector of another dimension: skip it, keep feeding
                logger.warning("skipped %d replicated vectors of %s: %s", len(vectors), collection, exc)
                continue
            self.applied += len(vectors)

    def local(self) -> MemoryVectorIndex:
        """The copy of the version being served (empty until its first record is read)."""
        self._wait_ready()
        name = self._now_serving or self._serving()
        if name != self._served:
            if self._served is not None:
                self._copies.pop(self._served, None)  # the version served before a re-encode's switch
            self._served = name
        return self._copies.get(name) or MemoryVectorIndex()

    def _wait_ready(self) -> None:
        if not self._ready.wait(self.ready_timeout_s):
            raise VectorStoreUnavailable(f"the index replica has not caught up with {self.settings.vectors_topic} "
                                         f"after {self.ready_timeout_s:.0f} s ({self.lag} records behind)")

    def ensure_collection(self, dim: int, *, fusion: Mapping[str, Any] | None = None) -> None:
        self.store.ensure_collection(dim, fusion=fusion)

    def fusion_spec(self) -> dict[str, Any] | None:
        return self._spec if self._now_serving else self.store.fusion_spec()

    def upsert(self, items: Sequence[ItemVector]) -> None:
        self.store.upsert(items)

    def get(self, ids: Sequence[str]) -> dict[str, ItemVector]:
        found = self.local().get(ids)
        missing = [i for i in ids if i not in found]
        return {**found, **self.store.get(missing)} if missing else found

    def search(self, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        return self.search_many([vector], limit)[0]

    def search_many(self, vectors: Sequence[np.ndarray], limit: int) -> list[list[tuple[str, float]]]:
        return self.local().search_many(vectors, limit)

    def count(self) -> int:
        return self.store.count()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.store.close()
