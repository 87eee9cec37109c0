"""How long a profile worker's views take to be current again after a restart, by history size:
read from the beginning of the topics against restored from a snapshot plus what came after.

    .venv/bin/python bench/views_restart.py [--events 1000000] [--items 10000] [--users 100000] [--after 10000]

Starts an embedded broker only, publishes ``--items`` items and ``--events`` interactions, then
runs the worker's view feeder (``streams/worker/views.py``) three times: from the beginning with
snapshots off; again with snapshots on until it has saved one; and, after ``--after`` more
interactions, a restart from that snapshot. Prints the seconds until each was caught up (its lag
0), the snapshot's size and how long taking it held the views' lock.
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Producer
from tqdm import tqdm

from fusionrec.agents.engine import Views
from fusionrec.agents.profile import ProfileConfig
from fusionrec.schemas import Item
from fusionrec.streams import EmbeddedStack, Publisher, Settings, kafka_config
from fusionrec.streams.embedded.processes import free_port
from fusionrec.streams.worker.views import ViewFeeder


def publish_interactions(settings: Settings, start: int, n: int, items: int, users: int) -> None:
    producer = Producer({**kafka_config(settings), "partitioner": "murmur2_random", "linger.ms": 20,
                         "batch.num.messages": 10_000})
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in tqdm(range(start, start + n), desc="publish interactions", unit="event", mininterval=1.0):
        user = f"u{(i * 7919) % users}"
        ts = (t0 + timedelta(seconds=i)).isoformat()
        value = (f'{{"event_id":"e{i}","user_id":"{user}","item_id":"it{(i * 104729) % items}","type":"view",'
                 f'"timestamp":"{ts}"}}').encode()
        while True:
            try:
                producer.produce(settings.interactions_topic, key=user.encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)


def catch_up(settings: Settings, what: str, wait_for_snapshot: bool = False) -> tuple[float, ViewFeeder, Views]:
    views = Views()
    started = time.monotonic()
    feeder = ViewFeeder(settings, views, ProfileConfig()).start()
    with tqdm(desc=what, unit="s") as bar:
        while feeder.caught_up_s is None:
            time.sleep(0.2)
            bar.update(1)
    took = time.monotonic() - started
    if wait_for_snapshot:
        snapshot = settings.data_dir / "views" / settings.app_id("profiles") / "slot-0.pickle"
        before = snapshot.stat().st_mtime if snapshot.exists() else 0.0
        while not snapshot.exists() or snapshot.stat().st_mtime == before:
            time.sleep(0.2)
    return took, feeder, views


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--after", type=int, default=10_000, help="interactions published between snapshot and restart")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStack(
            Settings(data_dir=Path(tmp), web_port=free_port(), milvus_uri="memory://"), roles=()) as stack:
        s = stack.settings
        with Publisher(s) as pub:
            pub.publish_many([Item(id=f"it{n}", title=f"item {n}", category=f"c{n % 20}") for n in range(args.items)])
        publish_interactions(s, 0, args.events, args.items, args.users)

        full, feeder, _ = catch_up(s.model_copy(update={"views_snapshot_s": 0.0}), "from the beginning")
        feeder.stop()
        snapshotting = s.model_copy(update={"views_snapshot_s": 1.0})
        _, feeder, views = catch_up(snapshotting, "again, taking a snapshot", wait_for_snapshot=True)
        started = time.perf_counter()
        with views.lock:
            pickle.dumps((views.catalogue, views.stats), protocol=pickle.HIGHEST_PROTOCOL)
        lock_s = time.perf_counter() - started
        feeder.stop()
        size = (s.data_dir / "views" / s.app_id("profiles") / "slot-0.pickle").stat().st_size
        publish_interactions(s, args.events, args.after, args.items, args.users)
        restored, feeder, _ = catch_up(snapshotting, "restart from the snapshot")
        source = feeder.restored_from
        feeder.stop()
    print(f"history: {args.items:,} items, {args.events:,} interactions ({args.users:,} users), then {args.after:,} more")
    print(f"views current after a start from the beginning: {full:.1f} s")
    print(f"views current after a restart from the {source} + {args.after:,} newer events: {restored:.1f} s "
          f"({full / restored:.1f}x faster)")
    print(f"snapshot: {size / 2**20:.0f} MB, pickled in {lock_s:.2f} s (the ranking threads wait that long)")


if __name__ == "__main__":
    main()
