"""When to publish a user's list: only when it changed, at most once per ``min_interval_s``.

A burst of events from one user is coalesced: the first event emits at once, later ones inside
the interval are held, and the newest of them is emitted when the interval has passed (by the
agent's timer calling :meth:`EmissionPolicy.due`). Pure: the agent owns the clock and the topic.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class Decision(StrEnum):
    EMIT = "emit"
    UNCHANGED = "unchanged"
    HELD = "held"


@dataclass(frozen=True)
class EmissionConfig:
    min_interval_s: float = 0.0
    only_changed: bool = True
    max_users: int = 1_000_000


class EmissionPolicy(Generic[T]):
    """Per-user memory of the last list sent; held users wait with their newest trigger ``T``.

    >>> p = EmissionPolicy(EmissionConfig(min_interval_s=1.0))
    >>> p.offer("u", ("a", "b"), now=0.0, trigger="e1")
    <Decision.EMIT: 'emit'>
    >>> p.offer("u", ("a", "b"), now=0.1, trigger="e2")
    <Decision.UNCHANGED: 'unchanged'>
    >>> p.offer("u", ("b", "c"), now=0.2, trigger="e3"), p.due(now=0.5), p.due(now=1.1)
    (<Decision.HELD: 'held'>, [], [('u', 'e3')])
    """

    def __init__(self, config: EmissionConfig) -> None:
        self.config = config
        self._last: OrderedDict[str, tuple[tuple[Hashable, ...], float]] = OrderedDict()
        self._held: dict[str, T] = {}

    def offer(self, user: str, items: Sequence[Hashable], *, now: float, trigger: T) -> Decision:
        """Decide for a freshly computed list; ``EMIT`` records it as sent."""
        signature = tuple(items)
        last = self._last.get(user)
        if last is not None and self.config.only_changed and last[0] == signature:
            self._held.pop(user, None)
            return Decision.UNCHANGED
        if last is not None and now - last[1] < self.config.min_interval_s:
            self._held[user] = trigger
            return Decision.HELD
        self._held.pop(user, None)
        self._last[user] = (signature, now)
        self._last.move_to_end(user)
        if len(self._last) > self.config.max_users:
            self._last.popitem(last=False)
        return Decision.EMIT

    def due(self, *, now: float) -> list[tuple[str, T]]:
        """Held users whose interval has passed, with their newest trigger; they leave the hold."""
        ready = [(u, t) for u, t in self._held.items() if now - self._last[u][1] >= self.config.min_interval_s]
        for u, _ in ready:
            del self._held[u]
        return ready

    def forget(self, user: str) -> None:
        """Drop what was sent to ``user``, so the next list is emitted whatever it holds."""
        self._last.pop(user, None)
