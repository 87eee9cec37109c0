"""The three replay modes against the real broker, Milvus and workers: export/import, re-encode
into a new collection with an alias switch, and a profile rebuild from the interactions topic."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer

from fusionrec.schemas import Item
from fusionrec.streams import kafka_config, open_index
from fusionrec.streams.embedded.processes import WorkerProcess
from fusionrec.streams.kafka.reader import read_topic
from fusionrec.streams.kafka.topics import TopicSpec, create_topics
from fusionrec.streams.ops.replay import load_records
from fusionrec.testing.stack import run_cli

pytestmark = pytest.mark.integration


def comparable(records) -> list[tuple]:
    return sorted((r.partition, r.offset, r.key, r.value, tuple(r.headers), r.timestamp_ms) for r in records)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_export_then_import_reproduces_a_topic(stack, tmp_path, fmt):
    s = stack.settings
    source, copy = f"exp-{uuid.uuid4().hex[:6]}", f"imp-{uuid.uuid4().hex[:6]}"
    create_topics(kafka_config(s), [TopicSpec(source, 3), TopicSpec(copy, 3)])
    producer = Producer({**kafka_config(s), "partitioner": "murmur2_random", "linger.ms": 20})
    for n in range(60):
        producer.produce(source, key=f"k{n % 7}".encode(), value=json.dumps({"n": n}).encode(),
                         headers=[("h", str(n).encode())], timestamp=1_700_000_000_000 + n)
    producer.produce(source, key=None, value=None)  # keyless tombstone survives too
    assert producer.flush(10) == 0

    out = tmp_path / f"dump.{fmt}"
    exported = run_cli(stack, "replay", "export", "--topic", source, "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert len(load_records(out)) == 61
    imported = run_cli(stack, "replay", "import", str(out), "--topic", copy)
    assert imported.returncode == 0, imported.stderr
    assert comparable(read_topic(s, copy)) == comparable(read_topic(s, source))


def test_time_ranges_use_record_timestamps(stack, tmp_path):
    s = stack.settings
    topic = f"times-{uuid.uuid4().hex[:6]}"
    create_topics(kafka_config(s), [TopicSpec(topic, 2)])
    producer = Producer({**kafka_config(s), "linger.ms": 20})
    for n, ts in enumerate([1_000, 2_000, 3_000, 4_000] * 3):
        producer.produce(topic, key=f"k{n}".encode(), value=b"v", timestamp=1_700_000_000_000 + ts)
    assert producer.flush(10) == 0
    out = tmp_path / "range.jsonl"
    since = datetime.fromtimestamp(1_700_000_002, UTC).isoformat()
    until = datetime.fromtimestamp(1_700_000_004, UTC).isoformat()
    assert run_cli(stack, "replay", "export", "--topic", topic, "--out", str(out), "--since", since,
                   "--until", until).returncode == 0
    assert sorted(r.timestamp_ms - 1_700_000_000_000 for r in load_records(out)) == [2_000] * 3 + [3_000] * 3


def test_reencode_builds_a_new_collection_and_switches_serving(stack, driver):
    s = stack.settings
    t = uuid.uuid4().hex[:6]
    driver.publish_items([Item(id=f"{t}-{n}", title=f"espresso grinder burr set {n}") for n in range(3)])
    alias = open_index(s.require_milvus_uri(), s.collection)
    before = alias.serving()
    old = open_index(s.require_milvus_uri(), before)
    old_count, old_vec = old.count(), old.get([f"{t}-0"])[f"{t}-0"].vector

    out = run_cli(stack, "replay", "re-encode", timeout_s=600)
    assert out.returncode == 0, out.stderr[-2000:]
    after = alias.serving()
    assert after != before and after in out.stderr and "now serves" in out.stderr
    new = open_index(s.require_milvus_uri(), after)
    assert new.count() >= old_count - 5  # every encodable item (items added meanwhile may differ by a few)
    assert {f"{t}-0", f"{t}-1", f"{t}-2"} <= set(new.get([f"{t}-0", f"{t}-1", f"{t}-2"]))
    assert old.count() >= old_count and (old.get([f"{t}-0"])[f"{t}-0"].vector == old_vec).all()  # kept
    # Serving goes on through the alias: the workers read and write the new version now.
    rec = driver.recommendation_for(driver.interact(f"{t}-user", f"{t}-0"))
    assert {f"{t}-1", f"{t}-2"} & {i.item_id for i in rec.items}
    driver.publish_items([Item(id=f"{t}-later", title="espresso tamper")])
    assert new.get([f"{t}-later"])
    for index in (alias, old, new):
        index.close()


def test_profile_rebuild_reproduces_the_profiles(stack, driver):
    t = uuid.uuid4().hex[:6]
    items = [Item(id=f"{t}-{n}", title=f"mountain bike tyre size {n}") for n in range(4)]
    driver.publish_items(items)
    stamp = datetime(2026, 11, 22, 10, tzinfo=UTC)
    users = [f"{t}-rider{n}" for n in range(3)]
    for n, user in enumerate(users):
        for k, kind in enumerate(["view", "like", "skip"][: n + 1]):
            driver.recommendation_for(driver.interact(user, items[(n + k) % 4].id, kind, timestamp=stamp))
    original = {u: driver.profile(u) for u in users}

    refused = run_cli(stack, "replay", "profiles", input_text="n\n")
    assert refused.returncode != 0  # asks first
    out = run_cli(stack, "replay", "profiles", "--yes")
    assert out.returncode == 0, out.stderr
    assert f"{stack.settings.interactions_topic}:" in out.stderr and "FUSIONREC_PROFILE_GENERATION=2" in out.stderr

    old = next(w for w in stack.workers if w.role == "profiles")
    old.stop()
    rebuilt_worker = WorkerProcess("profiles", {**stack.worker_env(), "FUSIONREC_PROFILE_GENERATION": "2"},
                                   log_path=old.log_path)
    stack.workers[stack.workers.index(old)] = rebuilt_worker  # the fixture stops it at the end
    rebuilt_worker.start()
    rebuilt_worker.wait_ready()

    def rebuilt():
        now = {u: driver.profile(u) for u in users}
        return now if all(now[u]["n_events"] == original[u]["n_events"] for u in users) else None

    now = driver.wait_until(rebuilt, timeout_s=240, what="the profiles to be rebuilt")
    for u in users:
        assert now[u]["vectors_sha256"] == original[u]["vectors_sha256"], u
        assert now[u]["seen"] == original[u]["seen"]
