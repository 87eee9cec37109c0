"""Query parts land in the blocks of the fused space they can be compared with, under every fusion."""

import numpy as np
import pytest

from fusionrec.encoders import Block, EarlyFusion, HashingTextEncoder, LateFusion, LearnedFusion, query_transform
from fusionrec.encoders.query import QueryEncoder, fusion_from_spec
from fusionrec.schemas import ConfigError, QueryError


class Counting(HashingTextEncoder):
    def __init__(self, dim: int, space: str | None = None) -> None:
        super().__init__(dim)
        self.calls = 0
        if space:
            self.space = space

    def encode(self, texts):
        self.calls += len(texts)
        return super().encode(texts)


BLOCKS = [Block("text", ("text",), 16, 1.0), Block("image", ("image",), 8, 0.5)]


@pytest.mark.parametrize("fusion", [EarlyFusion(BLOCKS), LateFusion(BLOCKS)])
def test_words_fill_the_text_block_only(fusion):
    text = Counting(16)
    row = QueryEncoder({"text": lambda: text}).encode("text", ["red shoes"], fusion.spec())[0]
    assert np.any(row[:16]) and not np.any(row[16:])
    item = fusion.fuse([{"text": text.encode(["red shoes"])[0]}])[0]
    # The query scores the item of the same words as that item scores itself.
    q = query_transform(fusion.spec())(row)
    assert float(q @ item) == pytest.approx(float(query_transform(fusion.spec())(item) @ item), rel=1e-5)


def test_words_reach_pictures_in_a_shared_space():
    clip = [Block("text+image", ("text", "image"), 16)]
    text = Counting(16, space="clip")
    row = QueryEncoder({"text": lambda: text}).encode("text", ["a dog"], EarlyFusion(clip).spec())[0]
    assert np.linalg.norm(row) == pytest.approx(1.0)


def test_a_learned_fusion_projects_the_query(tmp_path):
    rng = np.random.default_rng(0)
    fusion = LearnedFusion(BLOCKS, {"text": rng.standard_normal((4, 16)), "image": rng.standard_normal((4, 8))})
    path = fusion.save(tmp_path / "fusion.npz")
    text = Counting(16)
    row = QueryEncoder({"text": lambda: text}, fusion_model=path).encode("text", ["x y"], fusion.spec())[0]
    assert np.allclose(row, fusion.fuse([{"text": text.encode(["x y"])[0]}])[0])
    with pytest.raises(ConfigError, match="FUSIONREC_FUSION_MODEL"):
        fusion_from_spec(fusion.spec())


def test_a_spec_this_worker_would_fuse_differently_is_refused():
    spec = {**EarlyFusion(BLOCKS).spec(), "version": "early-v1(text=1,image=2)"}
    with pytest.raises(ConfigError, match="would query it as"):
        fusion_from_spec(spec)


def test_repeated_words_are_encoded_once():
    text = Counting(16)
    queries = QueryEncoder({"text": lambda: text}, cache_size=2)
    spec = EarlyFusion(BLOCKS).spec()
    queries.encode("text", ["a", "b", "a"], spec)
    queries.encode("text", ["b"], spec)
    assert text.calls == 2
    queries.encode("text", ["c", "a"], spec)  # two kept: "b", the least recently asked, goes
    assert text.calls == 3
    queries.encode("text", ["b"], spec)
    assert text.calls == 4


def test_a_modality_without_a_block_or_an_encoder_is_a_422():
    spec = EarlyFusion([BLOCKS[0]]).spec()
    with pytest.raises(QueryError, match="no image vectors") as caught:
        QueryEncoder({"text": lambda: Counting(16), "image": lambda: Counting(8)}).encode("image", [object()], spec)
    assert caught.value.status == 422
    with pytest.raises(QueryError, match="encodes no image queries"):
        QueryEncoder({"text": lambda: Counting(16)}).encode("image", [object()], EarlyFusion(BLOCKS).spec())
