"""The unit-level contracts, run on the real implementations: MiniLM, milvus-lite in-process
and the served milvus-lite of the embedded stack."""

import uuid

import pytest

from fusionrec.encoders import load_text_encoder
from fusionrec.streams import open_index
from fusionrec.testing.contracts import ODD_TEXTS, TEXTS, check_encoder_contract, check_vector_index_contract

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder("all-MiniLM-L6-v2", device="cpu")


def test_minilm_meets_the_encoder_contract(minilm):
    assert minilm.dim == 384
    check_encoder_contract(minilm, TEXTS, ODD_TEXTS, atol=1e-3)


def test_minilm_puts_similar_texts_closer(minilm):
    v = minilm.encode(["a saxophone solo in a jazz club", "bebop trumpet with a jazz trio", "baking sourdough bread"])
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1


def test_milvus_lite_in_process_meets_the_index_contract(tmp_path):
    index = open_index(str(tmp_path / "contract.db"), "contract")
    try:
        check_vector_index_contract(index)
    finally:
        index.close()


def test_served_milvus_lite_meets_the_index_contract(stack):
    index = open_index(stack.settings.require_milvus_uri(), f"contract_{uuid.uuid4().hex[:8]}")
    try:
        check_vector_index_contract(index)
        with pytest.raises(Exception, match="dim"):
            index.ensure_collection(8)
    finally:
        index.close()


def test_unreachable_milvus_is_a_vector_index_error():
    from fusionrec.schemas import VectorIndexError

    with pytest.raises(VectorIndexError, match="cannot connect"):
        open_index("http://127.0.0.1:1", "nothing")
