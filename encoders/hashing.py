"""A deterministic bag-of-words encoder: the in-memory twin of the real text model.

No weights, no torch: unit tests and agent tests use it where a real model would only slow
them down. Texts that share words get similar vectors, so ranking logic still has signal.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from fusionrec.encoders.base import l2_normalize

_TOKEN = re.compile(r"[a-z0-9]+")


class HashingTextEncoder:
    """Signed feature hashing of lower-cased word tokens.

    >>> enc = HashingTextEncoder(dim=64)
    >>> v = enc.encode(["space ship", "space ship", "garden"])
    >>> bool((v[0] == v[1]).all()), round(float(v[0] @ v[2]), 3)
    (True, 0.0)
    """

    modality = "text"
    device = "cpu"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.version = self.space = f"hashing-bow-{dim}@1"

    def prepare(self, raw: str) -> str:
        return raw

    def _bucket(self, token: str) -> tuple[int, float]:
        h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
        return h % self.dim, 1.0 if (h >> 63) & 1 else -1.0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()):
                col, sign = self._bucket(token)
                out[row, col] += sign
        return l2_normalize(out)
