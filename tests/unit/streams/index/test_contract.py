"""The vector-index contract on the in-memory twin; the Milvus implementations run it in tests/integration."""

import numpy as np

from fusionrec.streams import MemoryVectorIndex
from fusionrec.testing.contracts import check_vector_index_contract


def test_memory_index_meets_contract():
    check_vector_index_contract(MemoryVectorIndex())


def test_empty_index_answers_empty():
    index = MemoryVectorIndex()
    assert index.get(["x"]) == {} and index.search(np.ones(4, dtype=np.float32), 5) == [] and index.count() == 0
