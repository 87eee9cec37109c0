"""The item path: decode -> validate -> encode in micro-batches -> upsert into the vector index."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from fusionrec.encoders import TextEncoder
from fusionrec.encoders.media import check_media
from fusionrec.schemas import EncoderError, ErrorCode, EventError, Item, decode
from fusionrec.streams.index import ItemVector, VectorIndex
from fusionrec.streams.media import MediaFetcher
from fusionrec.streams.sinks import EventSink

from .routing import dead_letter, internal_error, retry_unavailable

logger = logging.getLogger(__name__)


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
    """Turns validated items into stored vectors; knows nothing of Faust.

    Media references are fetched under the fetcher's policy and must decode; a failure refuses the
    whole item (one dead letter), so no item is stored with part of its content silently missing.
    """

    def __init__(
        self, encoder: TextEncoder, index: VectorIndex, fetcher: MediaFetcher, *,
        max_event_bytes: int, vector_dims: Mapping[str, int] | None = None, fetch_threads: int = 8,
    ) -> None:
        self.encoder = encoder
        self.index = index
        self.fetcher = fetcher
        self.max_event_bytes = max_event_bytes
        self.vector_dims = dict(vector_dims or {})
        self._pool = ThreadPoolExecutor(fetch_threads, thread_name_prefix="media")
        index.ensure_collection(encoder.dim)

    def decode(self, raw: bytes | None, key: bytes | None) -> Item:
        """Parse and validate one item event; everything that needs no I/O is checked here."""
        item = decode(Item, raw, max_bytes=self.max_event_bytes)
        if key is not None and key.decode(errors="replace") != item.id:
            raise EventError(ErrorCode.KEY_MISMATCH, f"message key {key!r} is not the item id {item.id!r}")
        check_vectors(item, self.vector_dims)
        if not item.text():
            # Image/audio/video encoders are not wired into fusion yet: text is what makes a vector.
            raise EventError(ErrorCode.NOTHING_TO_ENCODE, f"item {item.id!r} has no title, description or tags")
        return item

    def _check_media(self, item: Item) -> None:
        for kind, ref in item.media.items():
            check_media(kind, self.fetcher.fetch(kind, ref))

    def media_failures(self, items: Sequence[Item]) -> dict[str, EventError]:
        """Fetch and decode-check every item's media, in parallel threads."""
        futures = {it.id: self._pool.submit(self._check_media, it) for it in items if it.media}
        failed = {}
        for item_id, fut in futures.items():
            exc = fut.exception()
            if isinstance(exc, EventError):
                failed[item_id] = exc
            elif exc is not None:
                failed[item_id] = EventError(ErrorCode.MEDIA_FETCH_FAILED, f"{type(exc).__name__}: {exc}")
        return failed

    def _vectors(self, items: Sequence[Item]) -> list[np.ndarray | EventError]:
        """One vector per item; a batch failure is retried item by item to find the bad one."""
        try:
            matrix = self.encoder.encode([it.text() for it in items])
            return list(matrix)
        except EncoderError:
            if len(items) == 1:
                raise
        out: list[np.ndarray | EventError] = []
        for it in items:
            try:
                out.append(self.encoder.encode([it.text()])[0])
            except EncoderError as exc:
                out.append(EventError(ErrorCode.ENCODE_FAILED, str(exc)))
        return out

    def encode_and_store(self, items: Sequence[Item]) -> dict[str, EventError]:
        """Check media, encode and upsert ``items``; returns the ids that failed, with why."""
        failed = self.media_failures(items)
        items = [it for it in items if it.id not in failed]
        rows: list[ItemVector] = []
        for it, vec in zip(items, self._vectors(items), strict=True):
            if isinstance(vec, EventError):
                failed[it.id] = vec
                continue
            if not np.isfinite(vec).all():
                failed[it.id] = EventError(ErrorCode.ENCODE_FAILED, "encoder produced a non-finite vector")
                continue
            rows.append(
                ItemVector(
                    id=it.id,
                    vector=vec,
                    encoder_version=self.encoder.version,
                    category=it.category or "",
                    available=it.available,
                    updated_at_ms=int(it.updated_at.timestamp() * 1000) if it.updated_at else 0,
                    version=it.version,
                )
            )
        self.index.upsert(rows)
        return failed


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
                    await sink.send(dead_letters, event.message.key, letter)
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
                    await sink.send(dead_letters, message.key, letter)
                    yield letter
                else:
                    yield item_id

    return encode_items
