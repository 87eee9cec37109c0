"""Ranking metrics and user-level bootstrap intervals; pure numpy, no I/O.

Every score is a *record*: one user's list against that user's relevant items (global split) or
one list against the one item the user chose next (prequential replay). A metric is the mean over
records; its interval resamples *users* (with all their records), because records of one user are
not independent.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

KS = (1, 5, 10, 20)


def recall_at(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the relevant items found in the first ``k``.

    >>> recall_at(["a", "b", "c"], {"b", "x"}, 2)
    0.5
    """
    if not relevant:
        raise ValueError("recall needs at least one relevant item")
    return sum(1 for i in recommended[:k] if i in relevant) / len(relevant)


def hit_at(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """1 if any relevant item is in the first ``k``.

    >>> hit_at(["a", "b"], {"b"}, 1), hit_at(["a", "b"], {"b"}, 2)
    (0.0, 1.0)
    """
    return 1.0 if any(i in relevant for i in recommended[:k]) else 0.0


def ndcg_at(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Binary-relevance NDCG: sum of 1/log2(rank+1) over hits, divided by the best possible sum.

    >>> round(ndcg_at(["a", "b", "c"], {"b", "c"}, 3), 4)   # (1/log2 3 + 1/2) / (1 + 1/log2 3)
    0.6934
    """
    if not relevant:
        raise ValueError("NDCG needs at least one relevant item")
    dcg = sum(1.0 / math.log2(r + 2) for r, i in enumerate(recommended[:k]) if i in relevant)
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(relevant))))
    return dcg / ideal


def reciprocal_rank(recommended: Sequence[str], relevant: Collection[str]) -> float:
    """1 / rank of the first relevant item, 0 if none is in the list (so MRR is truncated at its length).

    >>> reciprocal_rank(["a", "b", "c"], {"c"}), reciprocal_rank(["a"], {"z"})
    (0.3333333333333333, 0.0)
    """
    return next((1.0 / (r + 1) for r, i in enumerate(recommended) if i in relevant), 0.0)


def metric_names(ks: Sequence[int] = KS) -> list[str]:
    return [f"{m}@{k}" for m in ("recall", "ndcg", "hit") for k in ks] + ["mrr"]


def score_list(recommended: Sequence[str], relevant: Collection[str], ks: Sequence[int] = KS) -> np.ndarray:
    """All metrics of one record, in :func:`metric_names` order."""
    out = [f(recommended, relevant, k) for f in (recall_at, ndcg_at, hit_at) for k in ks]
    return np.array([*out, reciprocal_rank(recommended, relevant)], dtype=np.float64)


def coverage(lists: Sequence[Sequence[str]], n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one top-``k`` list.

    >>> coverage([["a", "b"], ["b", "c"]], n_items=4, k=1)
    0.5
    """
    return len({i for lst in lists for i in lst[:k]}) / n_items if n_items else 0.0


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int  # records

    def __str__(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


def user_bootstrap_weights(n_users: int, *, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """How many times each user is drawn in each resample, shape (resamples, n_users).

    Shared by every model of a run, so the ratio of two models is bootstrapped paired.
    """
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=resamples).astype(np.float64)


def estimate(values: np.ndarray, users: np.ndarray, weights: np.ndarray, level: float = 0.95) -> tuple[Estimate, np.ndarray]:
    """Mean of ``values`` (one per record) with a percentile interval from resampling users.

    ``users`` maps each record to a column of ``weights``. Returns the estimate and the resampled
    means (for paired ratios).

    >>> w = user_bootstrap_weights(3, resamples=200, seed=1)
    >>> est, _ = estimate(np.array([1.0, 0.0, 1.0, 1.0]), np.array([0, 0, 1, 2]), w)
    >>> est.mean, 0.0 <= est.low <= est.mean <= est.high <= 1.0
    (0.75, True)
    """
    n_users = weights.shape[1]
    sums = np.bincount(users, weights=values, minlength=n_users)
    counts = np.bincount(users, minlength=n_users).astype(np.float64)
    total = weights @ counts
    boot = np.divide(weights @ sums, total, out=np.zeros(len(weights)), where=total > 0)
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(boot, [tail, 100 - tail])
    mean = float(values.mean()) if len(values) else 0.0
    return Estimate(mean, float(lo), float(hi), len(values)), boot


def ratio_interval(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a / b over paired resamples."""
    r = np.divide(a, b, out=np.full(len(a), np.inf), where=b > 0)
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(r, [tail, 100 - tail])
    return float(lo), float(hi)
