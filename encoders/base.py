"""The encoder interface: a batch in, a float32 matrix of the declared dimension out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TextEncoder(Protocol):
    """Turns texts into L2-normalised float32 rows of width :attr:`dim`.

    ``version`` names the model and its settings; it is stored beside every vector so a
    re-encode with another model never mixes spaces silently.
    """

    dim: int
    version: str
    device: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    """Scale each row to unit length; all-zero rows stay zero.

    >>> l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0).astype(np.float32, copy=False)
