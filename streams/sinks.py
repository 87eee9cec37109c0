"""Where agents write: an ``EventSink`` with a Faust implementation and an in-memory twin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from fusionrec.schemas import Event


class EventSink(Protocol):
    async def send(self, topic: str, key: bytes | None, event: Event) -> None: ...


@dataclass
class MemorySink:
    """Collects what agents send, for tests: ``sent[topic] == [(key, event), ...]``."""

    sent: dict[str, list[tuple[bytes | None, Event]]] = field(default_factory=dict)

    async def send(self, topic: str, key: bytes | None, event: Event) -> None:
        self.sent.setdefault(topic, []).append((key, event))


class FaustSink:
    """Sends through the Faust app's producer, so sends join the worker's flush on commit."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._topics: dict[str, Any] = {}

    async def send(self, topic: str, key: bytes | None, event: Event) -> None:
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = self._app.topic(topic, key_serializer="raw", value_serializer="raw")
        await t.send(key=key, value=event.to_bytes())
