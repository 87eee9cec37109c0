"""The vector index on Milvus: milvus-lite, the embedded Milvus server or a real Milvus, through pymilvus."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fusionrec.agents.ports import ItemVector, check_fusion
from fusionrec.schemas import VectorIndexError, VectorStoreUnavailable

logger = logging.getLogger(__name__)


# pymilvus pings every 10 s even on an idle connection; gRPC servers with default settings
# (milvus-lite among them) answer a few such pings with GOAWAY "too_many_pings", and a client
# made on that connection then fails to connect. Ping only during calls, and rarely.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 120_000, "grpc.keepalive_permit_without_calls": 0}
CONNECT_ATTEMPTS = 3
# Every call has a deadline: without one pymilvus retries a stalled server for minutes, and a
# worker (or `fusionrec status`) hangs with it instead of saying the store is unavailable.
CALL_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 5.0
# Answers that say "not now" rather than "not this": connection failures (2), rate limits (8, 9),
# a collection released by a restart and not loaded yet (101), and Milvus' "service unavailable".
UNAVAILABLE_CODES = frozenset({2, 8, 9, 101, 503})
NOT_LOADED = 101
# The id field holds up to 256 characters (schemas.Id); Milvus counts VARCHAR lengths in bytes.
ID_MAX_BYTES = 4 * 256


def string_literal(value: str) -> str:
    """``value`` as a Milvus expression string literal, quotes and backslashes escaped.

    Ids are user data: an id like ``it's-1`` spliced between quotes (as ``MilvusClient.get`` does)
    ends the literal early and every request naming it fails.

    >>> print(string_literal("it's \\"1\\""))
    "it's \\"1\\""
    """
    return json.dumps(value, ensure_ascii=False)


def ids_filter(field: str, ids: Sequence[str]) -> str:
    """``field in [...]`` for ``ids``, every one escaped.

    >>> print(ids_filter("id", ["a", "it's"]))
    id in ["a", "it's"]
    """
    return f"{field} in [{', '.join(string_literal(i) for i in ids)}]"


def _quiet_pymilvus() -> None:
    # pymilvus logs every failed call, and each failed reconnection, with a traceback; every such
    # failure reaches MilvusVectorIndex as an exception, which says once, in the worker's words,
    # whether the store is down or refused the request.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)


def milvus_client(uri: str, token: str = "", *, timeout_s: float = CALL_TIMEOUT_S, attempts: int = CONNECT_ATTEMPTS) -> Any:
    """A ``MilvusClient`` with calm keepalives; a refused first connect is tried ``attempts`` times."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    _quiet_pymilvus()
    for attempt in range(1, attempts + 1):
        try:
            return MilvusClient(uri=uri, token=token, grpc_options=GRPC_OPTIONS, timeout=timeout_s)
        except MilvusException as exc:
            if attempt == attempts:
                raise VectorStoreUnavailable(f"cannot connect to Milvus at {uri}: {exc}") from exc
            logger.warning("connecting to Milvus at %s failed (%s); retrying", uri, exc)
            time.sleep(attempt)
    raise AssertionError("unreachable")


class MilvusVectorIndex:
    """pymilvus ``MilvusClient`` over milvus-lite, the embedded server or a real Milvus."""

    def __init__(self, uri: str, collection: str, *, token: str = "", connect_timeout_s: float = CALL_TIMEOUT_S,
                 connect_attempts: int = CONNECT_ATTEMPTS) -> None:
        from pymilvus.exceptions import MilvusException

        self._error = MilvusException
        self.collection = collection
        self._client = milvus_client(uri, token, timeout_s=connect_timeout_s, attempts=connect_attempts)
        self._loaded = False

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one client call; a collection released by a Milvus restart is loaded again and the
        call retried once. Failures come out as :class:`VectorStoreUnavailable` when the store
        is not answering and as :class:`VectorIndexError` when it answered "no" to this request."""
        kwargs.setdefault("timeout", CALL_TIMEOUT_S)
        try:
            return fn(*args, **kwargs)
        except self._error as exc:
            if getattr(exc, "code", None) != NOT_LOADED:
                raise self._failure(what, exc) from exc
            logger.warning("Milvus released %r (restarted?); loading it again", self.collection)
        try:
            self._client.load_collection(self.collection, timeout=CALL_TIMEOUT_S)
            return fn(*args, **kwargs)
        except self._error as exc:
            raise self._failure(what, exc) from exc

    def _failure(self, what: str, exc: Exception) -> VectorIndexError:
        code = getattr(exc, "code", None)
        # gRPC status codes (UNAVAILABLE, DEADLINE_EXCEEDED...) arrive as enums, Milvus' as ints.
        down = not isinstance(code, int) or code in UNAVAILABLE_CODES or not self.reachable()
        cls = VectorStoreUnavailable if down else VectorIndexError
        return cls(f"Milvus {what} on {self.collection!r} failed: {exc}")

    def reachable(self) -> bool:
        """Whether the store answers a cheap call now: tells "it is down" from "it refused this"."""
        try:
            self._client.list_collections(timeout=PROBE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - any failure of the probe means "not answering"
            return False
        return True

    def _ready(self) -> bool:
        """Whether the collection exists and is loaded (milvus-lite needs a load after every reopen)."""
        if self._loaded:
            return True
        if not self._call("has_collection", self._client.has_collection, self.collection):
            return False
        self._call("load", self._client.load_collection, self.collection)
        self._loaded = True
        return True

    def exists(self) -> bool:
        return bool(self._call("has_collection", self._client.has_collection, self.collection))

    def ensure_collection(self, dim: int, *, fusion: Mapping[str, Any] | None = None) -> None:
        """Make ``collection`` usable. On first use it is created as the alias of a versioned
        collection (``<name>__v1``), so a re-encode can build ``__v2`` beside it and swap."""
        if self.exists():
            description = self._call("describe", self._client.describe_collection, self.collection)
            fields = {f["name"]: f for f in description["fields"]}
            if "fusion_version" not in fields:
                raise VectorIndexError(
                    f"collection {self.collection!r} predates fused vectors: build a new version with "
                    "`fusionrec replay re-encode`"
                )
            have = fields["vector"]["params"]["dim"]
            if int(have) != dim:
                raise VectorIndexError(f"collection {self.collection!r} has dim {have}, the encoders give {dim}")
            check_fusion(self.collection, self.fusion_spec(), fusion)
            self._ready()
            return
        physical = f"{self.collection}__v1"
        self._create(physical, dim, fusion)
        self._call("create_alias", self._client.create_alias, physical, self.collection)
        self._ready()

    def fusion_spec(self) -> dict[str, Any] | None:
        """How the serving collection's vectors were fused (a collection property), or None."""
        if not self.exists():
            return None
        props = self._call("describe", self._client.describe_collection, self.collection).get("properties") or {}
        return json.loads(props["fusionrec.fusion"]) if "fusionrec.fusion" in props else None

    def _create(self, name: str, dim: int, fusion: Mapping[str, Any] | None) -> None:
        from pymilvus import DataType

        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_BYTES)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("encoder_version", DataType.VARCHAR, max_length=2048)
        schema.add_field("fusion_version", DataType.VARCHAR, max_length=256)
        schema.add_field("category", DataType.VARCHAR, max_length=256)
        schema.add_field("available", DataType.BOOL)
        schema.add_field("updated_at_ms", DataType.INT64)
        schema.add_field("version", DataType.INT64)
        index = self._client.prepare_index_params()
        # Nested params: milvus-lite ignores the flat form (docs/local-broker.md).
        index.add_index(
            field_name="vector", index_type="HNSW", metric_type="IP",
            params={"params": {"M": 16, "efConstruction": 200}},
        )
        self._call(
            "create_collection", self._client.create_collection,
            name, schema=schema, index_params=index, consistency_level="Session",
        )
        if fusion:
            # Properties, not the description: milvus-lite drops collection descriptions.
            self._call("set fusion", self._client.alter_collection_properties, name,
                       properties={"fusionrec.fusion": json.dumps(dict(fusion))})
        logger.info("created Milvus collection %s (dim %d, fusion %s)", name, dim, (fusion or {}).get("version"))

    def serving(self, *, timeout_s: float = CALL_TIMEOUT_S) -> str:
        """The versioned collection the alias points at now."""
        return str(self._call("describe_alias", self._client.describe_alias, self.collection,
                              timeout=timeout_s)["collection_name"])

    def versions(self, *, timeout_s: float = CALL_TIMEOUT_S) -> list[str]:
        """All versioned collections of this alias, oldest first."""
        prefix = f"{self.collection}__v"
        names = [n for n in self._call("list", self._client.list_collections, timeout=timeout_s)
                 if n.startswith(prefix)]
        return sorted(names, key=lambda n: int(n.removeprefix(prefix)))

    def describe_versions(self, *, timeout_s: float = CALL_TIMEOUT_S) -> tuple[str, list[tuple[str, int, list[str]]]]:
        """The serving version, and each version's name, item count and encoder versions (of up to
        1,000 items); for ``fusionrec status``. Loads each version, as a query needs."""
        names = self.versions(timeout_s=timeout_s)
        if not names:
            return "", []
        serving = self.serving(timeout_s=timeout_s)
        out = []
        for name in names:
            self._call("load", self._client.load_collection, name, timeout=timeout_s)
            count = self._call("count", self._client.query, name, filter="", output_fields=["count(*)"], timeout=timeout_s)
            sample = self._call("sample", self._client.query, name, filter="", output_fields=["encoder_version"],
                                limit=1000, timeout=timeout_s)
            out.append((name, int(count[0]["count(*)"]), sorted({r["encoder_version"] for r in sample})))
        return serving, out

    def new_version(self, dim: int, *, fusion: Mapping[str, Any] | None = None) -> MilvusVectorIndex:
        """Create the next versioned collection (not serving yet) and return an index writing to it."""
        versions = self.versions()
        n = int(versions[-1].rsplit("__v", 1)[1]) + 1 if versions else 1
        name = f"{self.collection}__v{n}"
        self._create(name, dim, fusion)
        fresh = MilvusVectorIndex.__new__(MilvusVectorIndex)
        fresh._error, fresh.collection, fresh._client, fresh._loaded = self._error, name, self._client, False
        fresh._ready()
        return fresh

    def drop_version(self, physical: str) -> None:
        """Drop a versioned collection that is not serving (an abandoned or retired version)."""
        if physical == self.serving():
            raise VectorIndexError(f"{physical} is serving {self.collection}; promote another version first")
        self._call("drop_collection", self._client.drop_collection, physical)

    def promote(self, physical: str) -> None:
        """Point the alias at ``physical``, atomically for every reader."""
        self._call("alter_alias", self._client.alter_alias, physical, self.collection)
        logger.info("alias %s now serves %s", self.collection, physical)

    def upsert(self, items: Sequence[ItemVector]) -> None:
        if not items:
            return
        rows = [
            {
                "id": it.id,
                "vector": it.vector.astype(np.float32).tolist(),
                "encoder_version": it.encoder_version,
                "fusion_version": it.fusion_version,
                "category": it.category,
                "available": it.available,
                "updated_at_ms": it.updated_at_ms,
                "version": it.version,
            }
            for it in items
        ]
        self._call("upsert", self._client.upsert, self.collection, rows)

    def get(self, ids: Sequence[str]) -> dict[str, ItemVector]:
        if not ids or not self._ready():
            return {}
        # Not MilvusClient.get: it splices ids between quotes unescaped.
        rows = self._call("get", self._client.query, self.collection, filter=ids_filter("id", ids), output_fields=["*"])
        return {
            r["id"]: ItemVector(
                id=r["id"],
                vector=np.asarray(r["vector"], dtype=np.float32),
                encoder_version=r["encoder_version"],
                fusion_version=r.get("fusion_version", ""),
                category=r["category"],
                available=r["available"],
                updated_at_ms=r["updated_at_ms"],
                version=r["version"],
            )
            for r in rows
        }

    def search(self, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        return self.search_many([vector], limit)[0]

    def search_many(self, vectors: Sequence[np.ndarray], limit: int) -> list[list[tuple[str, float]]]:
        """One request for several query vectors (a profile's short-term and interest vectors)."""
        if limit <= 0 or not vectors or not self._ready():
            return [[] for _ in vectors]
        hits = self._call(
            "search", self._client.search, self.collection,
            data=[np.asarray(v, dtype=np.float32).tolist() for v in vectors], limit=limit,
            filter="available == true", output_fields=["id"],
            search_params={"metric_type": "IP", "params": {"ef": max(64, limit)}},
        )
        return [[(h["id"], float(h["distance"])) for h in per_query] for per_query in hits]

    def count(self) -> int:
        if not self._ready():
            return 0
        rows = self._call("count", self._client.query, self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def close(self) -> None:
        self._client.close()
