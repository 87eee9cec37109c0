"""Turning candidates from several sources into one list: blend, filter, diversify, explain.

Pure functions over plain data; the agent gathers the candidates (Milvus, co-occurrence,
popularity) and the offline harness calls the same code.
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping
from dataclasses import dataclass, field

import numpy as np

from fusionrec.agents.stats import Catalogue, ItemInfo


def overfetch(k: int, n_excluded: int, cap: int) -> int:
    """How many candidates to ask the index for so ``k`` remain after dropping excluded ones.

    Seen items are filtered here, outside Milvus, because an ``id not in [...]`` filter with
    thousands of ids is slow there; asking for ``k + n_excluded`` guarantees enough survive.

    >>> overfetch(10, 3, 500), overfetch(10, 5_000, 500)
    (13, 500)
    """
    return max(k, min(k + n_excluded, cap))


@dataclass(frozen=True)
class RankWeights:
    """How much each signal counts; ``diversity`` is MMR's 1 - lambda (0 = pure relevance)."""

    content: float = 1.0
    cooccurrence: float = 0.6
    popularity: float = 0.25
    freshness: float = 0.1
    diversity: float = 0.2
    freshness_half_life_s: float = 7 * 86_400.0
    # A popular item first chosen recently is popular on the way up (a new release catching on):
    # its popularity counts up to 1 + newness times, the boost halving every half-life of its age.
    newness: float = 0.0
    newness_half_life_s: float = 14 * 86_400.0
    # The share of each list kept for new items (fewer than ``new_item_interactions`` interactions)
    # that match the user's content: collaborative signals cannot rank what nobody has chosen yet.
    new_item_share: float = 0.0
    new_item_interactions: int = 5

    def new_item_slots(self, k: int) -> int:
        """Places kept for new items in a list of ``k``: at least one when the share is not 0.

        >>> RankWeights(new_item_share=0.1).new_item_slots(10), RankWeights(new_item_share=0.1).new_item_slots(20)
        (1, 2)
        """
        return math.ceil(k * self.new_item_share - 1e-9)


@dataclass(frozen=True)
class Filters:
    """Business rules for one list; from settings, or from an on-demand request."""

    include_categories: frozenset[str] = frozenset()
    exclude_categories: frozenset[str] = frozenset()

    def allows(self, info: ItemInfo | None) -> bool:
        if info is None:
            return not self.include_categories
        if not info.available:
            return False
        if self.include_categories and info.category not in self.include_categories:
            return False
        return info.category not in self.exclude_categories


@dataclass(slots=True)
class Candidate:
    item_id: str
    content: float = 0.0
    cooccurrence: float = 0.0
    popularity: float = 0.0
    first_seen: float = 0.0  # epoch seconds of the item's first interaction; 0 when unknown
    reasons: dict[str, str] = field(default_factory=dict)  # signal -> reason text

    def add(self, signal: str, score: float, reason: str) -> None:
        if score > getattr(self, signal):
            setattr(self, signal, score)
            self.reasons[signal] = reason


@dataclass(frozen=True)
class Ranked:
    item_id: str
    score: float
    reason: str


def freshness(updated_at: float, now: float, half_life_s: float) -> float:
    """1 for an item updated now, halving every ``half_life_s``; 0 when the time is unknown.

    >>> freshness(100.0, 100.0, 10.0), freshness(90.0, 100.0, 10.0), freshness(0.0, 100.0, 10.0)
    (1.0, 0.5, 0.0)
    """
    if updated_at <= 0:
        return 0.0
    return math.pow(2.0, -max(now - updated_at, 0.0) / half_life_s)


def blend(c: Candidate, info: ItemInfo | None, weights: RankWeights, now: float) -> tuple[float, str]:
    """``c``'s weighted score and the reason of its largest weighted signal.

    >>> blend(Candidate("a", content=0.5, popularity=1.0, reasons={"content": "like X", "popularity": "hot"}),
    ...       None, RankWeights(content=1.0, popularity=0.25), now=0.0)
    (0.75, 'like X')

    With ``newness``, popularity counts more the younger the item (its age: ``now - first_seen``;
    no boost when the first interaction is unknown, 0):

    >>> w = RankWeights(content=0.0, popularity=1.0, freshness=0.0, newness=1.0, newness_half_life_s=10.0)
    >>> [blend(Candidate("a", popularity=0.5, first_seen=t), None, w, now=30.0)[0] for t in (30.0, 20.0, 0.0)]
    [1.0, 0.75, 0.5]
    """
    boost = 1.0 + weights.newness * freshness(c.first_seen, now, weights.newness_half_life_s)
    parts = {
        "content": weights.content * c.content,
        "cooccurrence": weights.cooccurrence * c.cooccurrence,
        "popularity": weights.popularity * c.popularity * boost,
    }
    fresh = weights.freshness * freshness(info.updated_at if info else 0.0, now, weights.freshness_half_life_s)
    main = max(parts, key=lambda p: parts[p])
    return sum(parts.values()) + fresh, c.reasons.get(main, "")


def score(c: Candidate, info: ItemInfo | None, weights: RankWeights, now: float) -> float:
    """:func:`blend`'s score alone, to the last bit, without the reason (the shortlist scores every
    candidate; only the few it keeps need a reason). A weight of 0 skips its signal's arithmetic.

    >>> c = Candidate("a", content=0.5, popularity=1.0, first_seen=5.0)
    >>> w = RankWeights(content=1.0, popularity=0.25, newness=0.5, newness_half_life_s=10.0)
    >>> score(c, ItemInfo(updated_at=3.0), w, now=9.0) == blend(c, ItemInfo(updated_at=3.0), w, now=9.0)[0]
    True
    """
    popularity = weights.popularity * c.popularity
    if weights.newness:
        popularity *= 1.0 + weights.newness * freshness(c.first_seen, now, weights.newness_half_life_s)
    total = weights.content * c.content + weights.cooccurrence * c.cooccurrence + popularity
    if weights.freshness and info is not None:
        total += weights.freshness * freshness(info.updated_at, now, weights.freshness_half_life_s)
    return total


def shortlist(candidates: Mapping[str, Candidate], n: int, *, weights: RankWeights, catalogue: Catalogue,
              exclude: Container[str], filters: Filters, now: float) -> list[str]:
    """The ``n`` allowed candidates with the best weighted scores: what :func:`rank` then orders.

    Cut by the weighted blend, not by raw signals: with popularity weighted 0, a popular item
    must not take the place of a content match.

    >>> cands = {"pop": Candidate("pop", popularity=1.0), "match": Candidate("match", content=0.3)}
    >>> shortlist(cands, 1, weights=RankWeights(popularity=0.0), catalogue=Catalogue(), exclude=set(),
    ...           filters=Filters(), now=0.0)
    ['match']
    """
    scored = [(i, score(c, info, weights, now)) for i, c in candidates.items()
              if i not in exclude and filters.allows(info := catalogue.get(i))]
    return [i for i, _ in sorted(scored, key=lambda t: (-t[1], t[0]))[:n]]


def rank(
    candidates: Mapping[str, Candidate],
    *,
    k: int,
    weights: RankWeights,
    catalogue: Catalogue,
    exclude: Container[str],
    filters: Filters,
    now: float,
    vectors: Mapping[str, np.ndarray] | None = None,
    interactions: Mapping[str, int] | None = None,
) -> list[Ranked]:
    """Blend the signals, drop excluded/unavailable/filtered items, then pick ``k`` by MMR.

    With ``weights.new_item_share`` and each candidate's count of ``interactions``, the list then
    keeps that share of its places for new items with a content match: the best of them replace the
    lowest-placed established items (see :func:`keep_new_items`).

    MMR (maximal marginal relevance) takes, at each step, the candidate with the best
    ``(1 - diversity) * score - diversity * max cosine to what is already picked``, so a list
    is not ten near-copies of one item. Candidates without a vector count as dissimilar.

    >>> cands = {i: Candidate(i, content=s) for i, s in [("a", 0.9), ("b", 0.89), ("c", 0.5)]}
    >>> vecs = {"a": np.array([1.0, 0.0]), "b": np.array([1.0, 0.0]), "c": np.array([0.0, 1.0])}
    >>> [r.item_id for r in rank(cands, k=2, weights=RankWeights(diversity=0.0), catalogue=Catalogue(),
    ...                          exclude=set(), filters=Filters(), now=0.0, vectors=vecs)]
    ['a', 'b']
    >>> [r.item_id for r in rank(cands, k=2, weights=RankWeights(diversity=0.5), catalogue=Catalogue(),
    ...                          exclude=set(), filters=Filters(), now=0.0, vectors=vecs)]
    ['a', 'c']
    """
    pool: list[tuple[str, float, str]] = []
    for item_id, c in candidates.items():
        info = catalogue.get(item_id)
        if item_id in exclude or not filters.allows(info):
            continue
        pool.append((item_id, *blend(c, info, weights, now)))
    pool.sort(key=lambda t: (-t[1], t[0]))
    if weights.new_item_share and interactions is not None:
        new = [t for t in pool if interactions.get(t[0], 0) < weights.new_item_interactions
               and candidates[t[0]].content > 0]
        return keep_new_items(_pick(pool, k, weights, vectors), new, k, weights.new_item_slots(k))
    return _pick(pool, k, weights, vectors)


def keep_new_items(picked: list[Ranked], new: list[tuple[str, float, str]], k: int, slots: int) -> list[Ranked]:
    """``picked`` with at least ``slots`` of ``new`` (best first) among its ``k`` places: missing
    ones take the places of the lowest-placed items that are not new.

    >>> picked = [Ranked(i, s, "") for i, s in [("a", 0.9), ("b", 0.8), ("n1", 0.7), ("c", 0.6)]]
    >>> new = [("n1", 0.7, ""), ("n2", 0.3, "similar to x"), ("n3", 0.2, "")]
    >>> [r.item_id for r in keep_new_items(picked, new, k=4, slots=2)]
    ['a', 'b', 'n1', 'n2']
    >>> [r.item_id for r in keep_new_items(picked, new, k=4, slots=0)]
    ['a', 'b', 'n1', 'c']
    """
    keep = list(picked[:k])
    new_ids = {t[0] for t in new}
    have = {r.item_id for r in keep}
    wanted = max(0, slots - len(have & new_ids))
    for item_id, score, reason in [t for t in new if t[0] not in have][:wanted]:
        if len(keep) >= k:
            drop = max((n for n, r in enumerate(keep) if r.item_id not in new_ids), default=None)
            if drop is None:
                break
            del keep[drop]
        keep.append(Ranked(item_id, round(score, 6), f"new: {reason}" if reason else "new"))
    return keep


def _pick(pool: list[tuple[str, float, str]], k: int, weights: RankWeights,
          vectors: Mapping[str, np.ndarray] | None) -> list[Ranked]:
    """The first ``k`` of the sorted ``pool``, by MMR when there is a diversity weight and vectors."""
    if not weights.diversity or not vectors:
        return [Ranked(i, round(s, 6), r) for i, s, r in pool[:k]]
    # Cosines among the whole pool at once; ``closest[c]`` is c's highest cosine to anything picked.
    has = np.array([t[0] in vectors for t in pool])
    zero = np.zeros(len(next(iter(vectors.values()))))
    units = np.array([vectors.get(t[0], zero) for t in pool], dtype=np.float64).reshape(len(pool), len(zero))
    norms = np.linalg.norm(units, axis=1, keepdims=True)
    units = np.divide(units, norms, out=np.zeros_like(units), where=norms > 0)
    sims = units @ units.T
    scores = np.array([t[1] for t in pool])
    closest = np.full(len(pool), -np.inf)
    free = np.ones(len(pool), dtype=bool)
    lam = 1.0 - weights.diversity
    picked: list[tuple[str, float, str]] = []
    while free.any() and len(picked) < k:
        # Candidates without a vector, or before any picked item has one, count as dissimilar (0).
        penalty = np.where(has & np.isfinite(closest), closest, 0.0)
        mmr = np.where(free, lam * scores - weights.diversity * penalty, -np.inf)
        best = int(np.argmax(mmr))  # the first of equals: the pool is sorted by score, then id
        free[best] = False
        picked.append(pool[best])
        if has[best]:
            closest = np.maximum(closest, sims[:, best])
    return [Ranked(i, round(s, 6), r) for i, s, r in picked]
