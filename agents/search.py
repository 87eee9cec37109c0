"""Personalised multimodal search: find items by words, by a picture or by example, ranked for a user.

A query is made of parts (words, a picture, an item's own vector for "more like this"), each turned
into a vector of the fused item space and weighted into one; the index gives the nearest items. With a
user, relevance is then blended with what the recommender ranks by: closeness to the user's profile,
co-occurrence with the user's recent items and popularity, ``personalization`` times
(``personalization=0`` is plain search). Pure apart from the index and encoders the
:class:`~fusionrec.agents.engine.Recommender` it is given holds; the HTTP page and the offline
evaluation call the same :meth:`Searcher.search_many`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fusionrec.agents.engine import PROFILE_VERSION, Recommender
from fusionrec.agents.profile import ProfileState
from fusionrec.agents.ranking import Filters
from fusionrec.schemas import (
    MAX_QUERY_CHARS,
    EncoderError,
    QueryError,
    RecommendedItem,
    SearchResults,
)

SEARCH_VERSION = "search-v1"


@dataclass(frozen=True)
class SearchWeights:
    """How much each personal signal counts next to query relevance (a cosine).

    ``personalization`` scales all three; 0 ranks by relevance alone. ``pool`` nearest items are
    re-ranked: personalisation reorders what matches the query, it does not bring in what does not.
    """

    personalization: float = 1.0
    profile: float = 1.0
    cooccurrence: float = 0.5
    popularity: float = 0.5
    pool: int = 200


@dataclass(frozen=True)
class Query:
    """What to search for: any of words, a decoded picture and an item id, each with a weight."""

    text: str | None = None
    image: Any = None
    like: str | None = None
    text_weight: float = 1.0
    image_weight: float = 1.0
    like_weight: float = 1.0

    def check(self) -> None:
        """Refuse a query with nothing to search for, or words past :data:`MAX_QUERY_CHARS`."""
        if self.text is not None and len(self.text) > MAX_QUERY_CHARS:
            raise QueryError(f"the query has {len(self.text)} characters; at most {MAX_QUERY_CHARS} are searched")
        parts = [(self.text and self.text.strip(), self.text_weight), (self.image is not None, self.image_weight),
                 (self.like, self.like_weight)]
        if not any(p for p, _ in parts):
            raise QueryError("nothing to search for: give words (q), a picture (image) or an item (like)")
        if any(not np.isfinite(w) or w < 0 for _, w in parts) or not any(w > 0 for p, w in parts if p):
            raise QueryError("part weights must be finite, at least 0, and not all 0")

    def describe(self, title: str | None) -> str:
        said = []
        if self.text and self.text.strip() and self.text_weight > 0:
            said.append(f"matches \u2018{self.text.strip()}\u2019")
        if self.image is not None and self.image_weight > 0:
            said.append("looks like your picture")
        if self.like and self.like_weight > 0:
            said.append(f"like {title or self.like}")
        return " and ".join(said)


@dataclass(frozen=True)
class SearchRequest:
    query: Query
    user_id: str | None = None
    state: ProfileState | None = None
    k: int = 10
    filters: Filters | None = None
    personalization: float | None = None  # None: the weights' default
    exclude_seen: bool = False


class Searcher:
    """Answers :class:`SearchRequest` s with the recommender's index, views and profiles."""

    def __init__(self, recommender: Recommender, weights: SearchWeights | None = None) -> None:
        self.recommender = recommender
        self.weights = weights or SearchWeights()

    def search(self, request: SearchRequest, *, now: float | None = None) -> SearchResults:
        return self.search_many([request], now=now)[0]

    def query_vectors(self, queries: Sequence[Query]) -> np.ndarray:
        """One row of the fused item space per query: its parts' unit vectors, weighted and summed
        (words and pictures each in one model call for all the queries)."""
        for q in queries:
            q.check()
        r = self.recommender
        texts = [q.text.strip() for q in queries if q.text and q.text.strip() and q.text_weight > 0]
        images = [q.image for q in queries if q.image is not None and q.image_weight > 0]
        likes = [q.like for q in queries if q.like and q.like_weight > 0]
        try:
            text_rows = iter(r.encode_queries("text", texts) if texts else [])
            image_rows = iter(r.encode_queries("image", images) if images else [])
        except EncoderError as exc:
            raise QueryError(f"the query encoder failed: {exc}", status=503) from exc
        known = r.vectors(list(dict.fromkeys(likes))) if likes else {}
        rows = []
        for q in queries:
            total: np.ndarray | float = 0.0
            parts = [(q.text and q.text.strip() and q.text_weight > 0, text_rows, q.text_weight),
                     (q.image is not None and q.image_weight > 0, image_rows, q.image_weight)]
            for wanted, source, weight in parts:
                if wanted:
                    total = total + weight * _unit(next(source))
            if q.like and q.like_weight > 0:
                if q.like not in known:
                    raise QueryError(f"item {q.like!r} is not in the index", status=404)
                total = total + q.like_weight * _unit(known[q.like].vector)
            vector = np.asarray(total, dtype=np.float32)
            if vector.ndim == 0 or not np.any(vector):
                raise QueryError("the query matches no part of the catalogue's vectors", status=422)
            rows.append(_unit(vector))
        return np.stack(rows)

    def search_many(self, requests: Sequence[SearchRequest], *, now: float | None = None) -> list[SearchResults]:
        """Results per request (blocking: model and index calls), one index search for all of them."""
        if not requests:
            return []
        now = time.time() if now is None else now
        r, w = self.recommender, self.weights
        vectors = self.query_vectors([x.query for x in requests])
        # Enough that ``pool`` remain after dropping the "like" item and, when asked, seen ones.
        seen = max(len(x.state.seen) if x.exclude_seen and x.state else 0 for x in requests)
        limit = max(w.pool, max(x.k for x in requests)) + 1 + min(seen, r.max_candidates)
        hits = r.index.search_many([r.query(v) for v in vectors], limit)
        out = []
        for x, found in zip(requests, hits, strict=True):
            out.append(self._rank(x, found, now))
        return out

    def _rank(self, x: SearchRequest, hits: list[tuple[str, float]], now: float) -> SearchResults:
        r, w = self.recommender, self.weights
        p = w.personalization if x.personalization is None else x.personalization
        state = x.state if x.state is not None and x.state.n_events else None
        filters = x.filters or r.filters
        drop = set(x.state.seen) if x.exclude_seen and x.state else set()
        if x.query.like:
            drop.add(x.query.like)
        with r.views.lock:
            catalogue = r.views.catalogue
            hits = [(i, s) for i, s in hits if i not in drop and filters.allows(catalogue.get(i))]
            like_title = r.title(x.query.like) if x.query.like else None
        ids = [i for i, _ in hits]
        relevance = np.array([s for _, s in hits], dtype=np.float64)
        personal = np.zeros((3, len(ids)))
        via: dict[str, str] = {}
        if p > 0 and state is not None and ids:
            personal[0] = self._profile_similarity(state, ids)
            with r.views.lock:
                near = {i: (s, v) for i, s, v in r.views.stats.neighbours(state.recent[-5:], 10**9)}
                pop = r.views.stats.popularity_of(ids)
                titles = {v: r.title(v) for _, v in near.values()}
            personal[1] = [near.get(i, (0.0, ""))[0] for i in ids]
            personal[2] = [pop[i] for i in ids]
            via = {i: titles[near[i][1]] for i in ids if i in near}
        else:
            p = 0.0
        parts = p * np.array([w.profile, w.cooccurrence, w.popularity])[:, None] * personal
        total = relevance + parts.sum(axis=0)
        order = sorted(range(len(ids)), key=lambda n: (-total[n], ids[n]))[: x.k]
        base = x.query.describe(like_title)
        items = []
        for n in order:
            reason = base
            best = int(np.argmax(parts[:, n]))
            if parts[best, n] >= 0.02:
                said = ("like items you chose", f"often chosen with {via.get(ids[n], 'your items')}", "popular now")
                reason = f"{base}, {said[best]}"
            items.append(RecommendedItem(item_id=ids[n], score=round(float(total[n]), 6), reason=reason))
        return SearchResults(
            query=x.query.text, image=x.query.image is not None, like=x.query.like, user_id=x.user_id,
            personalization=p, items=items, model_version=f"{SEARCH_VERSION}+{PROFILE_VERSION}+{r.encoder_version}",
            generated_at=datetime.fromtimestamp(now, UTC),
        )

    def _profile_similarity(self, state: ProfileState, ids: list[str]) -> np.ndarray:
        """Per item, its best weighted cosine with the profile's retrieval vectors (short-term,
        interests), as the recommender retrieves with them."""
        r = self.recommender
        queries = state.queries(r.max_queries)
        stored = r.vectors(ids)
        if not queries or not stored:
            return np.zeros(len(ids))
        dim = len(next(iter(stored.values())).vector)
        matrix = np.stack([stored[i].vector if i in stored else np.zeros(dim, np.float32) for i in ids])
        q = np.stack([weight * r.query(v) for _, v, weight in queries])
        return np.clip((matrix @ q.T).max(axis=1), 0.0, None)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v
