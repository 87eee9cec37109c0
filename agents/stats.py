"""Catalogue-wide signals, learned one event at a time: popularity, trending and co-occurrence.

Pure objects (river style): ``learn_one`` per interaction, queries for candidates. No broker,
Milvus or model code. The worker feeds them from the whole interactions and items topics (every
worker sees every partition, so no repartition hop is needed); the offline harness feeds them from
a file. Both call this module.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial


@dataclass
class ItemInfo:
    """What ranking needs to know about an item besides its vector."""

    title: str = ""
    category: str = ""
    available: bool = True
    updated_at: float = 0.0  # epoch seconds; 0 when unknown


class Catalogue:
    """Item metadata by id, newest version wins.

    >>> cat = Catalogue()
    >>> cat.learn_one("a", ItemInfo("Old", "jazz"), version=2)
    >>> cat.learn_one("a", ItemInfo("Older", "jazz"), version=1)
    >>> cat.get("a").title
    'Old'
    """

    def __init__(self) -> None:
        self._items: dict[str, tuple[int, ItemInfo]] = {}

    def learn_one(self, item_id: str, info: ItemInfo, *, version: int = 1) -> None:
        have = self._items.get(item_id)
        if have is None or version >= have[0]:
            self._items[item_id] = (version, info)

    def get(self, item_id: str) -> ItemInfo | None:
        got = self._items.get(item_id)
        return got[1] if got else None

    def version(self, item_id: str) -> int:
        """The newest version seen of ``item_id`` (0 if none)."""
        got = self._items.get(item_id)
        return got[0] if got else 0

    def __len__(self) -> int:
        return len(self._items)


class DecayedCounter:
    """Counts that halve every ``half_life_s``, read as of the newest time seen.

    Each addition is stored scaled up by ``2^((t - base)/h)``, so adding is O(1) and reading divides
    by the scale of the newest time; ``base`` moves forward before the exponent could overflow.

    >>> c = DecayedCounter(half_life_s=10.0)
    >>> c.add("a", 1.0, now=0.0); c.add("b", 1.0, now=10.0)
    >>> round(c.get("a"), 3), round(c.get("b"), 3)
    (0.5, 1.0)
    """

    def __init__(self, half_life_s: float) -> None:
        self.half_life_s = half_life_s
        self.ref_time: float | None = None
        self._base = 0.0
        self._raw: dict[str, float] = defaultdict(float)
        self._peak = 0.0  # the largest raw value: amounts are positive, so it only moves up (or rescales)
        # k -> the best k (key, raw value), kept up to date by add: decay scales every value alike, so
        # only an addition can change the order, and reading the top is O(k) instead of a scan.
        self._tops: dict[int, list[tuple[str, float]]] = {}

    def _scale(self, t: float) -> float:
        return math.pow(2.0, (t - self._base) / self.half_life_s)

    def add(self, key: str, amount: float, *, now: float) -> None:
        if self.ref_time is None:
            self.ref_time = self._base = now
        self.ref_time = max(self.ref_time, now)
        if (self.ref_time - self._base) / self.half_life_s > 200:
            # A negative exponent only underflows (to 0.0), it never overflows.
            factor = math.pow(2.0, -(self.ref_time - self._base) / self.half_life_s)
            for k in self._raw:
                self._raw[k] *= factor
            self._peak *= factor
            self._base = self.ref_time
            self._tops.clear()
        raw = self._raw[key] = self._raw[key] + amount * self._scale(now)
        self._peak = max(self._peak, raw)
        if amount <= 0:
            self._tops.clear()  # a value went down: the kept tops no longer hold
            return
        for k, top in self._tops.items():
            _offer(top, k, key, raw)

    def get(self, key: str) -> float:
        return 0.0 if self.ref_time is None else self._raw.get(key, 0.0) / self._scale(self.ref_time)

    def peak(self) -> float:
        """The largest count (that of ``top(1)``), in O(1)."""
        return 0.0 if self.ref_time is None else self._peak / self._scale(self.ref_time)

    def top(self, k: int) -> list[tuple[str, float]]:
        if self.ref_time is None:
            return []
        scale = self._scale(self.ref_time)
        best = self._tops.get(k)
        if best is None:
            best = self._tops[k] = heapq.nsmallest(k, ((key, v) for key, v in self._raw.items() if v > 0), key=_order)
        return [(key, v / scale) for key, v in best]


def _order(kv: tuple[str, float]) -> tuple[float, str]:
    return -kv[1], kv[0]


def _offer(top: list[tuple[str, float]], k: int, key: str, raw: float) -> None:
    """Keep ``top`` the best ``k`` by :func:`_order` after ``key``'s value went up to ``raw``."""
    for n, (have, _) in enumerate(top):
        if have == key:
            top[n] = (key, raw)
            break
    else:
        if len(top) >= k and _order((key, raw)) >= _order(top[-1]):
            return
        top.append((key, raw))
    top.sort(key=_order)
    del top[k:]


class ItemStats:
    """Popularity (long half-life), trending (short half-life), per category, and item-to-item
    co-occurrence within each user's recent positive items. Idempotent by event id.

    >>> st = ItemStats(recent_per_user=5)
    >>> events = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u2", "c"), ("u3", "a")]
    >>> applied = [st.learn_one(f"e{n}", u, i, 1.0, float(n)) for n, (u, i) in enumerate(events)]
    >>> [n[0] for n in st.neighbours(["a"], k=2)], st.popular(1)[0][0]
    (['b', 'c'], 'a')
    >>> st.learn_one("e0", "u1", "a", 1.0, 9.0)  # a redelivered event counts once
    False
    """

    def __init__(
        self, *, popularity_half_life_s: float = 7 * 86_400.0, trending_half_life_s: float = 3_600.0,
        recent_per_user: int = 20, max_users: int = 200_000, max_neighbours: int = 200, max_event_ids: int = 500_000,
    ) -> None:
        self.popularity = DecayedCounter(popularity_half_life_s)
        self.trending = DecayedCounter(trending_half_life_s)
        # A partial, not a lambda: the worker pickles its statistics into snapshots.
        self.by_category: dict[str, DecayedCounter] = defaultdict(partial(DecayedCounter, trending_half_life_s))
        self.counts: dict[str, int] = defaultdict(int)
        self.first_seen: dict[str, float] = {}  # item -> time of its first counted interaction
        self.cooc: dict[str, dict[str, float]] = defaultdict(dict)
        self._recent: OrderedDict[str, list[str]] = OrderedDict()
        self._seen_events: OrderedDict[str, None] = OrderedDict()
        self.recent_per_user = recent_per_user
        self.max_users = max_users
        self.max_neighbours = max_neighbours
        self.max_event_ids = max_event_ids

    def learn_one(self, event_id: str, user: str, item: str, weight: float, now: float, category: str = "") -> bool:
        """Count one interaction; returns False for an event id already counted."""
        if event_id in self._seen_events:
            return False
        self._seen_events[event_id] = None
        if len(self._seen_events) > self.max_event_ids:
            self._seen_events.popitem(last=False)
        if weight <= 0:
            return True  # skips and dislikes say nothing about what is popular or goes together
        self.counts[item] += 1
        self.first_seen[item] = min(now, self.first_seen.get(item, now))
        self.popularity.add(item, weight, now=now)
        self.trending.add(item, weight, now=now)
        if category:
            self.by_category[category].add(item, weight, now=now)
        recent = self._recent.pop(user, [])
        for other in recent:
            if other != item:
                self._bump(item, other)
                self._bump(other, item)
        recent = [i for i in recent if i != item] + [item]
        self._recent[user] = recent[-self.recent_per_user:]
        if len(self._recent) > self.max_users:
            self._recent.popitem(last=False)
        return True

    def _bump(self, a: str, b: str) -> None:
        row = self.cooc[a]
        row[b] = row.get(b, 0.0) + 1.0
        if len(row) > 2 * self.max_neighbours:  # keep the strongest half
            keep = sorted(row.items(), key=lambda kv: -kv[1])[: self.max_neighbours]
            self.cooc[a] = dict(keep)

    def neighbours(self, items: Iterable[str], k: int) -> list[tuple[str, float, str]]:
        """Items that co-occur with ``items``: (item, score, the given item that contributed most).

        Scores are cosines of occurrence (count / sqrt(n_a n_b)) summed over the given items and
        scaled so the best is 1.
        """
        scores: dict[str, float] = defaultdict(float)
        via: dict[str, tuple[float, str]] = {}
        for a in items:
            na = self.counts.get(a, 0)
            for b, c in self.cooc.get(a, {}).items():
                sim = c / math.sqrt(max(na, 1) * max(self.counts.get(b, 0), 1))
                scores[b] += sim
                if sim > via.get(b, (0.0, ""))[0]:
                    via[b] = (sim, a)
        if not scores:
            return []
        top = max(scores.values())
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [(i, s / top, via[i][1]) for i, s in ranked]

    def popular(self, k: int, *, category: str | None = None, trending: bool = False) -> list[tuple[str, float]]:
        """The top ``k`` items by decayed count, scaled to at most 1."""
        counter = self.by_category.get(category) if category else (self.trending if trending else self.popularity)
        if counter is None:
            return []
        top = counter.top(k)
        if not top:
            return []
        best = top[0][1]
        return [(i, v / best) for i, v in top]

    def popularity_of(self, items: Iterable[str]) -> dict[str, float]:
        """Each item's popularity scaled by the most popular item's (0..1)."""
        best = self.popularity.peak()
        return {i: (self.popularity.get(i) / best if best else 0.0) for i in items}
