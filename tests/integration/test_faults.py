"""Faults at a steady rate, through the real broker, Milvus and workers: kill -9 of each worker,
Milvus killed and restarted, a second profile worker joining and leaving the group. After each,
a ledger of what was published is checked: every interaction applied exactly once (the worker's
profile equals the same events replayed through the pure profile code), every item indexed,
nothing dead-lettered. The figures each test prints are collected in docs/faults.md."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import httpx
import pytest

from fusionrec.agents.profile import ProfileModel, ProfileState
from fusionrec.schemas import Interaction, Item, SearchResults
from fusionrec.streams import EmbeddedStack, Publisher
from fusionrec.streams.build import profile_config
from fusionrec.streams.embedded.processes import WorkerProcess, free_port
from fusionrec.streams.ops.deadletters import read_dead_letters
from fusionrec.testing.media import photo
from fusionrec.testing.stack import Driver, stack_settings

from .test_multimodal import small_jpeg

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory, media_root):
    """A stack of its own: these tests kill its workers and its Milvus, and their busy users and
    items would otherwise be the popular items in every other test's lists."""
    with EmbeddedStack(stack_settings(tmp_path_factory.mktemp("faults"), media_root)) as running:
        yield running


@pytest.fixture
def driver(stack):
    d = Driver(stack)
    yield d
    d.close()

RATE = 10.0  # interactions/s: steady, and well within what one profile worker on milvus-lite answers


class Stream:
    """Publishes interactions at a steady rate from a thread and keeps the ledger of what it sent."""

    def __init__(self, settings, users: list[str], items: list[str], *, seconds: float, rate: float = RATE) -> None:
        self.settings, self.users, self.items = settings, users, items
        self.count = int(seconds * rate)
        self.rate = rate
        self.ledger: dict[str, list[Interaction]] = defaultdict(list)
        self.sent_at: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Stream:
        self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        with Publisher(self.settings) as pub:
            for n in range(self.count):
                user = self.users[n % len(self.users)]
                event = Interaction(event_id=uuid.uuid4().hex, user_id=user, item_id=self.items[(n * 7) % len(self.items)],
                                    type=("view", "like", "purchase")[n % 3], timestamp=datetime.now(UTC))
                pub.publish_interaction(event)
                self.ledger[user].append(event)
                self.sent_at[event.event_id] = time.monotonic()
                time.sleep(max(0.0, start + (n + 1) / self.rate - time.monotonic()))

    def join(self) -> None:
        self._thread.join(timeout=300)
        assert not self._thread.is_alive()


def catalogue(driver, n: int = 40) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    items = [Item(id=f"{tag}-{i}", title=f"{('jazz trumpet', 'mountain bike', 'sourdough bread', 'chess set')[i % 4]} {i}")
             for i in range(n)]
    driver.publish_items(items)
    return [it.id for it in items]


def assert_every_event_applied_once(stack, driver, stream: Stream, timeout_s: float = 120.0) -> None:
    """Each user's profile on the worker holds exactly the ledger's events, applied once each:
    the event count matches and the profile's numbers equal the ledger replayed through the pure
    profile code (so a lost event or one applied twice both show)."""
    deadline = time.monotonic() + timeout_s
    pending = set(stream.ledger)
    while pending:
        for user in sorted(pending):
            if driver.profile(user)["n_events"] >= len(stream.ledger[user]):
                pending.discard(user)
        assert time.monotonic() < deadline, missing_report(driver, stream, pending)
        time.sleep(0.5)
    time.sleep(2.0)  # anything applied twice would arrive by now
    model = ProfileModel(profile_config(stack.settings))
    vectors = driver.index.get(stream.items)
    for user, events in stream.ledger.items():
        state = ProfileState()
        for e in events:
            state = model.learn_one(state, e.event_id, e.item_id, vectors[e.item_id].vector, e.type, e.value,
                                    e.timestamp.timestamp())
        got = driver.profile(user)
        assert got["n_events"] == len(events), user
        assert got["vectors_sha256"] == state.digest(), f"{user}: profile differs from its events applied once each"


def missing_report(driver, stream: Stream, users: set[str]) -> str:
    """Per user: events applied / sent, and per event in sending order whether a list came for it (L)."""
    driver.drain(2.0)
    return "; ".join(f"{u} {driver.profile(u)['n_events']}/{len(stream.ledger[u])} "
                     + "".join("L" if e.event_id in driver.by_trigger else "-" for e in stream.ledger[u])
                     for u in sorted(users))


def assert_no_dead_letters(settings, keys: set[bytes]) -> None:
    wrong = [(d.error_code, d.reason) for d in read_dead_letters(settings, idle_s=1.0) if d.key in keys]
    assert not wrong, wrong[:5]


def first_list_after(driver, stream: Stream, moment: float, timeout_s: float = 90.0) -> float:
    """Seconds from ``moment`` (monotonic) to the first list for an event published after it."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = driver.consumer.poll(0.2)
        if got is not None:
            eid = got.recommendation.trigger_event_id or ""
            driver.by_trigger[eid] = got.recommendation
            if stream.sent_at.get(eid, 0.0) > moment:
                return time.monotonic() - moment
        assert time.monotonic() < deadline, "no list for any event published after the fault"


def worker(stack, role: str) -> WorkerProcess:
    return next(w for w in stack.workers if w.role == role)


def restart_dead(w: WorkerProcess, timeout_s: float = 30.0) -> None:
    """What `fusionrec up` does while it waits: notice the dead worker and start it again."""
    before = w.restarts
    deadline = time.monotonic() + timeout_s
    while w.restarts == before:
        assert time.monotonic() < deadline, f"worker {w.role} was not restarted"
        w.keep_alive()
        time.sleep(0.2)
    w.wait_ready()


def test_profile_worker_killed_mid_stream_loses_and_doubles_nothing(stack, driver):
    items = catalogue(driver)
    users = [f"kill-p-{uuid.uuid4().hex[:4]}-{n}" for n in range(12)]
    stream = Stream(stack.settings, users, items, seconds=15).start()
    time.sleep(5)
    profiles = worker(stack, "profiles")
    profiles.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    restart_dead(profiles)
    recovery = first_list_after(driver, stream, killed)
    stream.join()
    assert_every_event_applied_once(stack, driver, stream)
    assert_no_dead_letters(stack.settings, {u.encode() for u in users})
    print(f"profile worker kill -9: {stream.count} events, {len(users)} users; first list for a new event "
          f"{recovery:.1f} s after the kill; 0 lost, 0 applied twice")


def test_encoder_worker_killed_mid_stream_indexes_every_item(stack, driver):
    tag = uuid.uuid4().hex[:6]
    items = [Item(id=f"{tag}-enc-{i}", title=f"hand-made leather wallet number {i}") for i in range(150)]

    def publish() -> None:
        with Publisher(stack.settings) as pub:
            start = time.monotonic()
            for n, it in enumerate(items):
                pub.publish_item(it)
                time.sleep(max(0.0, start + (n + 1) / 25.0 - time.monotonic()))

    sender = threading.Thread(target=publish, daemon=True)
    sender.start()
    time.sleep(2.5)
    encoder = worker(stack, "encoder")
    encoder.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    restart_dead(encoder, timeout_s=60)
    sender.join(timeout=60)
    ids = [it.id for it in items]
    deadline = time.monotonic() + 120
    while len(driver.index.get(ids)) < len(ids):
        assert time.monotonic() < deadline, f"{len(ids) - len(driver.index.get(ids))} items never indexed"
        time.sleep(0.5)
    print(f"encoder worker kill -9: {len(ids)} items at 25/s, all indexed {time.monotonic() - killed:.1f} s after the kill")
    assert_no_dead_letters(stack.settings, {i.encode() for i in ids})


def test_milvus_killed_and_restarted_loses_nothing_and_recovers_alone(stack, driver):
    items = catalogue(driver)
    users = [f"kill-m-{uuid.uuid4().hex[:4]}-{n}" for n in range(12)]
    stream = Stream(stack.settings, users, items, seconds=16).start()
    time.sleep(4)
    stack.milvus.process.send_signal(signal.SIGKILL)
    stack.milvus.process.wait()
    time.sleep(3)  # interactions keep coming while the store is down
    stack.milvus.start()
    restarted = time.monotonic()
    late = Item(id=f"{items[0]}-during", title="mountain bike bought while Milvus was away")
    with Publisher(stack.settings) as pub:
        pub.publish_item(late)
    recovery = first_list_after(driver, stream, restarted)
    stream.join()
    assert_every_event_applied_once(stack, driver, stream)
    driver.wait_until(lambda: driver.index.get([late.id]), what="the item published after the restart")
    assert_no_dead_letters(stack.settings, {u.encode() for u in users} | {late.id.encode()})
    print(f"Milvus kill -9 and restart after 3 s: {stream.count} events; first list for a new event "
          f"{recovery:.1f} s after the restart; 0 lost, 0 dead-lettered")


def test_a_second_profile_worker_joins_and_leaves_mid_stream(stack, driver, tmp_path):
    items = catalogue(driver)
    users = [f"join-{uuid.uuid4().hex[:4]}-{n}" for n in range(16)]
    stream = Stream(stack.settings, users, items, seconds=30).start()
    time.sleep(3)
    # Run by hand as the README says: the env file `up` writes, plus its own HTTP port and state folder.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSIONREC_")}
    env.update(FUSIONREC_WEB_PORT=str(free_port()), FUSIONREC_DATA_DIR=str(tmp_path))
    log = (tmp_path / "second.log").open("wb")
    second = subprocess.Popen([sys.executable, "-m", "fusionrec.streams.cli", "--env-file", str(stack.env_file),
                               "worker", "--role", "profiles"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while b"]: Ready" not in (tmp_path / "second.log").read_bytes():
            assert second.poll() is None and time.monotonic() < deadline, (tmp_path / "second.log").read_text()[-3000:]
            time.sleep(0.2)
        joined = time.monotonic()
        url = f"http://127.0.0.1:{env['FUSIONREC_WEB_PORT']}/recommend/{users[0]}/"
        assert httpx.get(url, timeout=30).status_code == 200  # it serves, routed to the owner
        # A search with a picture is forwarded with its body to the worker that holds each user.
        picture = small_jpeg(photo())
        for user in users:
            resp = httpx.post(f"http://127.0.0.1:{env['FUSIONREC_WEB_PORT']}/search", params={"user": user, "k": 3},
                              content=picture, timeout=30)
            assert resp.status_code == 200, resp.text
            assert SearchResults.model_validate_json(resp.content).user_id == user
        time.sleep(8)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
        left = time.monotonic()
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
        log.close()
    stream.join()
    assert_every_event_applied_once(stack, driver, stream)
    assert_no_dead_letters(stack.settings, {u.encode() for u in users})
    print(f"second profile worker: joined {joined - stream_start(stream):.1f} s into a {stream.count}-event stream, "
          f"left {left - joined:.1f} s later; 0 lost, 0 applied twice")


def stream_start(stream: Stream) -> float:
    return min(stream.sent_at.values())
