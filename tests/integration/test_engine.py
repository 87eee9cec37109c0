"""The recommendation engine through the real broker, Milvus, MiniLM and workers: popularity for
cold starts, co-occurrence, availability, fresh items, duplicate replays, the on-demand endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest

from fusionrec.schemas import Item

pytestmark = pytest.mark.integration


def tag() -> str:
    return uuid.uuid4().hex[:6]


def test_cold_start_user_gets_popular_items(driver):
    t = tag()
    hit, also = Item(id=f"{t}-hit", title="noise cancelling headphones"), Item(id=f"{t}-also", title="usb charger")
    driver.publish_items([hit, also])
    events = [driver.interact(f"{t}-fan{n}", hit.id) for n in range(12)]
    events += [driver.interact(f"{t}-fan{n}", also.id) for n in range(6)]
    for eid in events:
        driver.recommendation_for(eid)

    def popular_first():
        rec = driver.on_demand(f"{t}-newcomer")
        return rec if rec.items and rec.items[0].item_id == hit.id else None

    rec = driver.wait_until(popular_first, what="the popular item to lead a cold-start list")
    assert rec.items[0].reason == "popular now"
    assert also.id in [i.item_id for i in rec.items]
    assert rec.trigger_event_id is None


def test_items_chosen_together_are_recommended_together(driver):
    t = tag()
    wax, espresso = Item(id=f"{t}-wax", title="surfboard wax"), Item(id=f"{t}-espresso", title="espresso machine")
    driver.publish_items([wax, espresso])
    for n in range(4):
        driver.recommendation_for(driver.interact(f"{t}-u{n}", wax.id))
        driver.recommendation_for(driver.interact(f"{t}-u{n}", espresso.id))

    def together():
        rec = driver.recommendation_for(driver.interact(f"{t}-new-{uuid.uuid4().hex[:4]}", wax.id))
        hit = next((i for i in rec.items if i.item_id == espresso.id), None)
        return hit if hit and hit.reason.startswith("often chosen with") else None

    hit = driver.wait_until(together, what="co-occurrence to reach the list")
    assert "surfboard wax" in hit.reason


def test_unavailable_items_are_never_recommended(driver):
    t = tag()
    items = [Item(id=f"{t}-k{i}", title=f"knitting pattern for a wool sweater, style {i}") for i in range(4)]
    gone = Item(id=f"{t}-gone", title="knitting pattern for a wool cardigan")
    driver.publish_items([*items, gone])
    user = f"{t}-knitter"
    rec = driver.recommendation_for(driver.interact(user, items[0].id))
    assert gone.id in [i.item_id for i in rec.items]  # similar, so it would be recommended...
    driver.publish_items([gone.model_copy(update={"version": 2, "available": False})])
    driver.wait_until(lambda: not driver.index.get([gone.id])[gone.id].available, what="the item to go unavailable")
    driver.wait_until(lambda: gone.id not in [i.item_id for i in driver.on_demand(user).items],
                      what="the catalogue view to see it")
    rec = driver.recommendation_for(driver.interact(user, items[1].id))
    assert gone.id not in [i.item_id for i in rec.items]  # ...but not once it is unavailable
    assert gone.id not in [i.item_id for i in driver.on_demand(user, k=50).items]


def test_a_brand_new_item_reaches_users_of_its_taste(driver):
    t = tag()
    items = [Item(id=f"{t}-b{i}", title=f"birdwatching binoculars for spotting owls, model {i}") for i in range(3)]
    driver.publish_items(items)
    user = f"{t}-birder"
    for it in items:
        driver.recommendation_for(driver.interact(user, it.id))
    new = Item(id=f"{t}-new", title="field guide to owls and birdwatching at night", updated_at=datetime.now(UTC))
    driver.publish_items([new])
    rec = driver.wait_until(lambda: new.id in [i.item_id for i in driver.on_demand(user).items],
                            what="the new item in the list")
    assert rec


def test_on_demand_filters_by_category(driver):
    t = tag()
    driver.publish_items([Item(id=f"{t}-c{i}", title=f"ceramic teapot {i}", category=f"{t}-{'tea' if i % 2 else 'pots'}")
                          for i in range(6)])
    user = f"{t}-tea-fan"
    driver.recommendation_for(driver.interact(user, f"{t}-c0"))
    rec = driver.on_demand(user, category=f"{t}-tea")

    def only_tea():
        got = driver.on_demand(user, category=f"{t}-tea")
        ids = [i.item_id for i in got.items]
        return ids if ids and all(int(i[-1]) % 2 for i in ids) else None

    ids = driver.wait_until(only_tea, what="a category-filtered list")
    assert set(ids) == {f"{t}-c1", f"{t}-c3", f"{t}-c5"}
    excluded = [i.item_id for i in driver.on_demand(user, exclude_category=f"{t}-tea").items]
    assert not set(excluded) & {f"{t}-c1", f"{t}-c3", f"{t}-c5"}
    assert rec.user_id == user


def test_replaying_a_stream_twice_leaves_the_profile_as_one_replay(driver):
    t = tag()
    items = [Item(id=f"{t}-i{i}", title=f"sourdough baking guide part {i}") for i in range(4)]
    driver.publish_items(items)
    kinds = ["view", "like", "skip", "purchase"]
    stamp = datetime(2026, 11, 22, 12, tzinfo=UTC)

    def stream(user: str, prefix: str) -> list[str]:
        return [driver.interact(user, it.id, kind, event_id=f"{prefix}-{n}", timestamp=stamp)
                for n, (it, kind) in enumerate(zip(items, kinds, strict=True))]

    once = stream(f"{t}-once", f"{t}-a")
    for eid in once:
        driver.recommendation_for(eid)
    twice_user = f"{t}-twice"
    first = stream(twice_user, f"{t}-b")
    for eid in first:
        driver.recommendation_for(eid)
    stream(twice_user, f"{t}-b")  # the same events again: duplicate delivery
    sentinel = driver.interact(twice_user, items[0].id, "view", event_id=f"{t}-b-last", timestamp=stamp)
    driver.recommendation_for(sentinel)  # processed after the duplicates (same partition, in order)
    driver.recommendation_for(driver.interact(f"{t}-once", items[0].id, "view", event_id=f"{t}-a-last",
                                              timestamp=stamp))
    a, b = driver.profile(f"{t}-once"), driver.profile(twice_user)
    assert a["n_events"] == b["n_events"] == 5
    assert a["vectors_sha256"] == b["vectors_sha256"] and a["seen"] == b["seen"]


def test_recommend_cli_prints_a_users_list(stack, driver):
    t = tag()
    driver.publish_items([Item(id=f"{t}-x", title="kayak paddle"), Item(id=f"{t}-y", title="kayak spray skirt")])
    driver.recommendation_for(driver.interact(f"{t}-paddler", f"{t}-x"))
    env = {**os.environ, **stack.worker_env(), "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "fusionrec.streams.cli", "recommend", "--user", f"{t}-paddler",
                          "--k", "3"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"{t}-y" in out.stdout and "profile-v2+" in out.stdout
    as_json = subprocess.run([sys.executable, "-m", "fusionrec.streams.cli", "recommend", "--user", f"{t}-paddler",
                              "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert '"user_id": "' + f"{t}-paddler" in as_json.stdout
