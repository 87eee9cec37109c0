"""The Python SDK and the operator CLI against the real broker, Milvus and workers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import pytest

from fusionrec.schemas import Interaction, Item, StreamError
from fusionrec.streams import Publisher, RecommendationConsumer
from fusionrec.testing.stack import run_cli

pytestmark = pytest.mark.integration


def test_publisher_batches_and_consumer_filters_by_user_sync_and_async(stack, driver):
    t = uuid.uuid4().hex[:6]
    s = stack.settings
    items = [Item(id=f"{t}-i{n}", title=f"trail running shoes model {n}") for n in range(3)]
    with Publisher(s) as pub:
        assert pub.publish_many(items) == 3
    driver.wait_until(lambda: len(driver.index.get([i.id for i in items])) == 3, what="items indexed")
    before = datetime.now(UTC)
    time.sleep(0.05)
    events = [Interaction(event_id=f"{t}-e{n}", user_id=f"{t}-u{n % 2}", item_id=items[n].id, type="like",
                          timestamp=datetime.now(UTC)) for n in range(3)]
    with Publisher(s) as pub:
        pub.publish_many(events)
        assert pub.delivered == 3

    with RecommendationConsumer(s, users={f"{t}-u0"}, start="beginning") as recs:
        got = [next(iter(recs)).recommendation for _ in range(2)]
    assert {r.user_id for r in got} == {f"{t}-u0"} and {r.trigger_event_id for r in got} == {f"{t}-e0", f"{t}-e2"}

    async def first_async() -> str:
        with RecommendationConsumer(s, users={f"{t}-u1"}, start=before) as recs:
            async for got in recs:
                return got.recommendation.trigger_event_id or ""
        return ""

    assert asyncio.run(asyncio.wait_for(first_async(), 60)) == f"{t}-e1"


def test_consumer_from_the_end_sees_only_new_lists(stack, driver):
    t = uuid.uuid4().hex[:6]
    driver.publish_items([Item(id=f"{t}-a", title="camping stove"), Item(id=f"{t}-b", title="camping kettle")])
    old = driver.recommendation_for(driver.interact(f"{t}-u", f"{t}-a"))
    with RecommendationConsumer(stack.settings, start="end") as recs:
        new = driver.interact(f"{t}-u", f"{t}-b")
        first = next(iter(recs)).recommendation
    assert old.trigger_event_id != new and first.trigger_event_id == new


def test_publisher_reports_failed_deliveries(stack):
    pub = Publisher(stack.settings.model_copy(update={"interactions_topic": "no-such-topic-" + uuid.uuid4().hex[:6]}),
                    **{"message.timeout.ms": 3000, "allow.auto.create.topics": False})
    pub.publish_interaction(Interaction(event_id="e", user_id="u", item_id="i", type="like",
                                        timestamp=datetime.now(UTC)))
    with pytest.raises(StreamError):
        pub.close()


def test_cli_topics_publish_tail_and_status(stack, driver, tmp_path):
    t = uuid.uuid4().hex[:6]
    listed = run_cli(stack, "topics", "list")
    assert listed.returncode == 0 and stack.settings.items_topic in listed.stdout
    described = run_cli(stack, "topics", "describe")
    assert described.returncode == 0 and stack.settings.retry_topic in described.stdout and "yes" in described.stdout
    assert run_cli(stack, "topics", "create").returncode == 0  # idempotent

    items = tmp_path / "items.csv"
    items.write_text(f"sku,name,tags,media\n{t}-a,red wool scarf,winter,\n{t}-b,green scarf,,{{oops\n"
                     f"{t}-c,blue wool scarf,winter|wool,\n")
    out = run_cli(stack, "publish", "items", str(items), "--map", "id=sku", "--map", "title=name")
    assert out.returncode == 1, out.stderr  # one bad row
    assert "line 3:" in out.stderr and "2 published" in out.stderr and "1 rejected" in out.stderr
    driver.wait_until(lambda: len(driver.index.get([f"{t}-a", f"{t}-c"])) == 2, what="CLI-published items")
    assert driver.index.get([f"{t}-b"]) == {}

    inter = tmp_path / "inter.jsonl"
    inter.write_text(json.dumps({"event_id": f"{t}-e1", "user_id": f"{t}-u", "item_id": f"{t}-a", "type": "like",
                                 "timestamp": "2026-11-22T12:00:00Z"}) + "\n")
    assert run_cli(stack, "publish", "interactions", str(inter)).returncode == 0
    tailed = run_cli(stack, "tail", "--user", f"{t}-u", "--from-beginning", "--limit", "1", timeout_s=60)
    assert tailed.returncode == 0 and f"{t}-u <- {t}-e1" in tailed.stdout and f"{t}-c" in tailed.stdout

    status = run_cli(stack, "status", "--interval", "0.5")
    assert status.returncode == 0, status.stderr
    for expected in ("fusionrec-profiles", "fusionrec-encoder", "consumer lag", stack.settings.interactions_topic,
                     f"{stack.settings.collection}__v", "all-MiniLM-L6-v2@384"):
        assert expected in status.stdout, expected
