"""The item path: decode -> validate -> prepare media -> encode each modality in micro-batches -> fuse -> upsert."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from fusionrec.agents.ports import EventSink, ItemVector, MediaFetcher, VectorIndex
from fusionrec.agents.routing import dead_letter, internal_error, retry_unavailable, send_letter
from fusionrec.encoders import Encoder, Fusion
from fusionrec.encoders.base import batches
from fusionrec.encoders.media import MediaLimits, decode_media
from fusionrec.schemas import (
    EncoderError,
    ErrorCode,
    EventError,
    Item,
    VectorIndexError,
    VectorStoreUnavailable,
    check_not_ahead,
    decode,
)

logger = logging.getLogger(__name__)

# A micro-batch is encoded in about CHUNKS model calls per modality (none smaller than MIN_CHUNK items).
CHUNKS = 4
MIN_CHUNK = 16


def chunk_size(batch: int) -> int:
    """Items per model call for a micro-batch of ``batch`` items.

    >>> chunk_size(256), chunk_size(64), chunk_size(10)
    (64, 16, 16)
    """
    return max(MIN_CHUNK, -(-batch // CHUNKS))


def check_vectors(item: Item, dims: Mapping[str, int]) -> None:
    """Ready-made vectors must be declared (name -> dimension), of that dimension, and finite."""
    for name, values in item.vectors.items():
        if name not in dims:
            raise EventError(ErrorCode.BAD_VECTOR, f"vector {name!r} is not declared in FUSIONREC_VECTOR_DIMS")
        if len(values) != dims[name]:
            raise EventError(ErrorCode.BAD_VECTOR, f"vector {name!r} has {len(values)} values, expected {dims[name]}")
        if not all(math.isfinite(x) for x in values):
            raise EventError(ErrorCode.BAD_VECTOR, f"vector {name!r} has NaN or infinite values")


class ItemEncoder:
    """Turns validated items into stored, fused vectors; knows nothing of Faust.

    Per micro-batch: every item's media is fetched, decoded and prepared for its encoder on a
    thread pool (``prepare``); each modality's encoder then runs on all the items of a chunk that
    have it (a few chunks per batch, so decoding overlaps the models), and the fusion joins each
    item's modality vectors. A media or encoding failure
    refuses the whole item (one dead letter), so no item is stored with part of its content silently
    missing; the rest of the batch goes on.
    """

    def __init__(
        self, encoders: Mapping[str, Encoder], fusion: Fusion, index: VectorIndex, fetcher: MediaFetcher, *,
        max_event_bytes: int, limits: MediaLimits = MediaLimits(), threads: int = 8, max_future_s: float = 86_400.0,
    ) -> None:
        self.encoders = dict(encoders)
        self.fusion = fusion
        self.index = index
        self.fetcher = fetcher
        self.max_event_bytes = max_event_bytes
        self.max_future_s = max_future_s
        video = self.encoders.get("video")
        if video is not None and limits.frame_size is None:
            limits = dataclasses.replace(limits, frame_size=getattr(video, "frame_size", None))
        self.limits = limits
        self.vector_dims = {name: enc.dim for name, enc in self.encoders.items() if enc.modality == "vector"}
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="media")
        index.ensure_collection(fusion.dim, fusion=fusion.spec())

    def decode(self, raw: bytes | None, key: bytes | None) -> Item:
        """Parse and validate one item event; everything that needs no I/O is checked here."""
        item = decode(Item, raw, max_bytes=self.max_event_bytes)
        if key is not None and key.decode(errors="replace") != item.id:
            raise EventError(ErrorCode.KEY_MISMATCH, f"message key {key!r} is not the item id {item.id!r}")
        check_vectors(item, self.vector_dims)
        check_not_ahead(item.updated_at, "updated_at", max_ahead_s=self.max_future_s, now=time.time())
        has = (["text"] if item.text() else []) + [str(k) for k in item.media] + list(item.vectors)
        if not any(m in self.encoders for m in has):
            what = ", ".join(has) if has else "no title, description, tags, media or vectors"
            raise EventError(
                ErrorCode.NOTHING_TO_ENCODE,
                f"item {item.id!r} has {what}; this worker encodes {', '.join(self.encoders)} (FUSIONREC_MODALITIES)",
            )
        return item

    def _prepare(self, item: Item) -> dict[str, Any]:
        """Fetch, decode and prepare one item's inputs, keyed by modality (runs on a pool thread)."""
        out: dict[str, Any] = {}
        if "text" in self.encoders and item.text():
            out["text"] = self.encoders["text"].prepare(item.text())
        for kind, ref in item.media.items():
            source = self.fetcher.fetch(kind, ref)
            try:
                content = decode_media(kind, source, self.limits)
            finally:
                if not isinstance(source, bytes):
                    source.close()
            if kind in self.encoders:  # media of a modality this worker does not encode is still checked
                try:
                    out[kind] = self.encoders[kind].prepare(content)
                except (EncoderError, ValueError) as exc:
                    raise EventError(ErrorCode.MEDIA_UNDECODABLE, f"{kind}: {exc}") from exc
        for name, values in item.vectors.items():
            out[name] = self.encoders[name].prepare(values)
        return out

    def _submit(self, items: Sequence[Item]) -> dict[str, Future[dict[str, Any]]]:
        return {it.id: self._pool.submit(self._prepare, it) for it in items}

    @staticmethod
    def _collect(futures: Mapping[str, Future[dict[str, Any]]]) -> tuple[dict[str, dict[str, Any]], dict[str, EventError]]:
        prepared, failed = {}, {}
        for item_id, fut in futures.items():
            exc = fut.exception()
            if exc is None:
                prepared[item_id] = fut.result()
            elif isinstance(exc, EventError):
                failed[item_id] = exc
            else:
                failed[item_id] = EventError(ErrorCode.MEDIA_FETCH_FAILED, f"{type(exc).__name__}: {exc}")
        return prepared, failed

    def prepare(self, items: Sequence[Item]) -> tuple[dict[str, dict[str, Any]], dict[str, EventError]]:
        """Every item's prepared inputs, in parallel threads; and the items that failed, with why."""
        return self._collect(self._submit(items))

    def _encode_modality(self, name: str, inputs: Mapping[str, Any]) -> dict[str, np.ndarray | EventError]:
        """One batch call for all items with ``name``; a failing batch is retried item by item to find the bad one."""
        encoder = self.encoders[name]
        ids = list(inputs)
        try:
            return dict(zip(ids, encoder.encode([inputs[i] for i in ids]), strict=True))
        except EncoderError as exc:
            if len(ids) == 1:
                return {ids[0]: EventError(ErrorCode.ENCODE_FAILED, f"{name}: {exc}")}
        out: dict[str, np.ndarray | EventError] = {}
        for i in ids:
            try:
                out[i] = encoder.encode([inputs[i]])[0]
            except EncoderError as exc:
                out[i] = EventError(ErrorCode.ENCODE_FAILED, f"{name}: {exc}")
        return out

    def vectors(
        self, prepared: Mapping[str, Mapping[str, Any]]
    ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, EventError]]:
        """Each item's modality vectors (a batch per modality); and the items an encoder failed on."""
        parts: dict[str, dict[str, np.ndarray]] = {i: {} for i in prepared}
        failed: dict[str, EventError] = {}
        for name in self.encoders:
            inputs = {i: p[name] for i, p in prepared.items() if name in p}
            if not inputs:
                continue
            for item_id, vec in self._encode_modality(name, inputs).items():
                if isinstance(vec, EventError):
                    failed[item_id] = vec
                elif not np.isfinite(vec).all():
                    failed[item_id] = EventError(ErrorCode.ENCODE_FAILED, f"{name} encoder produced a non-finite vector")
                else:
                    parts[item_id][name] = vec
        return {i: p for i, p in parts.items() if i not in failed}, failed

    def encode_and_store(self, items: Sequence[Item]) -> dict[str, EventError]:
        """Prepare, encode, fuse and upsert ``items``; returns the ids that failed, with why.

        The batch is encoded in a few chunks: while the models run on one chunk, the pool threads
        go on decoding the next, so decoding hides behind the models instead of adding to them.
        """
        futures = self._submit(items)
        failed: dict[str, EventError] = {}
        rows: list[ItemVector] = []
        for chunk in batches(items, chunk_size(len(items))):
            prepared, bad = self._collect({it.id: futures[it.id] for it in chunk})
            failed.update(bad)
            parts, encode_failed = self.vectors(prepared)
            failed.update(encode_failed)
            done = [it for it in chunk if it.id in parts]
            fused = self.fusion.fuse([parts[it.id] for it in done]) if done else []
            for it, vec in zip(done, fused, strict=True):
                if not np.any(vec):
                    failed[it.id] = EventError(ErrorCode.NOTHING_TO_ENCODE,
                                               f"item {it.id!r} has no content to encode (silent audio, blank text?)")
                    continue
                rows.append(
                    ItemVector(
                        id=it.id,
                        vector=vec,
                        encoder_version=",".join(f"{m}={self.encoders[m].version}" for m in parts[it.id]),
                        fusion_version=self.fusion.version,
                        category=it.category or "",
                        available=it.available,
                        updated_at_ms=int(it.updated_at.timestamp() * 1000) if it.updated_at else 0,
                        version=it.version,
                    )
                )
        failed.update(self._store(rows))
        return failed

    def _store(self, rows: Sequence[ItemVector]) -> dict[str, EventError]:
        """Upsert ``rows`` in one call; when the store refuses the batch (it answers, so it is not
        down), each row is stored alone, so only the rows it refuses are dead-lettered."""
        try:
            self.index.upsert(rows)
            return {}
        except VectorStoreUnavailable:
            raise
        except VectorIndexError as exc:
            if len(rows) == 1:
                return {rows[0].id: EventError(ErrorCode.INDEX_REJECTED, f"the vector store refused the item: {exc}")}
            logger.warning("the vector store refused a batch of %d items (%s); storing them one by one", len(rows), exc)
        refused: dict[str, EventError] = {}
        for row in rows:
            refused.update(self._store([row]))
        return refused


def register(
    app: Any, *, topic: Any, processor: ItemEncoder, sink: EventSink, dead_letters: str,
    batch_size: int, batch_wait_s: float,
) -> Any:
    """Add the ``encode_items`` agent to a Faust ``app``.

    It yields one outcome per event: the id of the item it stored, or the :class:`DeadLetter` it wrote.
    An event superseded by a newer version of its item in the same batch yields that item's outcome.
    """

    @app.agent(topic, name="encode_items")
    async def encode_items(stream: Any) -> Any:
        loop = asyncio.get_running_loop()
        async for events in stream.take_events(batch_size, within=batch_wait_s):
            latest: dict[str, tuple[Item, Any]] = {}
            for event in events:
                try:
                    item = processor.decode(event.message.value, event.message.key)
                except EventError as exc:
                    letter = dead_letter(event.message, exc)
                    await send_letter(sink, dead_letters, letter)
                    yield letter
                    continue
                # The newest version of an item in a batch wins; older ones are superseded, not lost.
                latest[item.id] = (item, event.message)
            if not latest:
                continue
            items = [it for it, _ in latest.values()]
            try:
                # The model and Milvus block; keep them off the event loop so heartbeats go on.
                failed = await retry_unavailable(
                    lambda: loop.run_in_executor(None, processor.encode_and_store, items), what="encode_items"
                )
            except EventError as exc:
                failed = {it.id: exc for it in items}
            except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the worker
                err = internal_error(exc)
                failed = {it.id: err for it in items}
            for item_id, (_, message) in latest.items():
                if item_id in failed:
                    letter = dead_letter(message, failed[item_id])
                    await send_letter(sink, dead_letters, letter)
                    yield letter
                else:
                    yield item_id

    return encode_items
