"""Feeding the catalogue and the item statistics from the whole items and interactions topics.

Every profile worker reads every partition of both topics, group-less, in a background thread:
catalogue-wide signals (popularity, co-occurrence) need every user's events, and this gives each
worker all of them without a repartition hop. Every ``views_snapshot_s`` the feeder pickles the
views with the offsets they cover into the data dir; a restarted worker loads the snapshot and
reads only what came after, so its restart time does not grow with the log (a snapshot that does
not match the topics, e.g. after they were recreated, is ignored and the log read from the
beginning). Nothing is lost or counted twice either way: the snapshot and its offsets are taken
together, and the stats skip repeated event ids. Memory grows with the catalogue and the active
users (both bounded in ``ItemStats``).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import pickle
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

from fusionrec.agents.engine import Views
from fusionrec.agents.profile import ProfileConfig
from fusionrec.schemas import EventError, Interaction, Item, check_not_ahead, decode
from fusionrec.streams.kafka.config import kafka_config
from fusionrec.streams.kafka.reader import end_offsets
from fusionrec.streams.settings import Settings

logger = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1
FETCH_WAIT_MS = 200


class SnapshotSlot:
    """The file one running worker keeps its views snapshot in.

    Workers sharing a data dir each hold a slot (an exclusive lock on ``slot-N.lock`` for their
    lifetime), so two never write the same file, and a restarted worker takes a free slot's snapshot.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for n in itertools.count():
            lock: IO[str] = (directory / f"slot-{n}.lock").open("w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            self._lock, self.path = lock, directory / f"slot-{n}.pickle"
            return

    def load(self) -> dict[str, Any] | None:
        try:
            with self.path.open("rb") as f:
                return pickle.load(f)  # written by this worker, in its own data dir
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - a damaged snapshot only costs a full read
            logger.warning("views snapshot %s unreadable (%s); reading the topics from the beginning", self.path, exc)
            return None

    def save(self, doc: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(doc, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.path)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()


class ViewFeeder:
    """A daemon thread applying items and interactions to :class:`Views` as they arrive."""

    def __init__(self, settings: Settings, views: Views, profile: ProfileConfig) -> None:
        self.settings = settings
        self.views = views
        self.profile = profile
        self.restored_from: str | None = None  # "snapshot" or "beginning", once started
        self.caught_up_s: float | None = None  # from start until the lag first reached zero
        self.lag: dict[str, float] = {}  # per topic: records not applied yet, as of the last poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="view-feeder", daemon=True)

    def start(self) -> ViewFeeder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        s = self.settings
        started = time.monotonic()
        slot = SnapshotSlot(s.data_dir / "views" / s.app_id("profiles")) if s.views_snapshot_s > 0 else None
        # A longer fetch wait than the workers' own: the views need no millisecond freshness, and
        # on the local broker every consumer's empty fetches cost CPU.
        consumer = Consumer({**kafka_config(s, consumer=True), "group.id": f"fusionrec-views-{uuid.uuid4().hex[:8]}",
                             "enable.auto.commit": False, "fetch.wait.max.ms": FETCH_WAIT_MS})
        try:
            ends = {(t, p): o for t in (s.items_topic, s.interactions_topic) for p, o in end_offsets(s, t).items()}
            position = self._restore(slot, ends) or dict.fromkeys(ends, 0)
            consumer.assign([TopicPartition(t, p, position[t, p] or OFFSET_BEGINNING) for t, p in ends])
            saved, dirty = time.monotonic(), False
            while not self._stop.is_set():
                for msg in consumer.consume(500, timeout=0.2):
                    if msg.error() is None:
                        position[msg.topic(), msg.partition()] = msg.offset() + 1
                        self._apply(msg.topic(), msg.value())
                        dirty = True
                lag: dict[str, float] = {}
                for (topic, partition), at in position.items():
                    high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1]
                    lag[topic] = lag.get(topic, 0.0) + max(0, max(high, ends[topic, partition]) - at)
                self.lag = lag
                if self.caught_up_s is None and not any(lag.values()):
                    self.caught_up_s = time.monotonic() - started
                    logger.info("views caught up in %.1f s (from the %s)", self.caught_up_s, self.restored_from)
                if slot and dirty and time.monotonic() - saved > s.views_snapshot_s:
                    self._save(slot, position)
                    saved, dirty = time.monotonic(), False
            if slot and dirty:
                self._save(slot, position)
        except Exception:  # a dead feeder only degrades ranking; say so loudly, keep the worker up
            logger.exception("view feeder stopped")
        finally:
            consumer.close()
            if slot:
                slot.close()

    def _restore(self, slot: SnapshotSlot | None, ends: dict[tuple[str, int], int]) -> dict[tuple[str, int], int] | None:
        """The offsets the snapshot covers, with its views installed; ``None`` to read from the beginning."""
        doc = slot.load() if slot else None
        self.restored_from = "beginning"
        if doc is None:
            return None
        covered: dict[tuple[str, int], int] = doc.get("positions", {})
        if doc.get("format") != SNAPSHOT_FORMAT or set(covered) != set(ends) or any(
                covered[tp] > ends[tp] for tp in ends):
            logger.warning("views snapshot %s does not match the topics (recreated?); reading them from the beginning",
                           slot.path if slot else "")
            return None
        catalogue, stats = pickle.loads(doc["views"])  # written by this worker, in its own data dir
        with self.views.lock:
            self.views.catalogue, self.views.stats = catalogue, stats
        self.restored_from = "snapshot"
        logger.info("views restored from %s: %d records, reading on from there", slot.path if slot else "",
                    sum(covered.values()))
        return dict(covered)

    def _save(self, slot: SnapshotSlot, position: dict[tuple[str, int], int]) -> None:
        # Pickled under the lock (the ranking threads wait that long), written outside it.
        with self.views.lock:
            views = pickle.dumps((self.views.catalogue, self.views.stats), protocol=pickle.HIGHEST_PROTOCOL)
        slot.save({"format": SNAPSHOT_FORMAT, "positions": dict(position), "views": views})

    def _apply(self, topic: str, raw: bytes | None) -> None:
        # Invalid events are the agents' to dead-letter; here they are simply not counted.
        try:
            if topic == self.settings.items_topic:
                item = decode(Item, raw, max_bytes=self.settings.max_event_bytes)
                check_not_ahead(item.updated_at, "updated_at", max_ahead_s=self.settings.max_future_s, now=time.time())
                self.views.learn_item(item)
            else:
                ev = decode(Interaction, raw, max_bytes=self.settings.max_event_bytes)
                check_not_ahead(ev.timestamp, "timestamp", max_ahead_s=self.settings.max_future_s, now=time.time())
                if ev.item_id is None:  # a search: the user's own profile takes it, not the item statistics
                    return
                self.views.learn_interaction(ev.event_id, ev.user_id, ev.item_id,
                                             self.profile.event_weight(ev.type, ev.value), ev.timestamp.timestamp())
        except EventError:
            return
