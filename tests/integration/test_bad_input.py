"""A corpus of bad inputs, interleaved with good events, sent by the real kcat (records nobody
here wrote) through the real broker into running workers: each bad input gets its expected
dead-letter code (or handling), every good event is processed, no worker restarts, and events
in = processed + dead-lettered, exactly. Among them the faults once found from outside: a
record too large for its own dead letter inside a micro-batch of good items, ids with quotes,
backslashes and brackets (and interactions on them), events dated in the year 9999."""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from fusionrec.agents.routing import MAX_ORIGINAL_BYTES
from fusionrec.schemas import ErrorCode as E
from fusionrec.schemas import Interaction, Item
from fusionrec.streams import kafka_config
from fusionrec.streams.ops.deadletters import originals, read_dead_letters, replay
from fusionrec.streams.ops.kcat import run_kcat
from fusionrec.testing.media import mp4, png, wav
from fusionrec.testing.stack import kcat_or_fail

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
        value = item_json(id=iid, title=f"hand-thrown ceramic vase number {n}", **extra)
        return Case(f"good item {n}", iid.encode(), value, None)

    def bad(label: str, expect: E, key: str | None = None, **fields) -> Case:
        iid = fields.get("id", f"{tag}-{label.replace(' ', '-')}")
        k = key if key is not None else (iid if isinstance(iid, str) else "x")
        return Case(label, k.encode(), item_json(**({"id": iid, "title": "t"} | fields)), expect)

    def good_id(label: str, iid: str, **extra) -> Case:
        return Case(label, iid.encode(), item_json(id=iid, title=f"enamel camping mug {label}", **extra), None)

    f = f"file://{root}"
    # A record over the producer's 1 MB limit, in the middle of a micro-batch of good items: its
    # dead letter must fit, and the nine items around it must all be stored.
    huge = Case("1.5 MB item among good ones", f"{tag}-huge".encode(),
                item_json(id=f"{tag}-huge", title="t", description="x" * 1_500_000), E.PAYLOAD_TOO_LARGE)
    return [
        *[good_id(f"batch {n}", f"{tag}-batch-{n}") for n in range(5)],
        huge,
        *[good_id(f"batch {n}", f"{tag}-batch-{n}") for n in range(5, 9)],
        good_id("apostrophe id", f"{tag}-it's-1"),
        good_id("quotes backslash brackets id", f'{tag}-say "hi" \\ [x] {{y}}'),
        good_id("injection-looking id", f"{tag}-'] or id != ['"),
        good_id("unicode id", f"{tag}-é ü 中文 🎉"),
        good_id("longest id in 4-byte characters", tag + "🎉" * (256 - len(tag))),
        good_id("NUL in title", f"{tag}-nul", description="a\u0000b"),
        good_id("1e38 vector", f"{tag}-huge-vector", vectors={"clip": [1e38, 1e38, 1e38, 1e38]}),
        bad("10,000-character id", E.INVALID_EVENT, key="k-long", id="i" * 10_000),
        bad("updated in the year 9999", E.INVALID_EVENT, updated_at="9999-12-31T00:00:00Z"),
        bad("version past int64", E.INVALID_EVENT, version=2**63),
        bad("version 0", E.INVALID_EVENT, version=0),
        bad("101 tags", E.INVALID_EVENT, tags=["a"] * 101),
        Case("json null", f"{tag}-k8".encode(), b"null", E.INVALID_EVENT),
        Case("json string", f"{tag}-k9".encode(), b'"an item"', E.INVALID_EVENT),
        Case("byte order mark", f"{tag}-k10".encode(), b'\xef\xbb\xbf{"id": "k10", "title": "t"}', E.MALFORMED_JSON),
        Case("utf-16", f"{tag}-k11".encode(), '{"id": "k11", "title": "t"}'.encode("utf-16"), E.MALFORMED_JSON),
        Case("nested 5,000 deep", f"{tag}-k12".encode(),
             b'{"id": "k12", "title": "t", "metadata": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}", E.MALFORMED_JSON),
        Case("duplicate id fields", f"{tag}-first".encode(),
             item_json(title="t") [:-1] + f', "id": "{tag}-first", "id": "{tag}-second"}}'.encode(), E.KEY_MISMATCH),
        bad("10 KB key", E.KEY_MISMATCH, key="k" * 10_000),
        bad("link-local metadata url", E.MEDIA_NOT_ALLOWED, media={"image": {"uri": "http://169.254.169.254/latest"}}),
        bad("ipv6 loopback url", E.MEDIA_NOT_ALLOWED, media={"image": {"uri": "http://[::1]/a.png"}}),
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


def interaction_cases(tag: str, items: list[str], odd_items: list[str]) -> list[Case]:
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
        *[Case(f"good on odd id {n}", u2, ev(10 + n, u2.decode(), iid), None) for n, iid in enumerate(odd_items)],
        Case("good epoch milliseconds", u1, ev(20, u1.decode(), items[4], timestamp=int(time.time() * 1000)), None),
        Case("good epoch seconds", u1, ev(21, u1.decode(), items[5], timestamp=time.time()), None),
        Case("good naive time (UTC)", u2, ev(22, u2.decode(), items[6], timestamp="2026-11-22T12:00:00"), None),
        Case("i year 9999", u1, ev(80, u1.decode(), items[0], timestamp="9999-12-31T23:59:59Z"), E.INVALID_EVENT),
        Case("i epoch microseconds", u1, ev(81, u1.decode(), items[0], timestamp=int(time.time() * 1e6)), E.INVALID_EVENT),
        Case("i 1.5 MB interaction", u1, ev(82, u1.decode(), items[0], context={"x": "y" * 1_500_000}),
             E.PAYLOAD_TOO_LARGE),
        Case("i rating 1e308", u1, ev(83, u1.decode(), items[0], type="rating", value=1e308), E.INVALID_EVENT),
        Case("i 10,000-character user", b"w" * 10_000, ev(84, "w" * 10_000, items[0]), E.INVALID_EVENT),
        Case("i control char in event id", u1, ev(85, u1.decode(), items[0], event_id="a\u0007b"), E.INVALID_EVENT),
    ]


def publish(settings, topic: str, cases: list[Case]) -> dict[tuple[int, int], Case]:
    """Send the cases, in order, with one run of the real kcat; returns (partition, offset) -> case.

    Records are framed with bytes no case contains, so binary values, newlines and tabs travel
    as they are; a case without a key is sent without one."""
    frame, key_sep = b"\x1e\x1f", b"\x1d"
    blob = b"".join((b"" if c.key is None else c.key + key_sep) + (c.value or b"") + frame for c in cases)
    assert all(frame not in (c.key or b"") + (c.value or b"") and key_sep not in (c.key or b"") for c in cases)
    with tempfile.NamedTemporaryFile() as f:
        f.write(blob)
        f.flush()
        rc = run_kcat(settings, ["-P", "-t", topic, "-K", "\\x1d", "-D", "\\x1e\\x1f", "-l", f.name,
                                 "-X", "partitioner=murmur2_random", "-X", "message.max.bytes=4000000"])
    assert rc == 0
    return locate(settings, topic, cases)


def locate(settings, topic: str, cases: list[Case]) -> dict[tuple[int, int], Case]:
    """Where each case landed, found by reading the topic back (equal records in sending order)."""
    waiting: dict[tuple[bytes | None, bytes], list[Case]] = {}
    for c in cases:
        waiting.setdefault((c.key, c.value or b""), []).append(c)
    consumer = Consumer({**kafka_config(settings, consumer=True), "group.id": f"locate-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "fetch.message.max.bytes": 8_000_000})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    where: dict[tuple[int, int], Case] = {}
    deadline = time.monotonic() + 60
    try:
        while len(where) < len(cases):
            assert time.monotonic() < deadline, f"kcat sent {len(where)} of {len(cases)} records"
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            queue = waiting.get((msg.key(), msg.value() or b""))
            if queue:
                where[(msg.partition(), msg.offset())] = queue.pop(0)
    finally:
        consumer.close()
    return where


def test_bad_inputs_are_dead_lettered_and_good_events_processed(stack, driver, media_root):
    kcat_or_fail()
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

    odd = [i for i in good_items if not i.startswith(f"{tag}-batch-") and not i.startswith(f"{tag}-ok-")]
    inters = interaction_cases(tag, good_items, odd)
    inter_at = publish(s, s.interactions_topic, inters)
    good_events = [Interaction.model_validate_json(c.value).event_id for c in inters
                   if c.expect is None and not c.label.startswith("i duplicate")]
    for eid in good_events:
        driver.recommendation_for(eid)

    expected = {(s.items_topic, *pos): c for pos, c in item_at.items() if c.expect} | {
        (s.interactions_topic, *pos): c for pos, c in inter_at.items() if c.expect}
    assert len({c.label for c in items + inters}) == len(items) + len(inters)
    assert len(expected) >= 50
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
        value = expected[k].value or b""
        if len(value) > MAX_ORIGINAL_BYTES or len(expected[k].key or b"") > 1024:
            # Too large to carry whole: the letter says so and replay reads the source record.
            assert d.original_truncated and d.original_size == len(value) and value.startswith(d.original)
            assert originals(s, d) == (expected[k].key, value)
        else:
            assert d.original == value and d.key == expected[k].key and not d.original_truncated
        assert d.reason

    # Every input accounted for exactly once.
    stored = driver.index.get(good_items)
    recs = {eid for eid in good_events if eid in driver.by_trigger}
    assert len(item_at) == len(stored) + sum(1 for c in item_at.values() if c.expect)
    duplicates = sum(1 for c in inters if c.label.startswith("i duplicate"))
    assert len(inter_at) == len(recs) + duplicates + sum(1 for c in inter_at.values() if c.expect)
    assert stored[good_items[3]].encoder_version  # the multimodal good item is stored too

    # The worker still serves: a list on demand, and a list for a new event of a new user.
    assert driver.on_demand(f"{tag}-u1").items
    after = driver.interact(f"{tag}-after", good_items[0])
    assert driver.recommendation_for(after).items

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
    import subprocess
    import sys

    kcat_or_fail()
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
