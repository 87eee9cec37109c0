"""The contract every encoder meets, whatever its modality, on the model-free encoders; tests/integration
runs the real models (MiniLM, EfficientNet-Lite0, torchvision, OpenCLIP, librosa features, exported
audio, video) through the same checks."""

import numpy as np
import pytest

from fusionrec.encoders import HashingTextEncoder, VectorPassThrough
from fusionrec.testing.contracts import ODD_TEXTS, TEXTS, check_encoder_contract


@pytest.mark.parametrize("dim", [16, 256])
def test_hashing_encoder_meets_contract(dim):
    check_encoder_contract(HashingTextEncoder(dim), TEXTS, ODD_TEXTS)


def test_vector_pass_through_meets_contract():
    enc = VectorPassThrough("clip", 4)
    out = check_encoder_contract(enc, [[1, 2, 3, 4], [0, 0, 0, 5]], [[0, 0, 0, 0], [1e-30, 0, 0, 0]])
    np.testing.assert_allclose(out[0], np.array([1, 2, 3, 4]) / np.linalg.norm([1, 2, 3, 4]), atol=1e-6)
    assert enc.version == "vector:clip@4"
