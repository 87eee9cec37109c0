"""User profiles as pure state transitions: ``learn_one(state, ...) -> state``.

No broker, Milvus or model code here. The streaming agent stores :meth:`ProfileState.to_bytes`
in a Faust table; the offline harness keeps the same states in a dict. Both call this module.

The profile vector is a time-decayed, event-weighted mean of the vectors of the items a user
touched. Sums are kept decayed to ``ref_time`` so one event costs O(dim):

    S <- 2^(-dt/h) * S + w * x        W <- 2^(-dt/h) * W + |w|        vector = S / W

Out-of-order rule: an event older than ``ref_time`` is not rejected; its contribution is decayed
by its own age instead (``w * 2^(-(ref_time - t)/h)``) and ``ref_time`` stays. So the result
is the same whatever order the events arrive in, up to float rounding.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from fusionrec.schemas import InteractionType

DEFAULT_EVENT_WEIGHTS: Mapping[InteractionType, float] = MappingProxyType(
    {
        InteractionType.VIEW: 1.0,
        InteractionType.CLICK: 1.0,
        InteractionType.PLAY: 1.0,
        InteractionType.LIKE: 2.0,
        InteractionType.ADD_TO_CART: 2.5,
        InteractionType.PURCHASE: 3.0,
        InteractionType.RATING: 1.0,
        InteractionType.SKIP: -0.5,
        InteractionType.DISLIKE: -2.0,
    }
)


@dataclass(frozen=True)
class ProfileConfig:
    """How events move a profile.

    ``rating_midpoint``: a ``rating`` event weighs ``weights[rating] * (value - midpoint)``, so
    ratings under the midpoint push the profile away. Events with a ``value`` of another type
    (a play or watch ratio in [0, 1]) scale their weight by it.
    """

    half_life_s: float = 14 * 86_400.0
    weights: Mapping[InteractionType, float] = field(default_factory=lambda: DEFAULT_EVENT_WEIGHTS)
    rating_midpoint: float = 3.0
    max_seen: int = 2_000
    max_event_ids: int = 2_000

    def event_weight(self, kind: InteractionType, value: float | None) -> float:
        """
        >>> cfg = ProfileConfig()
        >>> cfg.event_weight(InteractionType.LIKE, None), cfg.event_weight(InteractionType.RATING, 1.0)
        (2.0, -2.0)
        >>> cfg.event_weight(InteractionType.PLAY, 0.5)
        0.5
        """
        base = self.weights.get(kind, 0.0)
        if kind is InteractionType.RATING:
            return base * ((value if value is not None else self.rating_midpoint) - self.rating_midpoint)
        if value is not None:
            return base * min(max(value, 0.0), 1.0)
        return base


@dataclass(frozen=True)
class ProfileState:
    """Everything the worker keeps per user. Immutable: updates return a new state."""

    sum_vector: np.ndarray | None = None
    weight: float = 0.0
    ref_time: float = 0.0
    seen: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    n_events: int = 0
    last_item: str | None = field(default=None)

    def vector(self) -> np.ndarray | None:
        """The unit-length profile direction, or ``None`` while the user has no signal."""
        if self.sum_vector is None or self.weight <= 0:
            return None
        mean = self.sum_vector / self.weight
        norm = float(np.linalg.norm(mean))
        return (mean / norm).astype(np.float32) if norm > 1e-9 else None

    def has_applied(self, event_id: str) -> bool:
        return event_id in self.event_ids

    def to_bytes(self) -> bytes:
        doc = {
            "v": 1,
            "sum": None
            if self.sum_vector is None
            else base64.b64encode(self.sum_vector.astype("<f4").tobytes()).decode(),
            "weight": self.weight,
            "ref_time": self.ref_time,
            "seen": list(self.seen),
            "event_ids": list(self.event_ids),
            "n_events": self.n_events,
            "last_item": self.last_item,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> ProfileState:
        if not raw:
            return cls()
        doc = json.loads(raw)
        vec = None if doc["sum"] is None else np.frombuffer(base64.b64decode(doc["sum"]), dtype="<f4").copy()
        return cls(
            sum_vector=vec,
            weight=doc["weight"],
            ref_time=doc["ref_time"],
            seen=tuple(doc["seen"]),
            event_ids=tuple(doc["event_ids"]),
            n_events=doc["n_events"],
            last_item=doc.get("last_item"),
        )


def _push_bounded(items: tuple[str, ...], new: str, cap: int) -> tuple[str, ...]:
    """Append ``new`` (moving it to the end if present), keeping the newest ``cap`` entries."""
    kept = tuple(i for i in items if i != new) + (new,)
    return kept[-cap:]


class ProfileModel:
    """Applies interactions to :class:`ProfileState` objects (river-style ``learn_one``).

    >>> model = ProfileModel(ProfileConfig(half_life_s=10.0))
    >>> s = model.learn_one(ProfileState(), "e1", "a", np.array([1.0, 0.0]), InteractionType.LIKE, None, 0.0)
    >>> s = model.learn_one(s, "e2", "b", np.array([0.0, 1.0]), InteractionType.LIKE, None, 10.0)
    >>> [round(float(x), 3) for x in s.vector()]   # the older like counts half
    [0.447, 0.894]
    >>> model.learn_one(s, "e2", "b", np.array([0.0, 1.0]), InteractionType.LIKE, None, 10.0) is s
    True
    """

    def __init__(self, config: ProfileConfig | None = None) -> None:
        self.config = config or ProfileConfig()

    def _decay(self, dt: float) -> float:
        return math.pow(2.0, -dt / self.config.half_life_s) if dt > 0 else 1.0

    def learn_one(
        self,
        state: ProfileState,
        event_id: str,
        item_id: str,
        item_vector: np.ndarray,
        kind: InteractionType,
        value: float | None,
        timestamp: float,
    ) -> ProfileState:
        """Apply one event; an already-applied ``event_id`` returns ``state`` itself, unchanged."""
        if state.has_applied(event_id):
            return state
        cfg = self.config
        w = cfg.event_weight(kind, value)
        x = np.asarray(item_vector, dtype=np.float64)
        if state.sum_vector is None or state.n_events == 0:
            s, total, ref = np.zeros_like(x), 0.0, timestamp
        else:
            s, total, ref = state.sum_vector.astype(np.float64), state.weight, state.ref_time
        if timestamp >= ref:
            d = self._decay(timestamp - ref)
            s, total, ref = s * d + w * x, total * d + abs(w), timestamp
        else:
            d = self._decay(ref - timestamp)
            s, total = s + d * w * x, total + d * abs(w)
        return replace(
            state,
            sum_vector=s.astype(np.float32),
            weight=total,
            ref_time=ref,
            seen=_push_bounded(state.seen, item_id, cfg.max_seen),
            event_ids=_push_bounded(state.event_ids, event_id, cfg.max_event_ids),
            n_events=state.n_events + 1,
            last_item=item_id,
        )
