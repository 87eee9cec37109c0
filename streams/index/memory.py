"""The in-memory vector index: exact inner-product search over a growing matrix.

It is the unit tests' twin of Milvus and, fed from the item-vectors topic, the profile workers'
in-process copy of the index (``replica.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fusionrec.agents.ports import ItemVector, check_fusion
from fusionrec.schemas import VectorIndexError

# Candidates kept past ``limit`` before the exact re-scoring: a batched matrix product may differ
# from a single query's in the last bits, and ties at the cut must not depend on the batch.
MARGIN = 16


class MemoryVectorIndex:
    """Exact inner-product search; same behaviour as Milvus for the agents.

    Rows are stored in a matrix that grows by doubling, so an upsert costs one row write however
    large the index. A batch of queries is scored with one matrix product; each query's best
    ``limit + MARGIN`` rows are then scored again one by one, so a query's hits and scores are the
    same alone or in any batch. Ties go to the item stored first.
    """

    def __init__(self) -> None:
        self._items: dict[str, ItemVector] = {}
        self._rows: dict[str, int] = {}
        self._ids: list[str] = []
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._live = np.zeros(0, dtype=bool)
        self._dim: int | None = None
        self._fusion: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def ensure_collection(self, dim: int, *, fusion: Mapping[str, Any] | None = None) -> None:
        if self._dim not in (None, dim):
            raise VectorIndexError(f"collection has dim {self._dim}, asked for {dim}")
        check_fusion("memory", self._fusion, fusion)
        self._dim = dim
        self._fusion = self._fusion or (dict(fusion) if fusion else None)

    def fusion_spec(self) -> dict[str, Any] | None:
        return self._fusion

    def upsert(self, items: Sequence[ItemVector]) -> None:
        with self._lock:
            for it in items:
                if self._dim is None or it.vector.shape != (self._dim,):
                    raise VectorIndexError(f"vector of {it.id!r} does not match dim {self._dim}")
            for it in items:
                row = self._rows.get(it.id)
                if row is None:
                    row = self._rows[it.id] = len(self._ids)
                    self._ids.append(it.id)
                    if row >= len(self._matrix):
                        self._grow(max(1024, 2 * len(self._matrix)))
                self._matrix[row] = it.vector
                self._live[row] = it.available
                self._items[it.id] = it

    def _grow(self, rows: int) -> None:
        matrix = np.zeros((rows, self._dim or 0), dtype=np.float32)
        if len(self._matrix):
            matrix[: len(self._matrix)] = self._matrix
        live = np.zeros(rows, dtype=bool)
        live[: len(self._live)] = self._live
        self._matrix, self._live = matrix, live

    def get(self, ids: Sequence[str]) -> dict[str, ItemVector]:
        with self._lock:
            return {i: self._items[i] for i in ids if i in self._items}

    def search(self, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        return self.search_many([vector], limit)[0]

    def search_many(self, vectors: Sequence[np.ndarray], limit: int) -> list[list[tuple[str, float]]]:
        if not vectors:
            return []
        queries = np.stack([np.asarray(v, dtype=np.float32) for v in vectors])
        with self._lock:
            n = len(self._ids)
            if n == 0 or limit <= 0:
                return [[] for _ in vectors]
            matrix, live = self._matrix[:n], self._live[:n]
            scores = queries @ matrix.T
            scores[:, ~live] = -np.inf
            keep = min(limit + MARGIN, n)
            best = np.argpartition(-scores, keep - 1, axis=1)[:, :keep] if keep < n else np.tile(np.arange(n), (len(queries), 1))
            out = []
            for q, rows in zip(queries, best, strict=True):
                rows = rows[live[rows]]
                exact = (matrix[rows] * q).sum(axis=1)
                order = np.lexsort((rows, -exact))[:limit]
                out.append([(self._ids[rows[i]], float(exact[i])) for i in order])
            return out

    def count(self) -> int:
        return len(self._items)

    def close(self) -> None:
        pass
