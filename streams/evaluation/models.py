"""What the harness evaluates: baselines and the streaming engine behind one small interface.

Every model learns one event at a time (``learn_one``) and lists ``k`` items a user has not seen
(``recommend``); ``tick(now)`` lets batch models refit on a schedule in replay time. The engine
models wrap the very :class:`~fusionrec.agents.engine.Recommender`, profile model and item
statistics the streaming worker runs; nothing of them is re-implemented here.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from fusionrec.agents.engine import Recommender
from fusionrec.agents.profile import ProfileState
from fusionrec.schemas import ConfigError
from fusionrec.streams.evaluation.datasets import Event

logger = logging.getLogger(__name__)


class Model(Protocol):
    name: str

    def learn_one(self, event: Event) -> None: ...
    def recommend(self, user: str, k: int, now: float) -> list[str]: ...
    def tick(self, now: float) -> None: ...


class Catalog:
    """Item ids <-> dense indices, shared by the array-based baselines."""

    def __init__(self, ids: Iterable[str]) -> None:
        self.ids = list(dict.fromkeys(ids))
        self.index = {i: n for n, i in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)


class _ArrayModel:
    """Keeps each user's seen items; subclasses score the whole catalogue at once."""

    name = "array"

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.seen: dict[str, list[int]] = {}

    def learn_one(self, event: Event) -> None:
        j = self.catalog.index[event.item]
        history = self.seen.setdefault(event.user, [])
        if j not in history:
            self._learn(event.user, history, j, event.timestamp)
            history.append(j)

    def _learn(self, user: str, history: list[int], j: int, now: float) -> None:
        raise NotImplementedError

    def scores(self, user: str, history: Sequence[int]) -> np.ndarray | None:
        raise NotImplementedError

    def recommend(self, user: str, k: int, now: float) -> list[str]:
        history = self.seen.get(user, [])
        scores = self.scores(user, history)
        if scores is None:
            return []
        return _top(scores, history, k, self.catalog)

    def tick(self, now: float) -> None:
        pass


def _top(scores: np.ndarray, exclude: Sequence[int], k: int, catalog: Catalog) -> list[str]:
    """The ``k`` best-scoring items (positive scores only), ties broken by index for reproducibility."""
    scores = np.asarray(scores, dtype=np.float64).copy()
    if len(exclude):
        scores[np.asarray(exclude)] = -np.inf
    k = min(k, int(np.count_nonzero(scores > 0)))
    if k <= 0:
        return []
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.lexsort((part, -scores[part]))]
    return [catalog.ids[j] for j in order]


class MostPopular(_ArrayModel):
    """Items by how many users have interacted with them so far."""

    name = "MostPopular"

    def __init__(self, catalog: Catalog) -> None:
        super().__init__(catalog)
        self.counts = np.zeros(len(catalog))

    def _learn(self, user: str, history: list[int], j: int, now: float) -> None:
        self.counts[j] += 1

    def scores(self, user: str, history: Sequence[int]) -> np.ndarray:
        return self.counts


class RecentPopular(_ArrayModel):
    """Items by interactions within the last ``window_s`` seconds of replay time (ties: all-time counts)."""

    name = "RecentPopular"

    def __init__(self, catalog: Catalog, window_s: float) -> None:
        super().__init__(catalog)
        self.window_s = window_s
        self.recent = np.zeros(len(catalog))
        self.total = np.zeros(len(catalog))
        self.log: deque[tuple[float, int]] = deque()
        self.now = -np.inf

    def _learn(self, user: str, history: list[int], j: int, now: float) -> None:
        self.recent[j] += 1
        self.total[j] += 1
        self.log.append((now, j))
        self.tick(now)

    def tick(self, now: float) -> None:
        self.now = max(self.now, now)
        while self.log and self.log[0][0] < self.now - self.window_s:
            self.recent[self.log.popleft()[1]] -= 1

    def scores(self, user: str, history: Sequence[int]) -> np.ndarray:
        return self.recent + self.total / (self.total.max() + 1.0)


class ItemKNN(_ArrayModel):
    """Item-to-item cosine of co-occurrence over every user's whole history, summed over the user's
    items (Sarwar et al. / Deshpande & Karypis item-based top-N)."""

    name = "ItemKNN"
    MAX_ITEMS = 20_000  # a dense float32 co-occurrence matrix of this many items is 1.6 GB

    def __init__(self, catalog: Catalog) -> None:
        super().__init__(catalog)
        if len(catalog) > self.MAX_ITEMS:
            raise ConfigError(f"ItemKNN keeps a dense co-occurrence matrix: {len(catalog):,} items is over "
                              f"{self.MAX_ITEMS:,}; leave it out with --models")
        self.cooc = np.zeros((len(catalog), len(catalog)), dtype=np.float32)
        self.counts = np.zeros(len(catalog), dtype=np.float32)

    def _learn(self, user: str, history: list[int], j: int, now: float) -> None:
        self.counts[j] += 1
        if history:
            h = np.asarray(history)
            self.cooc[j, h] += 1
            self.cooc[h, j] += 1

    def scores(self, user: str, history: Sequence[int]) -> np.ndarray | None:
        if not history:
            return None
        h = np.asarray(history)
        norm = np.sqrt(np.maximum(self.counts[h], 1.0))[:, None] * np.sqrt(np.maximum(self.counts, 1.0))[None, :]
        return (self.cooc[h] / norm).sum(axis=0)


class ALS(_ArrayModel):
    """Implicit-feedback matrix factorisation (Hu, Koren & Volinsky) from the ``implicit`` library.

    Refit on everything learned so far every ``refit_s`` of replay time; between refits a user's
    factors are solved from their current history at each request, so users who arrived after the
    last fit are served too.
    """

    name = "ALS"

    def __init__(self, catalog: Catalog, *, factors: int = 64, regularization: float = 0.05, alpha: float = 10.0,
                 iterations: int = 15, refit_s: float = 86_400.0, seed: int = 0) -> None:
        super().__init__(catalog)
        self.params = {"factors": factors, "regularization": regularization, "alpha": alpha, "iterations": iterations}
        self.refit_s = refit_s
        self.seed = seed
        self.model = None
        self.fitted_at = -np.inf
        self.fits = 0

    def _learn(self, user: str, history: list[int], j: int, now: float) -> None:
        pass

    def tick(self, now: float) -> None:
        if now - self.fitted_at >= self.refit_s:
            self.fit()
            self.fitted_at = now

    def fit(self) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        rows = [(u, j) for u, (_, history) in enumerate(self.seen.items()) for j in history]
        if not rows:
            return
        matrix = _csr([r[0] for r in rows], [r[1] for r in rows], (len(self.seen), len(self.catalog)))
        with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS threads slow it down
            model = AlternatingLeastSquares(**self.params, random_state=self.seed, calculate_training_loss=False)
            model.fit(matrix, show_progress=False)
        self.model = model
        self.fits += 1

    def scores(self, user: str, history: Sequence[int]) -> np.ndarray | None:
        if self.model is None or not history:
            return None
        row = _csr([0] * len(history), list(history), (1, len(self.catalog)))
        factors = self.model.recalculate_user(0, row)
        scores = self.model.item_factors @ factors
        return scores - scores.min() + 1e-6  # _top keeps positive scores only; the order is what counts


def _csr(rows: Sequence[int], cols: Sequence[int], shape: tuple[int, int]):
    from scipy.sparse import csr_matrix

    return csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)


class EngineModel:
    """The streaming engine: profiles, item statistics, candidates and ranking, exactly as the
    profile worker runs them, with an in-memory vector index instead of Milvus."""

    def __init__(self, name: str, recommender: Recommender) -> None:
        self.name = name
        self.recommender = recommender
        self.states: dict[str, ProfileState] = {}
        self.unknown_items = 0

    def learn_one(self, event: Event) -> None:
        r = self.recommender
        item = r.vectors([event.item]).get(event.item)
        if item is None:
            self.unknown_items += 1  # the worker would retry, then dead-letter it; its stats still count it
        else:
            state = self.states.get(event.user) or ProfileState()
            self.states[event.user] = r.model.learn_one(
                state, event.event_id, event.item, item.vector, event.kind, event.value, event.timestamp
            )
        r.views.learn_interaction(event.event_id, event.user, event.item,
                                  r.model.config.event_weight(event.kind, event.value), event.timestamp)

    def recommend(self, user: str, k: int, now: float) -> list[str]:
        state = self.states.get(user) or ProfileState()
        return [i.item_id for i in self.recommender.recommend(state, user, k=k, now=now).items]

    def tick(self, now: float) -> None:
        pass
