"""A corpus of bad inputs, interleaved with good events, through the real broker into running
workers: each bad input gets its expected dead-letter code (or handling), every good event is
processed, no worker restarts, and events in = processed + dead-lettered, exactly."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass

import pytest
from confluent_kafka import Producer

from fusionrec.schemas import ErrorCode as E
from fusionrec.schemas import Interaction, Item
from fusionrec.streams import kafka_config
from fusionrec.streams.deadletters import read_dead_letters, replay

from tests.media import mp4, png, wav

pytestmark = pytest.mark.integration

NOW = "2026-11-22T12:00:00Z"


@dataclass
class Case:
    label: str
    key: bytes | None
    value: bytes | None
    expect: E | None  # None: must be processed


def item_json(**fields) -> bytes:
    return json.dumps(fields).encode()


def item_cases(tag: str, root) -> list[Case]:
    (root / f"{tag}-good.png").write_bytes(png())
    (root / f"{tag}-good.mp4").write_bytes(mp4())
    (root / f"{tag}-bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    (root / f"{tag}-bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64)
    big = base64.b64encode(b"\x89PNG" + b"\x00" * 25_000).decode()

    def good(n: int, **extra) -> Case:
        iid = f"{tag}-ok-{n}"
        return Case(f"good item {n}", iid.encode(), item_json(id=iid, title=f"hand-thrown ceramic vase number {n}", **extra), None)

    def bad(label: str, expect: E, key: str | None = None, **fields) -> Case:
        iid = fields.get("id", f"{tag}-{label.replace(' ', '-')}")
        k = key if key is not None else (iid if isinstance(iid, str) else "x")
        return Case(label, k.encode(), item_json(**({"id": iid, "title": "t"} | fields)), expect)

    f = f"file://{root}"
    return [
        good(0),
        Case("malformed json", b"k1", b'{"id": "x", "title": ', E.MALFORMED_JSON),
        Case("json array", b"k2", b"[1, 2, 3]", E.INVALID_EVENT),
        Case("invalid utf-8", b"k3", b"\xff\xfe\xfd", E.MALFORMED_JSON),
        Case("empty value", b"k4", b"", E.MALFORMED_JSON),
        good(1, media={"image": {"uri": f"{f}/{tag}-good.png"}}),
        Case("missing id", b"k5", item_json(title="no id"), E.INVALID_EVENT),
        bad("empty id", E.INVALID_EVENT, key="k6", id=""),
        bad("title is a number", E.INVALID_EVENT, title=5),
        bad("unknown field", E.INVALID_EVENT, colour="red"),
        bad("schema version 2", E.UNSUPPORTED_SCHEMA_VERSION, schema_version=2),
        good(2, media={"audio": {"data": base64.b64encode(wav()).decode()}}),
        bad("oversized payload", E.PAYLOAD_TOO_LARGE, description="x" * 70_000),
        bad("key is not the id", E.KEY_MISMATCH, key="someone-else"),
        bad("nothing to encode", E.NOTHING_TO_ENCODE, title=""),
        bad("control char in id", E.INVALID_EVENT, key="k7", id="a\u0001b"),
        good(3, vectors={"clip": [0.1, 0.2, 0.3, 0.4]}, media={"video": {"uri": f"{f}/{tag}-good.mp4"}}),
        Case("nan vector", f"{tag}-nan".encode(),
             f'{{"id": "{tag}-nan", "title": "t", "vectors": {{"clip": [0.1, NaN, 0.1, 0.1]}}}}'.encode(), E.BAD_VECTOR),
        Case("inf vector", f"{tag}-inf".encode(),
             f'{{"id": "{tag}-inf", "title": "t", "vectors": {{"clip": [1e999, 0, 0, 0]}}}}'.encode(), E.BAD_VECTOR),
        bad("wrong vector dimension", E.BAD_VECTOR, vectors={"clip": [0.1, 0.2]}),
        bad("undeclared vector", E.BAD_VECTOR, vectors={"openl3": [0.1, 0.2, 0.3, 0.4]}),
        bad("corrupt inline image", E.MEDIA_UNDECODABLE, media={"image": {"data": base64.b64encode(png()[:40]).decode()}}),
        bad("corrupt audio file", E.MEDIA_UNDECODABLE, media={"audio": {"uri": f"{f}/{tag}-bad.wav"}}),
        bad("corrupt video file", E.MEDIA_UNDECODABLE, media={"video": {"uri": f"{f}/{tag}-bad.mp4"}}),
        bad("image that is audio", E.MEDIA_UNDECODABLE, media={"image": {"data": base64.b64encode(wav()).decode()}}),
        bad("path traversal", E.MEDIA_NOT_ALLOWED, media={"image": {"uri": f"{f}/../../etc/passwd"}}),
        bad("file outside root", E.MEDIA_NOT_ALLOWED, media={"image": {"uri": "file:///etc/hostname"}}),
        bad("loopback url", E.MEDIA_NOT_ALLOWED, media={"image": {"uri": "http://127.0.0.1:9/a.png"}}),
        bad("private url", E.MEDIA_NOT_ALLOWED, media={"image": {"uri": "http://10.255.0.1/a.png"}}),
        bad("ftp url", E.MEDIA_NOT_ALLOWED, media={"image": {"uri": "ftp://example.org/a.png"}}),
        bad("missing media file", E.MEDIA_FETCH_FAILED, media={"image": {"uri": f"{f}/{tag}-nope.png"}}),
        bad("image over size limit", E.MEDIA_TOO_LARGE, media={"image": {"data": big}}),
        bad("uri and data both", E.INVALID_EVENT, media={"image": {"uri": "x", "data": "eA=="}}),
        bad("declared type is not image", E.MEDIA_NOT_ALLOWED,
            media={"image": {"data": base64.b64encode(png()).decode(), "content_type": "text/html"}}),
        bad("unknown modality", E.INVALID_EVENT, media={"smell": {"uri": "x"}}),
        good(4),
    ]


def interaction_cases(tag: str, items: list[str]) -> list[Case]:
    def ev(n: int, user: str, item: str, **over) -> bytes:
        doc = {"event_id": f"{tag}-e{n}", "user_id": user, "item_id": item, "type": "like", "timestamp": NOW} | over
        return json.dumps(doc).encode()

    u1, u2 = f"{tag}-u1".encode(), f"{tag}-u2".encode()
    return [
        Case("good 1", u1, ev(1, u1.decode(), items[0]), None),
        Case("i malformed json", u1, b'{"event_id": ', E.MALFORMED_JSON),
        Case("i missing user", u1, json.dumps({"event_id": "x", "item_id": items[0], "type": "like",
                                               "timestamp": NOW}).encode(), E.INVALID_EVENT),
        Case("good 2", u2, ev(2, u2.decode(), items[1]), None),
        Case("i unknown type", u1, ev(90, u1.decode(), items[0], type="teleport"), E.INVALID_EVENT),
        Case("i nan value", u1, ev(91, u1.decode(), items[0], value="NaN"), E.INVALID_EVENT),
        Case("i bad timestamp", u1, ev(92, u1.decode(), items[0], timestamp="yesterday-ish"), E.INVALID_EVENT),
        Case("i key is another user", u2, ev(93, u1.decode(), items[0]), E.KEY_MISMATCH),
        Case("i no key", None, ev(94, u1.decode(), items[0]), E.KEY_MISMATCH),
        Case("good 3", u1, ev(3, u1.decode(), items[2]), None),
        Case("i schema version 99", u1, ev(95, u1.decode(), items[0], schema_version=99), E.UNSUPPORTED_SCHEMA_VERSION),
        Case("i oversized", u1, ev(96, u1.decode(), items[0], context={"x": "y" * 70_000}), E.PAYLOAD_TOO_LARGE),
        Case("i item never arrives", u2, ev(97, u2.decode(), f"{tag}-never"), E.UNKNOWN_ITEM),
        Case("i duplicate event id", u1, ev(1, u1.decode(), items[0]), None),
        Case("good 4", u2, ev(4, u2.decode(), items[3]), None),
    ]


def publish(settings, topic: str, cases: list[Case]) -> dict[tuple[int, int], Case]:
    """Publish raw bytes in order; returns (partition, offset) -> case."""
    producer = Producer({**kafka_config(settings), "partitioner": "murmur2_random", "message.max.bytes": 2_000_000})
    where: dict[tuple[int, int], Case] = {}
    for case in cases:
        def delivered(err, msg, case=case):
            assert err is None, err
            where[(msg.partition(), msg.offset())] = case
        producer.produce(topic, key=case.key, value=case.value, on_delivery=delivered)
        producer.flush(10)  # one at a time: the interleaving order is the order above
    producer.close()
    return where


def test_bad_inputs_are_dead_lettered_and_good_events_processed(stack, driver, media_root):
    s = stack.settings
    tag = uuid.uuid4().hex[:6]
    pids = [w.process.pid for w in stack.workers]

    items = item_cases(tag, media_root)
    item_at = publish(s, s.items_topic, items)
    good_items = [json.loads(c.value)["id"] for c in items if c.expect is None]
    deadline = time.monotonic() + 120
    while len(driver.index.get(good_items)) < len(good_items):
        assert time.monotonic() < deadline, "good items were not all indexed"
        time.sleep(0.3)

    inters = interaction_cases(tag, good_items)
    inter_at = publish(s, s.interactions_topic, inters)
    good_events = [Interaction.model_validate_json(c.value).event_id for c in inters
                   if c.expect is None and not c.label.startswith("i duplicate")]
    for eid in good_events:
        driver.recommendation_for(eid)

    expected = {(s.items_topic, *pos): c for pos, c in item_at.items() if c.expect} | {
        (s.interactions_topic, *pos): c for pos, c in inter_at.items() if c.expect}
    assert len({c.label for c in items + inters}) == len(items) + len(inters)
    assert len(expected) >= 30
    got = {}
    deadline = time.monotonic() + 60  # the never-arriving item waits out pending_timeout_s
    while len(got) < len(expected):
        assert time.monotonic() < deadline, sorted(c.label for k, c in expected.items() if k not in got)
        for d in read_dead_letters(s, idle_s=1.0):
            where = (d.source_topic, d.partition, d.offset)
            if where in expected:
                assert where not in got or got[where].failed_at == d.failed_at, f"two dead letters for {where}"
                got[where] = d

    print(f"{len(item_at)} item events, {len(inter_at)} interaction events, {len(expected)} bad inputs")
    wrong = {expected[k].label: (expected[k].expect, d.error_code, d.reason) for k, d in got.items()
             if d.error_code is not expected[k].expect}
    assert not wrong
    for k, d in got.items():
        assert d.original == (expected[k].value or b"") and d.key == expected[k].key and d.reason

    # Every input accounted for exactly once.
    stored = driver.index.get(good_items)
    recs = {eid for eid in good_events if eid in driver.by_trigger}
    assert len(item_at) == len(stored) + sum(1 for c in item_at.values() if c.expect)
    duplicates = sum(1 for c in inters if c.label.startswith("i duplicate"))
    assert len(inter_at) == len(recs) + duplicates + sum(1 for c in inter_at.values() if c.expect)
    assert stored[good_items[3]].encoder_version  # the multimodal good item is stored too

    # Nothing restarted, nothing crashed.
    assert [w.process.pid for w in stack.workers] == pids
    assert all(w.process.poll() is None for w in stack.workers)
    for w in stack.workers:
        assert "Traceback" not in w.log_path.read_text()


def test_interactions_wait_for_a_late_item_then_apply(stack, driver):
    tag = uuid.uuid4().hex[:6]
    user = f"{tag}-late-user"
    # Vocabulary no other test uses: the collection is shared by the whole session.
    late = Item(id=f"{tag}-late", title="pruning climbing roses in the cottage garden")
    others = [Item(id=f"{tag}-garden", title="planting tulip bulbs in garden flower beds"),
              Item(id=f"{tag}-bonds", title="government bond yields and interest rates")]
    driver.publish_items(others)
    first = driver.interact(user, late.id, "purchase")
    second = driver.interact(user, late.id, "like")
    driver.drain(2.0)  # both wait on the retry topic: no recommendation yet
    assert first not in driver.by_trigger and second not in driver.by_trigger
    driver.publish_items([late])
    rec1, rec2 = driver.recommendation_for(first), driver.recommendation_for(second)
    assert {i.item_id for i in rec1.items}.isdisjoint({late.id})
    ids = [i.item_id for i in rec2.items]
    # The profile is the late garden item's: the garden item is in, ahead of the finance one.
    assert f"{tag}-garden" in ids
    assert f"{tag}-bonds" not in ids or ids.index(f"{tag}-garden") < ids.index(f"{tag}-bonds")


def test_dead_letters_can_be_replayed_after_a_fix(stack, driver):
    tag = uuid.uuid4().hex[:6]
    user = f"{tag}-replay"
    item = Item(id=f"{tag}-ghost", title="hiking boots for muddy mountain trails")
    eid = driver.interact(user, item.id)  # the item comes too late: dead-lettered after the timeout
    deadline = time.monotonic() + 60
    letters = []
    while not letters:
        assert time.monotonic() < deadline, "no dead letter"
        letters = [d for d in read_dead_letters(stack.settings, codes=[E.UNKNOWN_ITEM], idle_s=1.0)
                   if d.key == user.encode()]
    driver.publish_items([item])
    assert replay(stack.settings, letters) == 1
    rec = driver.recommendation_for(eid)
    assert rec.user_id == user


def test_deadletters_cli_shows_a_table_and_replays(stack):
    import os
    import subprocess
    import sys

    tag = uuid.uuid4().hex[:6]
    publish(stack.settings, stack.settings.items_topic, [Case("cli", f"{tag}-cli".encode(), b"{oops", E.MALFORMED_JSON)])
    env = {**os.environ, **stack.worker_env(), "COLUMNS": "250"}
    cmd = [sys.executable, "-m", "fusionrec.streams.cli", "deadletters", "--code", "malformed_json", "--idle", "1"]
    deadline = time.monotonic() + 60
    while True:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        if f"{tag}-cli" in out.stdout:
            break
        assert time.monotonic() < deadline, out.stdout
    assert "malformed_json" in out.stdout and "dead letters" in out.stdout
    assert "bad_vector" not in out.stdout  # the --code filter holds
    bad = subprocess.run([*cmd[:4], "--code", "no_such_code"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "no_such_code" in bad.stderr
    replayed = subprocess.run([*cmd, "--replay", "--limit", "1"], env=env, capture_output=True, text=True, timeout=120)
    assert replayed.returncode == 0 and "re-published 1 records" in replayed.stderr
