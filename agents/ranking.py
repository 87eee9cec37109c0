"""Turning nearest-neighbour candidates into a list: drop seen items, dedupe, cut to k."""

from __future__ import annotations

from collections.abc import Container, Iterable


def overfetch(k: int, n_excluded: int, cap: int) -> int:
    """How many candidates to ask the index for so ``k`` remain after dropping excluded ones.

    Seen items are filtered here, outside Milvus, because an ``id not in [...]`` filter with
    thousands of ids is slow there; asking for ``k + n_excluded`` guarantees enough survive.

    >>> overfetch(10, 3, 500), overfetch(10, 5_000, 500)
    (13, 500)
    """
    return max(k, min(k + n_excluded, cap))


def top_k_unseen(
    candidates: Iterable[tuple[str, float]], exclude: Container[str], k: int
) -> list[tuple[str, float]]:
    """The ``k`` best-scored candidates that are not excluded, each id once.

    >>> top_k_unseen([("a", 0.9), ("b", 0.8), ("a", 0.7), ("c", 0.95)], {"c"}, 2)
    [('a', 0.9), ('b', 0.8)]
    """
    best: dict[str, float] = {}
    for item_id, score in candidates:
        if item_id in exclude:
            continue
        if score > best.get(item_id, float("-inf")):
            best[item_id] = score
    return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
