"""The ports the agents need, as narrow interfaces; adapters and their in-memory twins live above.

``VectorIndex`` is implemented by ``fusionrec.streams.index`` (Milvus, milvus-lite, memory),
``EventSink`` by ``fusionrec.streams.kafka.sinks`` (Faust, memory) and ``MediaFetcher`` by
``fusionrec.encoders.media.fetch`` (policy-checked file/HTTP, memory). Every implementation of one
port passes the same contract tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import numpy as np

from fusionrec.schemas import Event, MediaKind, MediaRef, VectorIndexError

Headers = Mapping[str, bytes]


@dataclass(frozen=True)
class ItemVector:
    """One stored item: its fused vector and what produced it."""

    id: str
    vector: np.ndarray
    encoder_version: str
    fusion_version: str = ""
    category: str = ""
    available: bool = True
    updated_at_ms: int = 0
    version: int = 1


class VectorIndex(Protocol):
    """What the agents need from a vector store; every implementation passes the index contract.

    Scores are inner products: stored vectors and queries are shaped by the fusion (see
    ``fusionrec.encoders.fusion``), which the collection records as its ``fusion`` spec so that
    every reader builds its queries the same way.
    """

    def ensure_collection(self, dim: int, *, fusion: Mapping[str, Any] | None = None) -> None: ...
    def fusion_spec(self) -> dict[str, Any] | None: ...
    def upsert(self, items: Sequence[ItemVector]) -> None: ...
    def get(self, ids: Sequence[str]) -> dict[str, ItemVector]: ...
    def search(self, vector: np.ndarray, limit: int) -> list[tuple[str, float]]: ...
    def search_many(self, vectors: Sequence[np.ndarray], limit: int) -> list[list[tuple[str, float]]]: ...
    def count(self) -> int: ...
    def close(self) -> None: ...


def check_fusion(collection: str, have: Mapping[str, Any] | None, want: Mapping[str, Any] | None) -> None:
    """Refuse to mix vectors fused one way with queries fused another."""
    if have and want and have.get("version") != want.get("version"):
        raise VectorIndexError(
            f"collection {collection!r} holds vectors fused as {have.get('version')}, this worker fuses as "
            f"{want.get('version')}: build a new version with `fusionrec replay re-encode`"
        )


class EventSink(Protocol):
    """Writes one record: a typed event, or original bytes passed on unchanged (retries)."""

    async def send(self, topic: str, key: bytes | None, value: Event | bytes, headers: Headers | None = None) -> None: ...


class MediaFetcher(Protocol):
    def fetch(self, kind: MediaKind, ref: MediaRef) -> bytes | BinaryIO:
        """The media's bytes, or a seekable binary file of them, of which the decoders read only what
        they sample; the caller closes it."""
        ...
