"""Fusion strategies: what each one's scores mean, missing modalities, shared spaces, learning."""

import numpy as np
import pytest

from fusionrec.encoders import (
    Block,
    EarlyFusion,
    HashingTextEncoder,
    LateFusion,
    LearnedFusion,
    VectorPassThrough,
    make_blocks,
    make_fusion,
    query_transform,
)
from fusionrec.encoders.fusion import co_consumption_pairs, train_learned_fusion
from fusionrec.schemas import ConfigError

RNG = np.random.default_rng(7)
BLOCKS = [Block("text", ("text",), 8, 1.0), Block("image", ("image",), 6, 3.0), Block("audio", ("audio",), 4, 0.5)]


def unit(v):
    return v / np.linalg.norm(v)


def random_parts(n, missing=()):
    return [{b.name: unit(RNG.normal(size=b.dim)).astype(np.float32) for b in BLOCKS if b.name not in missing}
            for _ in range(n)]


def cos(a, b):
    return float(unit(a) @ unit(b))


def test_early_fusion_is_a_weighted_cosine_normalised_by_what_items_have():
    fusion = EarlyFusion(BLOCKS)
    x, y = random_parts(2)
    fx, fy = fusion.fuse([x, y])
    assert fusion.dim == 18 and fx.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm([fx, fy], axis=1), 1.0, atol=1e-6)
    expected = sum(b.weight * cos(x[b.name], y[b.name]) for b in BLOCKS) / sum(b.weight for b in BLOCKS)
    assert float(query_transform(fusion.spec())(fx) @ fy) == pytest.approx(expected, abs=1e-5)
    assert fusion.version == "early-v1(text=1,image=3,audio=0.5)"


def test_late_fusion_query_scores_exactly_the_weighted_sum_of_modality_similarities():
    fusion = LateFusion(BLOCKS)
    query_parts, item_parts = random_parts(1)[0], random_parts(5)
    items = fusion.fuse(item_parts)
    # a profile is a sum of stored vectors: its blocks need not be unit length
    profile = 2.5 * fusion.fuse([query_parts])[0] + 0.3 * items[0]
    q = query_transform(fusion.spec())(profile)
    total = sum(b.weight for b in BLOCKS)
    sizes = np.cumsum([0] + [b.dim for b in BLOCKS])
    for parts, stored in zip(item_parts, items, strict=True):
        expected = sum(
            b.weight / total * cos(profile[sizes[k] : sizes[k + 1]], parts[b.name]) for k, b in enumerate(BLOCKS)
        )
        assert float(q @ stored) == pytest.approx(expected, abs=1e-5)


WIDE = [Block("text", ("text",), 64), Block("image", ("image",), 64), Block("audio", ("audio",), 64)]


@pytest.mark.parametrize("fusion", [EarlyFusion(WIDE), LateFusion(WIDE)], ids=["early", "late"])
def test_items_missing_modalities_stay_in_the_space_and_are_found(fusion):
    full = [{b.name: unit(RNG.normal(size=b.dim)).astype(np.float32) for b in WIDE} for _ in range(30)]
    # the same content with modalities taken away: text only, image only, no audio
    partial = [{"text": full[0]["text"]}, {"image": full[1]["image"]}, {k: full[2][k] for k in ("text", "image")}]
    stored = fusion.fuse(full[3:] + partial)
    assert stored.shape == (30, fusion.dim) and np.isfinite(stored).all()
    transform = query_transform(fusion.spec())
    for k, query in enumerate(fusion.fuse(full[:3])):
        assert int(np.argmax(stored @ transform(query))) == 27 + k  # the partial copy is the nearest item
    assert not fusion.fuse([{}]).any()  # nothing at all: a zero vector, refused by the item encoder


def test_encoders_sharing_a_space_share_one_block():
    text = HashingTextEncoder(16)
    clip_image = VectorPassThrough("image", 16)
    clip_image.space = text.space  # as a CLIP model's two towers do
    blocks = make_blocks({"text": text, "image": clip_image, "audio": VectorPassThrough("audio", 4)},
                         {"image": 3.0})
    assert [(b.name, b.dim, b.weight) for b in blocks] == [("text+image", 16, 2.0), ("audio", 4, 1.0)]
    fusion = EarlyFusion(blocks)
    v = unit(RNG.normal(size=16)).astype(np.float32)
    text_only, image_only = fusion.fuse([{"text": v}, {"image": v}])
    assert float(text_only @ image_only) == pytest.approx(1.0, abs=1e-6)  # a text can find an image


def clustered_items(n_items=240, clusters=12, seed=0):
    """Items whose "signal" modality shows their cluster and whose "noise" modality is random;
    users consume items of one cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, 16))
    labels = rng.integers(0, clusters, n_items)
    parts = {
        f"i{k}": {"signal": unit(centres[labels[k]] + 1.2 * rng.normal(size=16)).astype(np.float32),
                  "noise": unit(rng.normal(size=64)).astype(np.float32)}
        for k in range(n_items)
    }
    pairs = []
    for _ in range(3000):
        c = rng.integers(clusters)
        a, b = rng.choice(np.flatnonzero(labels == c), 2, replace=False)
        pairs.append((f"i{a}", f"i{b}"))
    return parts, labels, pairs


def neighbour_precision(vectors, labels, k=5):
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :k]
    return float((labels[top] == labels[:, None]).mean())


def test_learned_fusion_learns_which_modality_predicts_co_consumption(tmp_path):
    parts, labels, pairs = clustered_items()
    blocks = [Block("signal", ("signal",), 16), Block("noise", ("noise",), 64)]
    ids = list(parts)
    early = neighbour_precision(EarlyFusion(blocks).fuse([parts[i] for i in ids]), labels)
    learned = train_learned_fusion(blocks, parts, pairs, dim=16, epochs=15, device="cpu", seed=1)
    fused = learned.fuse([parts[i] for i in ids])
    assert fused.shape == (240, 16)
    precision = neighbour_precision(fused, labels)
    print(f"neighbour precision@5: early {early:.3f}, learned {precision:.3f}")
    assert precision > early + 0.15, (precision, early)
    # an item missing its noise modality still lands among its cluster
    partial = learned.fuse([{"signal": parts[i]["signal"]} for i in ids])
    assert neighbour_precision(np.vstack([partial]), labels) > early

    path = learned.save(tmp_path / "fusion.npz")
    loaded = LearnedFusion.load(path, blocks)
    assert loaded.version == learned.version and loaded.version.startswith("learned-v1-")
    np.testing.assert_array_equal(loaded.fuse([parts["i0"]]), learned.fuse([parts["i0"]]))
    with pytest.raises(ConfigError, match="trained for blocks"):
        LearnedFusion.load(path, [Block("signal", ("signal",), 16), Block("noise", ("noise",), 8)])
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(ConfigError, match="not a learned fusion"):
        LearnedFusion.load(tmp_path / "bad.npz")


def test_learned_fusion_needs_an_artefact():
    with pytest.raises(ConfigError, match="FUSIONREC_FUSION_MODEL"):
        make_fusion("learned", {"text": HashingTextEncoder(8)})


def test_co_consumption_pairs_follow_each_users_time_order():
    events = [("u", "b", 2.0), ("u", "a", 1.0), ("u", "c", 3.0), ("u", "c", 4.0), ("v", "x", 1.0)]
    assert co_consumption_pairs(events, window=2) == [("a", "b"), ("a", "c"), ("b", "c"), ("b", "c")]
