"""The contracts every implementation of a port meets: encoders and vector indexes.

Unit tests run them on the twins (hashing encoder, memory index); integration tests on the real
models, milvus-lite and the embedded Milvus server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from fusionrec.agents.ports import ItemVector, VectorIndex
from fusionrec.encoders import Encoder, encode_raw
from fusionrec.schemas import VectorIndexError


def check_encoder_contract(enc: Encoder, inputs: Sequence[Any], odd: Sequence[Any] = (), *, atol: float = 1e-4) -> np.ndarray:
    """``inputs``: at least two different real inputs; ``odd``: edge cases (empty text, a tiny image,
    a silent clip...) that must still give a finite row, unit length or all zero (nothing in it)."""
    raw = [*inputs, inputs[0], *odd]
    out = encode_raw(enc, raw)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (len(raw), enc.dim)
    assert np.isfinite(out).all()
    norms = np.linalg.norm(out, axis=1)
    np.testing.assert_allclose(norms[: len(inputs) + 1], 1.0, atol=1e-4)
    assert all(abs(n - 1) < 1e-4 or n == 0 for n in norms[len(inputs) + 1 :])
    np.testing.assert_allclose(out[0], out[len(inputs)], atol=atol)  # deterministic within a batch
    np.testing.assert_allclose(encode_raw(enc, inputs[:1])[0], out[0], atol=atol)  # and across batches
    assert not np.allclose(out[0], out[1], atol=1e-3)  # different inputs, different vectors
    assert enc.encode([]).shape == (0, enc.dim)
    for attr in ("modality", "version", "space", "device"):
        assert isinstance(getattr(enc, attr), str) and getattr(enc, attr)
    assert isinstance(enc, Encoder)
    return out


TEXTS = ["a jazz trumpet solo", "baking sourdough bread"]
ODD_TEXTS = ["", "ünïcödé ✓ 日本語", "x " * 2000]


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


# Legal ids (schemas.Id) that break naive filter strings: quotes, backslashes, brackets, an
# injection attempt, unicode and line separators, and the longest ids in one- and four-byte characters.
HOSTILE_IDS = ["it's-1", 'say "hi"', "back\\slash", "ends with \\", "\\'", "br[ack]ets", "'] or id != ['",
               '") or true or ("', "é ü 中文 🎉", "line\u2028sep", "%s {} $1", "x" * 256, "🎉" * 256]


SPEC = {"kind": "late", "version": "late-v1(text=1,image=1)",
        "blocks": [{"name": "text", "dim": 2, "weight": 1.0}, {"name": "image", "dim": 2, "weight": 1.0}]}


def check_vector_index_contract(index: VectorIndex) -> None:
    index.ensure_collection(4, fusion=SPEC)
    index.ensure_collection(4, fusion=SPEC)  # idempotent
    assert index.fusion_spec() == SPEC
    with pytest.raises(VectorIndexError, match="re-encode"):
        index.ensure_collection(4, fusion={**SPEC, "version": "early-v1(text=1,image=1)"})
    with pytest.raises(VectorIndexError, match="dim"):
        index.ensure_collection(8, fusion=SPEC)
    rows = [
        ItemVector("a", unit(1, 0, 0, 0), "v1", "f1", "jazz"),
        ItemVector("b", unit(0.8, 0.2, 0, 0), "v1", "f1", "jazz"),
        ItemVector("c", unit(0, 0, 1, 0), "v1", "f1", "rock"),
        ItemVector("gone", unit(1, 0.01, 0, 0), "v1", "f1", "jazz", available=False),
        # late fusion stores unit blocks without joint normalisation: scores are inner products
        ItemVector("both", np.array([0, 1, 1, 0], dtype=np.float32), "v1", "f1", "pop"),
    ]
    index.upsert(rows)
    assert index.count() == 5
    got = index.get(["a", "c", "missing"])
    assert set(got) == {"a", "c"}
    np.testing.assert_allclose(got["a"].vector, rows[0].vector)
    assert got["c"].category == "rock" and got["c"].encoder_version == "v1" and got["c"].available
    assert got["c"].fusion_version == "f1"
    hits = index.search(unit(1, 0.1, 0, 0), 3)
    assert [h[0] for h in hits] == ["a", "b", "both"]  # unavailable items are never returned
    assert hits[0][1] > hits[1][1] > hits[2][1]
    np.testing.assert_allclose([h[1] for h in hits], [unit(1, 0.1, 0, 0) @ r.vector for r in (rows[0], rows[1], rows[4])],
                               atol=1e-3)  # inner product
    assert index.search(np.array([0, 0.5, 0.5, 0], dtype=np.float32), 1) == [("both", pytest.approx(1.0, abs=1e-3))]
    index.upsert([ItemVector("a", unit(0, 0, 1, 0), "v2", "f1", "rock")])  # new version
    assert index.count() == 5 and index.get(["a"])["a"].encoder_version == "v2"
    assert index.search(unit(0, 0, 1, 0), 1)[0][0] in {"a", "c", "both"}
    assert index.search(unit(1, 0, 0, 0), 0) == []
    many = index.search_many([unit(0, 0, 0, 1), unit(0.8, 0.2, 0, 0)], 1)
    assert len(many) == 2 and many[1][0][0] == "b"

    index.upsert([ItemVector(i, unit(0, 0, 0, 1), "v1", "f1", "odd") for i in HOSTILE_IDS])
    assert set(index.get(HOSTILE_IDS)) == set(HOSTILE_IDS)
    assert set(index.get(HOSTILE_IDS[:1] + ["it"])) == {HOSTILE_IDS[0]}  # an id is matched whole
    assert {h[0] for h in index.search(unit(0, 0, 0, 1), len(HOSTILE_IDS))} == set(HOSTILE_IDS)
