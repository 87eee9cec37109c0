"""Adapters of the ``VectorIndex`` port: Milvus (milvus.py), the in-memory index (memory.py) and the
profile workers' in-process copy of Milvus, fed by the item-vectors topic (replica.py).

``open_index(uri)`` picks one by URL, as faust picks stores: ``memory://`` for tests,
a path ending in ``.db`` for milvus-lite in-process, ``http://host:port`` for a served
milvus-lite, the embedded Milvus server or a real Milvus.
"""

from __future__ import annotations

from fusionrec.agents.ports import ItemVector, VectorIndex
from fusionrec.schemas import ConfigError
from fusionrec.streams.index.memory import MemoryVectorIndex
from fusionrec.streams.index.milvus import PROBE_TIMEOUT_S, MilvusVectorIndex, ids_filter, milvus_client, string_literal
from fusionrec.streams.index.replica import PublishingIndex, ReplicaIndex

__all__ = ["PROBE_TIMEOUT_S", "ItemVector", "MemoryVectorIndex", "MilvusVectorIndex", "PublishingIndex",
           "ReplicaIndex", "VectorIndex", "ids_filter",
           "milvus_client", "open_index", "string_literal"]


def open_index(uri: str, collection: str, *, token: str = "") -> VectorIndex:
    """The index a URL names: ``memory://``, ``<path>.db`` (milvus-lite) or ``http(s)://host:port``."""
    if uri.startswith("memory://"):
        return MemoryVectorIndex()
    if uri.startswith(("http://", "https://", "tcp://")) or uri.endswith(".db"):
        return MilvusVectorIndex(uri, collection, token=token)
    raise ConfigError(f"unsupported vector index URI {uri!r}: use memory://, a .db path or http://host:port")
