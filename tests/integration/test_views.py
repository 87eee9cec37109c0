"""The views feeder through the real broker: a restarted worker restores its views from the snapshot,
reads only what came after, and ends with exactly the views of a full read of the log."""

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from fusionrec.agents.engine import Views
from fusionrec.agents.profile import ProfileConfig
from fusionrec.schemas import Interaction, Item
from fusionrec.streams import Publisher
from fusionrec.streams.kafka.config import kafka_config
from fusionrec.streams.kafka.topics import TopicSpec, create_topics
from fusionrec.streams.worker.views import SnapshotSlot, ViewFeeder

pytestmark = pytest.mark.integration


def publish(settings, start: int, n: int) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with Publisher(settings) as pub:
        for i in range(start, start + n):
            pub.publish_interaction(Interaction(event_id=f"e{i}", user_id=f"u{i % 17}", item_id=f"i{i % 23}",
                                                type="like", timestamp=t0 + timedelta(seconds=i)))


def feed_until_caught_up(settings, records: int) -> tuple[ViewFeeder, Views]:
    views = Views()
    feeder = ViewFeeder(settings, views, ProfileConfig()).start()
    deadline = time.monotonic() + 60
    while feeder.caught_up_s is None or sum(views.stats.counts.values()) < records:
        assert time.monotonic() < deadline, f"views did not catch up: lag {feeder.lag}"
        time.sleep(0.1)
    return feeder, views


def assert_same_views(a: Views, b: Views) -> None:
    """Equal counts and catalogue; decayed scores equal up to rounding (partitions interleave differently)."""
    assert dict(a.stats.counts) == dict(b.stats.counts) and len(a.catalogue) == len(b.catalogue) == 23
    for trending in (False, True):
        assert dict(a.stats.popular(50, trending=trending)) == pytest.approx(dict(b.stats.popular(50, trending=trending)))
    assert {i: s for i, s, _ in a.stats.neighbours(["i1", "i2"], 30)} == pytest.approx(
        {i: s for i, s, _ in b.stats.neighbours(["i1", "i2"], 30)})


def test_a_restart_restores_the_snapshot_and_reads_only_the_rest(stack, tmp_path):
    tag = uuid.uuid4().hex[:6]
    settings = stack.settings.model_copy(update={
        "items_topic": f"items-{tag}", "interactions_topic": f"interactions-{tag}", "data_dir": tmp_path,
        "views_snapshot_s": 0.2})
    create_topics(kafka_config(settings), [TopicSpec(settings.items_topic, 2), TopicSpec(settings.interactions_topic, 3)])
    with Publisher(settings) as pub:
        pub.publish_many([Item(id=f"i{n}", title=f"item {n}", category=f"c{n % 3}") for n in range(23)])
    publish(settings, 0, 300)
    first, _ = feed_until_caught_up(settings, 300)
    time.sleep(0.5)  # at least one snapshot taken while running
    first.stop()  # and one at stop

    publish(settings, 300, 200)
    again, restored = feed_until_caught_up(settings, 500)
    full, scratch = feed_until_caught_up(settings.model_copy(update={"views_snapshot_s": 0.0}), 500)
    try:
        assert again.restored_from == "snapshot" and full.restored_from == "beginning"
        assert_same_views(restored, scratch)
    finally:
        again.stop()
        full.stop()


def test_workers_sharing_a_data_dir_take_separate_snapshot_slots(tmp_path):
    a, b = SnapshotSlot(tmp_path), SnapshotSlot(tmp_path)
    assert a.path != b.path
    a.close()
    c = SnapshotSlot(tmp_path)  # a restarted worker takes the slot the stopped one left
    assert c.path == a.path
    b.close()
    c.close()
