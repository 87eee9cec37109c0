"""Where agents write: the ``EventSink`` port's Faust implementation and its in-memory twin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fusionrec.agents.ports import Headers
from fusionrec.schemas import Event


@dataclass
class MemorySink:
    """Collects what agents send, for tests: ``sent[topic] == [(key, value), ...]``."""

    sent: dict[str, list[tuple[bytes | None, Event | bytes]]] = field(default_factory=dict)
    headers: dict[str, list[Headers | None]] = field(default_factory=dict)

    async def send(self, topic: str, key: bytes | None, value: Event | bytes, headers: Headers | None = None) -> None:
        self.sent.setdefault(topic, []).append((key, value))
        self.headers.setdefault(topic, []).append(headers)


class FaustSink:
    """Sends through the Faust app's producer, so sends join the worker's flush on commit."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._topics: dict[str, Any] = {}

    async def send(self, topic: str, key: bytes | None, value: Event | bytes, headers: Headers | None = None) -> None:
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = self._app.topic(topic, key_serializer="raw", value_serializer="raw")
        await t.send(key=key, value=value if isinstance(value, bytes) else value.to_bytes(), headers=headers)
