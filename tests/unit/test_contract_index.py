"""Contract every vector index meets; Milvus implementations run it in tests/integration."""

import numpy as np

from fusionrec.streams import ItemVector, MemoryVectorIndex, VectorIndex


def check_vector_index_contract(index: VectorIndex) -> None:
    index.ensure_collection(4)
    index.ensure_collection(4)  # idempotent
    rows = [
        ItemVector("a", np.array([1, 0, 0, 0], dtype=np.float32), "v1", "jazz"),
        ItemVector("b", np.array([0.8, 0.2, 0, 0], dtype=np.float32), "v1", "jazz"),
        ItemVector("c", np.array([0, 0, 1, 0], dtype=np.float32), "v1", "rock"),
        ItemVector("gone", np.array([1, 0.01, 0, 0], dtype=np.float32), "v1", "jazz", available=False),
    ]
    index.upsert(rows)
    assert index.count() == 4
    got = index.get(["a", "c", "missing"])
    assert set(got) == {"a", "c"}
    np.testing.assert_allclose(got["a"].vector, rows[0].vector)
    assert got["c"].category == "rock" and got["c"].encoder_version == "v1" and got["c"].available
    hits = index.search(np.array([1, 0.1, 0, 0], dtype=np.float32), 3)
    assert [h[0] for h in hits] == ["a", "b", "c"]  # unavailable items are never returned
    assert hits[0][1] > hits[1][1] > hits[2][1] and -1.0 <= hits[2][1] <= 1.0
    index.upsert([ItemVector("a", np.array([0, 0, 1, 0], dtype=np.float32), "v2", "rock")])  # new version
    assert index.count() == 4 and index.get(["a"])["a"].encoder_version == "v2"
    assert index.search(np.array([0, 0, 1, 0], dtype=np.float32), 1)[0][0] in {"a", "c"}
    assert index.search(np.array([1, 0, 0, 0], dtype=np.float32), 0) == []
    many = index.search_many([np.array([0, 0, 1, 0], dtype=np.float32), np.array([0.8, 0.2, 0, 0], dtype=np.float32)], 1)
    assert len(many) == 2 and many[1][0][0] == "b" and many[0][0][0] in {"a", "c"}


def test_memory_index_meets_contract():
    check_vector_index_contract(MemoryVectorIndex())


def test_empty_index_answers_empty():
    index = MemoryVectorIndex()
    assert index.get(["x"]) == {} and index.search(np.ones(4, dtype=np.float32), 5) == [] and index.count() == 0
