"""The contract every encoder meets, whatever its modality; tests/integration runs the real models
(MiniLM, EfficientNet-Lite0, torchvision, OpenCLIP, librosa features, exported audio, video)
through the same checks."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from fusionrec.encoders import Encoder, HashingTextEncoder, VectorPassThrough, encode_raw


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


@pytest.mark.parametrize("dim", [16, 256])
def test_hashing_encoder_meets_contract(dim):
    check_encoder_contract(HashingTextEncoder(dim), TEXTS, ODD_TEXTS)


def test_vector_pass_through_meets_contract():
    enc = VectorPassThrough("clip", 4)
    out = check_encoder_contract(enc, [[1, 2, 3, 4], [0, 0, 0, 5]], [[0, 0, 0, 0], [1e-30, 0, 0, 0]])
    np.testing.assert_allclose(out[0], np.array([1, 2, 3, 4]) / np.linalg.norm([1, 2, 3, 4]), atol=1e-6)
    assert enc.version == "vector:clip@4"
