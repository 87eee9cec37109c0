"""The in-memory twin of the vector index: brute-force inner products over a dict."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fusionrec.agents.ports import ItemVector, check_fusion
from fusionrec.schemas import VectorIndexError


class MemoryVectorIndex:
    """Brute-force inner-product search over a dict; same behaviour as Milvus for the agents."""

    def __init__(self) -> None:
        self._items: dict[str, ItemVector] = {}
        self._dim: int | None = None
        self._fusion: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._matrix: tuple[list[str], np.ndarray] | None = None  # live ids and their rows, until the next upsert

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
                self._items[it.id] = it
            self._matrix = None

    def get(self, ids: Sequence[str]) -> dict[str, ItemVector]:
        with self._lock:
            return {i: self._items[i] for i in ids if i in self._items}

    def search(self, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        return self.search_many([vector], limit)[0]

    def search_many(self, vectors: Sequence[np.ndarray], limit: int) -> list[list[tuple[str, float]]]:
        with self._lock:
            if self._matrix is None:
                live = [it for it in self._items.values() if it.available]
                self._matrix = ([it.id for it in live], np.stack([it.vector for it in live]) if live else np.zeros(0))
            ids, matrix = self._matrix
        if not ids or limit <= 0:
            return [[] for _ in vectors]
        out = []
        for vector in vectors:
            scores = matrix @ np.asarray(vector, dtype=np.float32)
            order = np.argsort(-scores, kind="stable")[:limit]
            out.append([(ids[i], float(scores[i])) for i in order])
        return out

    def count(self) -> int:
        return len(self._items)

    def close(self) -> None:
        pass
