"""Ready-made vectors carried on the item event: validated on decode, passed through here."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fusionrec.encoders.base import l2_normalize


class VectorPassThrough:
    """Ready-made vectors from the item event (validated on decode): normalised, otherwise untouched."""

    modality = "vector"
    device = "cpu"

    def __init__(self, name: str, dim: int) -> None:
        self.name, self.dim = name, dim
        self.version = self.space = f"vector:{name}@{dim}"

    def prepare(self, raw: Sequence[float]) -> np.ndarray:
        # float64 until normalised: values past float32's range (1e39) are finite JSON numbers.
        return np.asarray(raw, dtype=np.float64)

    def encode(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(np.stack(batch))
