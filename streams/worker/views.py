"""Feeding the catalogue and the item statistics from the whole items and interactions topics.

Every profile worker reads every partition of both topics, group-less and from the beginning, in a
background thread: catalogue-wide signals (popularity, co-occurrence) need every user's events,
and this gives each worker all of them without a repartition hop. Rebuilt from the log on every
start, so a restart neither loses nor double-counts anything (the stats also skip repeated event
ids). Memory grows with the catalogue and the active users (both bounded in ``ItemStats``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from fusionrec.agents.engine import Views
from fusionrec.agents.profile import ProfileConfig
from fusionrec.schemas import EventError, Interaction, Item, check_not_ahead, decode
from fusionrec.streams.kafka.config import kafka_config
from fusionrec.streams.settings import Settings

logger = logging.getLogger(__name__)


class ViewFeeder:
    """A daemon thread applying items and interactions to :class:`Views` as they arrive."""

    def __init__(self, settings: Settings, views: Views, profile: ProfileConfig) -> None:
        self.settings = settings
        self.views = views
        self.profile = profile
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
        consumer = Consumer({**kafka_config(s, consumer=True), "group.id": f"fusionrec-views-{uuid.uuid4().hex[:8]}",
                             "enable.auto.commit": False})
        try:
            tps = []
            for topic in (s.items_topic, s.interactions_topic):
                meta = consumer.list_topics(topic, timeout=30).topics[topic]
                tps += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
            consumer.assign(tps)
            while not self._stop.is_set():
                for msg in consumer.consume(500, timeout=0.2):
                    if msg.error() is None:
                        self._apply(msg.topic(), msg.value())
        except Exception:  # a dead feeder only degrades ranking; say so loudly, keep the worker up
            logger.exception("view feeder stopped")
        finally:
            consumer.close()

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
                self.views.learn_interaction(ev.event_id, ev.user_id, ev.item_id,
                                             self.profile.event_weight(ev.type, ev.value), ev.timestamp.timestamp())
        except EventError:
            return
