"""The rebalance work-arounds on a real (never started) Faust consumer: no commit past an event
that was skipped, and re-read events handed on instead of dropped."""

from faust.types import TP

from fusionrec.streams import MemorySink, Settings
from fusionrec.streams.worker.app import create_app

OURS, OTHERS = TP("fusionrec.interactions", 0), TP("fusionrec-profiles-profiles-changelog", 0)


def consumer(tmp_path):
    settings = Settings(bootstrap_servers="127.0.0.1:9", milvus_uri="memory://", data_dir=tmp_path,
                        table_store="memory://")
    return create_app(settings, "profiles", sink=MemorySink()).consumer


def test_no_commit_past_an_event_that_was_skipped(tmp_path):
    c = consumer(tmp_path)
    c._committed_offset[OURS] = 10  # the next event to process is offset 10
    c._acked[OURS] = [11, 12]  # 10 was skipped by a rebalance, 11 and 12 processed
    assert c._new_offset(OURS) is None
    c._acked[OURS] = [10, 11, 12]  # 10 re-read and processed after the seek
    assert c._new_offset(OURS) == 13


def test_re_read_events_are_handed_on(tmp_path):
    c = consumer(tmp_path)
    c._read_offset[OURS] = 42
    c._read_offset[OTHERS] = 42
    assert c._read_offset[OURS] is None  # offset 40, re-read after a seek, is not dropped
    assert c._read_offset[OTHERS] == 42  # changelogs keep Faust's own rule


class _Consumer:
    def __init__(self, committed: dict, earliest: dict) -> None:
        self._committed_offset = committed
        self.earliest = earliest
        self.seeks: list[tuple[TP, int]] = []

    async def earliest_offsets(self, *tps):
        return {tp: self.earliest[tp] for tp in tps}

    async def seek(self, tp, offset):
        self.seeks.append((tp, offset))


class _App:
    def __init__(self, consumer: _Consumer) -> None:
        self.consumer = consumer
        self.consumer_generation_id = 1


def _events(*offsets: int) -> list:
    from types import SimpleNamespace

    return [SimpleNamespace(message=SimpleNamespace(topic=OURS.topic, tp=OURS, offset=o)) for o in offsets]


def test_in_order_starts_a_never_committed_partition_at_its_beginning():
    import asyncio

    from fusionrec.streams.worker.faust_fixes import InOrder

    c = _Consumer(committed={}, earliest={OURS: 0})
    order = InOrder(_App(c))
    # The first event handed on for a new group is offset 2: 0 and 1 must not be skipped for good.
    first = asyncio.run(order.batch(_events(2, 3)))
    again = asyncio.run(order.batch(_events(0, 1, 2, 3)))
    assert first == [] and set(c.seeks) == {(OURS, 0)}
    assert [e.message.offset for e in again] == [0, 1, 2, 3]
