"""The profile workers' index copy, fed through the real broker: it meets the same contract as
Milvus, and an item the encoder stores is searchable on a worker within a bounded time."""

import time
import uuid

import numpy as np
import pytest

from fusionrec.streams import open_index
from fusionrec.streams.index import ItemVector, PublishingIndex, ReplicaIndex
from fusionrec.streams.kafka.config import kafka_config
from fusionrec.streams.kafka.topics import TopicSpec, create_topics
from fusionrec.testing.contracts import check_vector_index_contract

pytestmark = pytest.mark.integration

# What docs/architecture.md promises: searchable on every profile worker within this of being stored.
VISIBLE_WITHIN_S = 2.0


class Replicated:
    """Writes through the encoder's side, reads through a profile worker's copy, as the workers do."""

    def __init__(self, writer: PublishingIndex, reader: ReplicaIndex) -> None:
        self.writer, self.reader = writer, reader
        self.delays: list[float] = []

    def upsert(self, items):
        before = self.reader.applied
        self.writer.upsert(items)
        stored = time.monotonic()
        while self.reader.applied < before + len(items):
            assert time.monotonic() - stored < VISIBLE_WITHIN_S, "the copy did not receive the stored vectors in time"
            time.sleep(0.005)
        self.delays.append(time.monotonic() - stored)

    def __getattr__(self, name):
        return getattr(self.reader if name in {"get", "search", "search_many"} else self.writer, name)


@pytest.fixture
def pair(stack):
    settings = stack.settings.model_copy(update={"vectors_topic": f"vectors-{uuid.uuid4().hex[:8]}",
                                                 "collection": f"replica_{uuid.uuid4().hex[:8]}"})
    create_topics(kafka_config(settings), [TopicSpec(settings.vectors_topic, 2)])
    store = open_index(settings.require_milvus_uri(), settings.collection)
    writer = PublishingIndex(store, settings)
    reader = ReplicaIndex(open_index(settings.require_milvus_uri(), settings.collection), settings)
    yield Replicated(writer, reader), settings
    reader.close()
    writer.close()


def test_the_replica_meets_the_index_contract(pair):
    replicated, _ = pair
    check_vector_index_contract(replicated)
    assert max(replicated.delays) < VISIBLE_WITHIN_S


def test_a_restarted_replica_reads_every_vector_back_before_it_answers(pair):
    replicated, settings = pair
    replicated.writer.ensure_collection(4)
    rows = [ItemVector(f"i{n}", np.eye(4, dtype=np.float32)[n % 4], "v1") for n in range(200)]
    replicated.upsert(rows)
    again = ReplicaIndex(open_index(settings.require_milvus_uri(), settings.collection), settings)
    try:
        hits = again.search(np.array([1, 0, 0, 0], dtype=np.float32), 50)  # waits until caught up
        assert len(hits) == 50 and again.lag == 0
        assert again.local().count() == 200
    finally:
        again.close()
