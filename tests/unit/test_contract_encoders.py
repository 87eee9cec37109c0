"""Contract every text encoder meets; the real model runs the same checks in tests/integration."""

import numpy as np
import pytest

from fusionrec.encoders import HashingTextEncoder, TextEncoder


def check_text_encoder_contract(enc: TextEncoder) -> None:
    texts = ["a jazz trumpet solo", "", "ünïcödé ✓ 日本語", "x " * 2000, "a jazz trumpet solo"]
    out = enc.encode(texts)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (len(texts), enc.dim)
    assert np.isfinite(out).all()
    norms = np.linalg.norm(out, axis=1)
    assert np.allclose(norms[[0, 2, 3]], 1.0, atol=1e-4)
    np.testing.assert_allclose(out[0], out[4], atol=1e-5)  # deterministic
    np.testing.assert_allclose(enc.encode(texts[:1])[0], out[0], atol=1e-4)  # batch-independent
    assert enc.encode([]).shape == (0, enc.dim)
    assert isinstance(enc.version, str) and enc.version and isinstance(enc.device, str)
    assert isinstance(enc, TextEncoder)


@pytest.mark.parametrize("dim", [16, 256])
def test_hashing_encoder_meets_contract(dim):
    check_text_encoder_contract(HashingTextEncoder(dim))
