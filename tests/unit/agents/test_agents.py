"""The agents, run by Faust's test_context(): no broker, in-memory index, sink and table."""

import asyncio
import io
import time
from datetime import UTC, datetime

import faust
import numpy as np
import pytest

from fusionrec.agents import encode_items, engine, recommend
from fusionrec.agents.encode_items import check_vectors
from fusionrec.agents.profile import ProfileModel, ProfileState
from fusionrec.encoders import EarlyFusion, HashingTextEncoder, make_blocks
from fusionrec.encoders.media.fetch import MemoryMediaFetcher
from fusionrec.schemas import DeadLetter, ErrorCode, EventError, Interaction, Item, Recommendation
from fusionrec.streams import MemorySink, MemoryVectorIndex
from fusionrec.streams.index import ItemVector
from fusionrec.testing.checks import code_of
from fusionrec.testing.media import png

RECS, DLQ, RETRY = "recs", "dlq", "retry"


def make_app() -> faust.App:
    # Never started: test_context() feeds the agent directly.
    return faust.App("unit-test", broker="kafka://127.0.0.1:9", web_enabled=False)


def interaction(eid: str, user: str, item: str, kind: str = "like") -> bytes:
    return Interaction(event_id=eid, user_id=user, item_id=item, type=kind, timestamp=datetime.now(UTC)).to_bytes()


def catalogue() -> MemoryVectorIndex:
    index = MemoryVectorIndex()
    index.ensure_collection(4)
    vectors = {"jazz-1": [1, 0, 0, 0], "jazz-2": [0.9, 0.1, 0, 0], "jazz-3": [0.8, 0.2, 0, 0],
               "rock-1": [0, 0, 1, 0], "rock-2": [0, 0, 0.9, 0.1]}
    index.upsert([ItemVector(k, np.asarray(v, dtype=np.float32), "test@4") for k, v in vectors.items()])
    return index


def make_recommend(index: MemoryVectorIndex, timeout_s: float = 600.0, batch_size: int = 1):
    app = make_app()
    table: dict[bytes, bytes] = {}
    sink = MemorySink()
    agent, retry_agent = recommend.register(
        app, topic=app.channel(), retry_topic=app.topic(RETRY), table=table,
        processor=engine.Recommender(index, ProfileModel(), views=engine.Views(), top_k=2, max_candidates=50,
                                        max_event_bytes=10_000),
        sink=sink, recommendations=RECS, dead_letters=DLQ,
        retry=recommend.RetryPolicy(first_delay_s=0.01, timeout_s=timeout_s),
        batch_size=batch_size, batch_wait_s=0.05,
    )
    return agent, retry_agent, table, sink


@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_recommend_agent_routes_good_bad_duplicate_and_late_events(batch_size):
    agent, _, table, sink = make_recommend(catalogue(), batch_size=batch_size)

    async def run() -> list:
        async with agent.test_context() as ctx:
            await ctx.put(value=interaction("e1", "u1", "jazz-1"), key=b"u1")
            await ctx.put(value=b"{broken", key=b"u1")
            await ctx.put(value=interaction("e1", "u1", "jazz-1"), key=b"u1")  # redelivered
            await ctx.put(value=interaction("e2", "u1", "no-such-item"), key=b"u1")
            await ctx.put(value=interaction("e3", "u2", "rock-1"), key=b"someone-else")
            await ctx.put(value=interaction("e4", "u1", "jazz-2"), key=b"u1")
            return list(ctx.results.values())

    results = asyncio.run(run())
    recs = [r for r in results if isinstance(r, Recommendation)]
    assert [type(r).__name__ for r in results] == [
        "Recommendation", "DeadLetter", "Duplicate", "Deferred", "DeadLetter", "Recommendation",
    ]
    assert [r.trigger_event_id for r in recs] == ["e1", "e4"]
    assert [i.item_id for i in recs[0].items] == ["jazz-2", "jazz-3"]
    second = [i.item_id for i in recs[1].items]
    assert second[0] == "jazz-3" and not {"jazz-1", "jazz-2"} & set(second)  # seen items dropped
    assert [(k, e.trigger_event_id) for k, e in sink.sent[RECS]] == [(b"u1", "e1"), (b"u1", "e4")]
    codes = [e.error_code for _, e in sink.sent[DLQ]]
    assert codes == [ErrorCode.MALFORMED_JSON, ErrorCode.KEY_MISMATCH]
    # The late event went to the retry topic as its original bytes, with its retry headers.
    [(key, raw)] = sink.sent[RETRY]
    assert key == b"u1" and Interaction.model_validate_json(raw).item_id == "no-such-item"
    [headers] = sink.headers[RETRY]
    assert headers[recommend.ATTEMPT] == b"1" and headers[recommend.ORIGIN].endswith(b"|3")
    assert all(isinstance(e, DeadLetter) and e.original for _, e in sink.sent[DLQ])
    state = ProfileState.from_bytes(table[b"u1"])
    assert state.n_events == 2 and state.seen == ("jazz-1", "jazz-2")


def retried(eid: str, item: str, *, attempt: int, first_seen: float) -> dict:
    return {
        "value": interaction(eid, "u1", item), "key": b"u1",
        "headers": {recommend.ATTEMPT: str(attempt).encode(), recommend.FIRST_SEEN: repr(first_seen).encode(),
                    recommend.ORIGIN: b"interactions|1|42"},
    }


def test_retry_agent_applies_an_event_once_its_item_exists():
    index = catalogue()
    _, retry_agent, table, sink = make_recommend(index)
    index.upsert([ItemVector("late", np.asarray([1, 0, 0, 0], dtype=np.float32), "test@4")])

    async def run() -> list:
        async with retry_agent.test_context() as ctx:
            await ctx.put(**retried("e9", "late", attempt=2, first_seen=time.time() - 5))
            return list(ctx.results.values())

    [rec] = asyncio.run(run())
    assert isinstance(rec, Recommendation) and rec.trigger_event_id == "e9"
    assert ProfileState.from_bytes(table[b"u1"]).seen == ("late",)


def test_retry_agent_defers_again_then_dead_letters_after_the_timeout():
    _, retry_agent, _, sink = make_recommend(catalogue(), timeout_s=30.0)

    async def run() -> list:
        async with retry_agent.test_context() as ctx:
            await ctx.put(**retried("e1", "never", attempt=1, first_seen=time.time() - 1))
            await ctx.put(**retried("e2", "never", attempt=4, first_seen=time.time() - 31))
            return list(ctx.results.values())

    deferred, letter = asyncio.run(run())
    assert deferred == recommend.Deferred("e1", 2)
    assert sink.headers[RETRY][0][recommend.ATTEMPT] == b"2"
    assert isinstance(letter, DeadLetter) and letter.error_code is ErrorCode.UNKNOWN_ITEM
    assert (letter.source_topic, letter.partition, letter.offset) == ("interactions", 1, 42)
    assert "gave up after 4 retries" in letter.reason


def test_encode_items_agent_stores_vectors_and_dead_letters_bad_items():
    app = make_app()
    index = MemoryVectorIndex()
    sink = MemorySink()
    encoders = {"text": HashingTextEncoder(64)}
    processor = encode_items.ItemEncoder(encoders, EarlyFusion(make_blocks(encoders)), index, MemoryMediaFetcher(),
                                         max_event_bytes=10_000)
    agent = encode_items.register(app, topic=app.channel(), processor=processor, sink=sink, dead_letters=DLQ,
                                  batch_size=8, batch_wait_s=0.05)

    async def run() -> list:
        async with agent.test_context() as ctx:
            await ctx.put(value=Item(id="a", title="jazz trumpet").to_bytes(), key=b"a")
            await ctx.put(value=Item(id="b", title="no key check").to_bytes(), key=None)
            await ctx.put(value=Item(id="c").to_bytes(), key=b"c")  # nothing to encode
            await ctx.put(value=b"[1,2]", key=b"d")
            await ctx.put(value=Item(id="a", title="jazz piano", available=False).to_bytes(), key=b"a")
            return list(ctx.results.values())

    assert asyncio.run(run())[:2] == ["a", "b"]
    assert index.count() == 2
    stored = index.get(["a", "b"])
    assert stored["a"].available is False  # the newer version of "a" won
    assert stored["a"].encoder_version == "text=hashing-bow-64@1" and stored["a"].vector.dtype == np.float32
    assert stored["a"].fusion_version == "early-v1(text=1)"
    assert sorted(e.error_code for _, e in sink.sent[DLQ]) == [ErrorCode.INVALID_EVENT, ErrorCode.NOTHING_TO_ENCODE]


def test_the_encoder_worker_closes_media_fetched_as_files():
    # a fetcher may hand over a file it reads in parts (a video in place, or by HTTP ranges)
    opened: list[io.BytesIO] = []

    class FileFetcher:
        def fetch(self, kind, ref):
            opened.append(io.BytesIO(ref.data))
            return opened[-1]

    encoders = {"text": HashingTextEncoder(64)}
    processor = encode_items.ItemEncoder(encoders, EarlyFusion(make_blocks(encoders)), MemoryVectorIndex(), FileFetcher(),
                                         max_event_bytes=100_000)
    good = Item(id="good", title="jazz", media={"image": {"data": png()}})
    bad = Item(id="bad", title="jazz", media={"image": {"data": b"not a picture"}})
    prepared, failed = processor.prepare([good, bad])
    assert list(prepared) == ["good"] and failed["bad"].code is ErrorCode.MEDIA_UNDECODABLE
    assert len(opened) == 2 and all(f.closed for f in opened)


def test_events_dated_far_ahead_are_dead_lettered_and_huge_vectors_kept():
    agent, _, table, sink = make_recommend(catalogue())
    future = Interaction(event_id="e-future", user_id="u1", item_id="jazz-1", type="like",
                         timestamp=datetime(9999, 1, 1, tzinfo=UTC)).to_bytes()

    async def run() -> list:
        async with agent.test_context() as ctx:
            await ctx.put(value=future, key=b"u1")
            return list(ctx.results.values())

    [letter] = asyncio.run(run())
    assert letter.error_code is ErrorCode.INVALID_EVENT and "ahead of this worker's clock" in letter.reason
    assert b"u1" not in table

    encoders = {"text": HashingTextEncoder(64), "clip": encode_items_vector("clip", 4)}
    processor = encode_items.ItemEncoder(encoders, EarlyFusion(make_blocks(encoders)), MemoryVectorIndex(),
                                         MemoryMediaFetcher(), max_event_bytes=10_000)
    big = Item(id="big", vectors={"clip": [1e38, 1e38, 0.0, 0.0]})
    later = Item(id="later", title="jazz", updated_at=datetime(9999, 1, 1, tzinfo=UTC))
    assert processor.encode_and_store([processor.decode(big.to_bytes(), b"big")]) == {}
    stored = processor.index.get(["big"])["big"].vector  # the text block (zeros) comes first
    np.testing.assert_allclose(stored[-4:], [0.7071, 0.7071, 0, 0], atol=1e-4)
    with pytest.raises(EventError, match="updated_at 9999"):
        processor.decode(later.to_bytes(), b"later")


def encode_items_vector(name: str, dim: int):
    from fusionrec.encoders.vectors import VectorPassThrough

    return VectorPassThrough(name, dim)


@pytest.mark.parametrize(
    ("vectors", "ok"),
    [({"clip": [0.1] * 4}, True), ({"clip": [0.1] * 3}, False), ({"other": [0.1] * 4}, False),
     ({"clip": [0.1, float("nan"), 0, 0]}, False), ({"clip": [float("inf"), 0, 0, 0]}, False)],
)
def test_ready_made_vectors_are_declared_sized_and_finite(vectors, ok):
    item = Item(id="a", title="t", vectors=vectors)
    if ok:
        check_vectors(item, {"clip": 4})
    else:
        assert code_of(lambda: check_vectors(item, {"clip": 4})) is ErrorCode.BAD_VECTOR
