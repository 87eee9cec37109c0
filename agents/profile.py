"""User profiles as pure state transitions: ``learn_one(state, ...) -> state``.

No broker, Milvus or model code here. The streaming agent stores :meth:`ProfileState.to_bytes`
in a Faust table; the offline harness keeps the same states in a dict. Both call this module.

A profile has three views of a user's taste:

- **long-term**: a time-decayed, event-weighted mean of the vectors of the items a user touched;
- **short-term**: an exponential moving average over the last few events (by count, not time), so
  the list follows a change of taste within a few events;
- **interests**: up to ``max_interests`` centroids of positively-weighted items, clustered online
  (PinnerSage-style), so one average does not blur distinct tastes into a taste nobody has.

Long-term sums are kept decayed to ``ref_time`` so one event costs O(dim):

    S <- 2^(-dt/h) * S + w * x        W <- 2^(-dt/h) * W + |w|        vector = S / W

Out-of-order rule: an event older than ``ref_time`` is not rejected; its contribution is decayed
by its own age instead (``w * 2^(-(ref_time - t)/h)``) and ``ref_time`` stays. So the long-term
vector is the same whatever order the events arrive in, up to float rounding. The short-term view
follows arrival order on purpose: it is "what the user did last".
"""

from __future__ import annotations

import base64
import hashlib
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
    short_term_alpha: float = 0.35
    max_interests: int = 3
    interest_threshold: float = 0.5
    max_seen: int = 2_000
    max_event_ids: int = 2_000
    max_recent: int = 20
    # How far one search moves the short-term view, as an event of this weight would.
    search_weight: float = 1.0

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
    short_vector: np.ndarray | None = None
    interests: tuple[np.ndarray, ...] = ()  # un-normalised centroid sums
    interest_weights: tuple[float, ...] = ()
    seen: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    recent: tuple[str, ...] = ()  # latest positively-weighted items, newest last
    n_events: int = 0
    last_query: str = ""  # the words of a search that came after the last item event

    def vector(self) -> np.ndarray | None:
        """The unit-length long-term direction, or ``None`` while the user has no signal."""
        if self.sum_vector is None or self.weight <= 0:
            return None
        return _unit(self.sum_vector / self.weight)

    def short_term(self) -> np.ndarray | None:
        return None if self.short_vector is None else _unit(self.short_vector)

    def interest_vectors(self) -> list[tuple[np.ndarray, float]]:
        """Unit centroids with their share of the user's positive weight, largest first."""
        total = sum(self.interest_weights) or 1.0
        out = [(_unit(c), w / total) for c, w in zip(self.interests, self.interest_weights, strict=True)]
        return sorted(((v, w) for v, w in out if v is not None), key=lambda vw: -vw[1])

    def queries(self, max_queries: int = 4, redundant: float = 0.9) -> list[tuple[str, np.ndarray, float]]:
        """The vectors to retrieve with, each with its name and weight (short-term weighs most).

        An interest pointing where an earlier query already points (cosine above ``redundant``)
        is skipped: it would only repeat a search.
        """
        out: list[tuple[str, np.ndarray, float]] = []
        short = self.short_term()
        if short is not None:
            out.append(("short", short, 1.0))
        for i, (v, w) in enumerate(self.interest_vectors()):
            if len(out) >= max_queries:
                break
            if all(float(v @ q[1]) < redundant for q in out):
                out.append((f"interest{i}", v, 0.5 + 0.5 * w))
        long = self.vector()
        if long is not None and not out:
            out.append(("long", long, 1.0))
        return out

    def has_applied(self, event_id: str) -> bool:
        return event_id in self.event_ids

    def digest(self) -> str:
        """SHA-256 of the profile's numbers only (no event ids): equal for two users who did the same
        things, and for a worker's profile and the same events replayed through this module."""
        numbers = b"".join(np.asarray(v, dtype="<f4").tobytes()
                           for v in (self.sum_vector, self.short_vector, *self.interests) if v is not None)
        return hashlib.sha256(numbers + repr((self.weight, self.interest_weights)).encode()).hexdigest()

    def to_bytes(self) -> bytes:
        doc = {
            "v": 2,
            "sum": _b64(self.sum_vector),
            "weight": self.weight,
            "ref_time": self.ref_time,
            "short": _b64(self.short_vector),
            "interests": [_b64(c) for c in self.interests],
            "interest_weights": list(self.interest_weights),
            "seen": list(self.seen),
            "event_ids": list(self.event_ids),
            "recent": list(self.recent),
            "n_events": self.n_events,
        }
        if self.last_query:
            doc["query"] = self.last_query
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> ProfileState:
        if not raw:
            return cls()
        doc = json.loads(raw)
        return cls(
            sum_vector=_unb64(doc["sum"]),
            weight=doc["weight"],
            ref_time=doc["ref_time"],
            short_vector=_unb64(doc.get("short")),
            interests=tuple(v for v in map(_unb64, doc.get("interests", [])) if v is not None),
            interest_weights=tuple(doc.get("interest_weights", [])),
            seen=tuple(doc["seen"]),
            event_ids=tuple(doc["event_ids"]),
            recent=tuple(doc.get("recent", [])),
            n_events=doc["n_events"],
            last_query=doc.get("query", ""),
        )


def _unit(v: np.ndarray) -> np.ndarray | None:
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > 1e-9 else None


def _b64(v: np.ndarray | None) -> str | None:
    return None if v is None else base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


def _unb64(s: str | None) -> np.ndarray | None:
    return None if s is None else np.frombuffer(base64.b64decode(s), dtype="<f4").copy()


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
        unit = _unit(x)
        short = state.short_vector
        if unit is not None:
            step = cfg.short_term_alpha * w * unit
            short = step if short is None else (1 - cfg.short_term_alpha) * short + step
        interests, interest_weights = state.interests, state.interest_weights
        if w > 0 and unit is not None:
            interests, interest_weights = self._cluster(interests, interest_weights, unit, w)
        return replace(
            state,
            sum_vector=s.astype(np.float32),
            weight=total,
            ref_time=ref,
            short_vector=None if short is None else short.astype(np.float32),
            interests=interests,
            interest_weights=interest_weights,
            seen=_push_bounded(state.seen, item_id, cfg.max_seen),
            event_ids=_push_bounded(state.event_ids, event_id, cfg.max_event_ids),
            recent=_push_bounded(state.recent, item_id, cfg.max_recent) if w > 0 else state.recent,
            n_events=state.n_events + 1,
            last_query="",
        )

    def learn_query(self, state: ProfileState, event_id: str, query_vector: np.ndarray, query: str) -> ProfileState:
        """Fold a search into the short-term view only: the next lists lean toward what the user just
        searched for, while the long-term view, interests and seen items stay what the user chose.

        >>> model = ProfileModel(ProfileConfig(short_term_alpha=0.5))
        >>> s = model.learn_one(ProfileState(), "e1", "a", np.array([1.0, 0.0]), InteractionType.LIKE, None, 0.0)
        >>> s = model.learn_query(s, "q1", np.array([0.0, 1.0]), "b things")
        >>> [round(float(x), 3) for x in s.short_term()], s.vector().tolist(), s.last_query, s.seen
        ([0.707, 0.707], [1.0, 0.0], 'b things', ('a',))
        """
        if state.has_applied(event_id):
            return state
        cfg = self.config
        unit = _unit(np.asarray(query_vector, dtype=np.float64))
        short = state.short_vector
        if unit is not None:
            step = cfg.short_term_alpha * cfg.search_weight * unit
            short = step if short is None else (1 - cfg.short_term_alpha) * short + step
        return replace(
            state,
            short_vector=None if short is None else short.astype(np.float32),
            event_ids=_push_bounded(state.event_ids, event_id, cfg.max_event_ids),
            n_events=state.n_events + 1,
            last_query=query,
        )

    def _cluster(
        self, centroids: tuple[np.ndarray, ...], weights: tuple[float, ...], x: np.ndarray, w: float
    ) -> tuple[tuple[np.ndarray, ...], tuple[float, ...]]:
        """Online clustering: join the nearest interest if close enough (or if no room is left),
        else open a new one."""
        cs, ws = list(centroids), list(weights)
        sims = [float(x @ u) for u in (_unit(c) for c in cs) if u is not None] if cs else []
        best = int(np.argmax(sims)) if sims else -1
        if best >= 0 and (sims[best] >= self.config.interest_threshold or len(cs) >= self.config.max_interests):
            cs[best] = (cs[best] + w * x).astype(np.float32)
            ws[best] += w
        else:
            cs.append((w * x).astype(np.float32))
            ws.append(w)
        return tuple(cs), tuple(ws)
