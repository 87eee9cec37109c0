"""The item path: decode -> validate -> encode in micro-batches -> upsert into the vector index."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from fusionrec.encoders import TextEncoder
from fusionrec.schemas import EncoderError, ErrorCode, EventError, Item, decode
from fusionrec.streams.index import ItemVector, VectorIndex
from fusionrec.streams.sinks import EventSink

from .routing import dead_letter, internal_error, retry_unavailable

logger = logging.getLogger(__name__)


class ItemEncoder:
    """Turns validated items into stored vectors; knows nothing of Faust."""

    def __init__(self, encoder: TextEncoder, index: VectorIndex, *, max_event_bytes: int) -> None:
        self.encoder = encoder
        self.index = index
        self.max_event_bytes = max_event_bytes
        index.ensure_collection(encoder.dim)

    def decode(self, raw: bytes | None, key: bytes | None) -> Item:
        item = decode(Item, raw, max_bytes=self.max_event_bytes)
        if key is not None and key.decode(errors="replace") != item.id:
            raise EventError(ErrorCode.KEY_MISMATCH, f"message key {key!r} is not the item id {item.id!r}")
        if not item.text():
            raise EventError(ErrorCode.INVALID_EVENT, f"item {item.id!r} has no title, description or tags to encode")
        return item

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
        """Encode and upsert ``items``; returns the ids that failed, with why."""
        failed: dict[str, EventError] = {}
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
