"""The evaluation harness's pure parts: metrics, splits, protocols, baselines, loaders."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from fusionrec.schemas import InteractionType
from fusionrec.streams.evaluation.datasets import Event, load_generic, load_lastfm_2k, load_movielens_100k
from fusionrec.streams.evaluation.metrics import (
    coverage,
    estimate,
    hit_at,
    metric_names,
    ndcg_at,
    ratio_interval,
    recall_at,
    reciprocal_rank,
    score_list,
    user_bootstrap_weights,
)
from fusionrec.streams.evaluation.models import ALS, Catalog, ItemKNN, MostPopular, RecentPopular
from fusionrec.streams.evaluation.protocols import Split, global_split, labelled_split, prequential, temporal_split


def ev(n: int, user: str, item: str, t: float, split: str = "") -> Event:
    return Event(f"e{n}", user, item, t, InteractionType.VIEW, None, split)


# --- metrics, on cases worked out by hand ---------------------------------------------------------

def test_metrics_hand_computed() -> None:
    recs = ["a", "b", "c", "d"]
    rel = {"b", "d", "z"}
    assert recall_at(recs, rel, 2) == pytest.approx(1 / 3)
    assert recall_at(recs, rel, 4) == pytest.approx(2 / 3)
    assert hit_at(recs, rel, 1) == 0.0 and hit_at(recs, rel, 2) == 1.0
    # hits at ranks 2 and 4: 1/log2(3) + 1/log2(5); ideal for 3 relevant in 4: 1 + 1/log2(3) + 1/log2(4)
    assert ndcg_at(recs, rel, 4) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 0.5))
    assert ndcg_at(["x"], {"x"}, 1) == 1.0
    assert reciprocal_rank(recs, rel) == 0.5
    assert reciprocal_rank(recs, {"q"}) == 0.0
    assert coverage([["a", "b"], ["a", "c"]], 10, k=2) == pytest.approx(0.3)


def test_metrics_refuse_empty_relevance() -> None:
    with pytest.raises(ValueError):
        recall_at(["a"], set(), 1)
    with pytest.raises(ValueError):
        ndcg_at(["a"], set(), 1)


def test_score_list_follows_metric_names() -> None:
    values = score_list(["a", "b"], {"b"}, ks=(1, 2))
    names = metric_names((1, 2))
    got = dict(zip(names, values, strict=True))
    assert got == {"recall@1": 0.0, "recall@2": 1.0, "ndcg@1": 0.0, "ndcg@2": pytest.approx(1 / math.log2(3)),
                   "hit@1": 0.0, "hit@2": 1.0, "mrr": 0.5}


def test_bootstrap_resamples_users_not_records() -> None:
    # One user with 100 records all 1, nine users with one record each all 0: the record mean is
    # 100/109, but resampling users must often drop that user entirely.
    users = np.array([0] * 100 + list(range(1, 10)))
    values = np.array([1.0] * 100 + [0.0] * 9)
    weights = user_bootstrap_weights(10, resamples=2000, seed=3)
    est, boot = estimate(values, users, weights)
    assert est.mean == pytest.approx(100 / 109)
    assert est.low == 0.0  # in some resamples the heavy user is absent
    assert est.high == pytest.approx(1.0, abs=0.05) or est.high > 0.95
    assert len(boot) == 2000


def test_paired_ratio_interval_covers_the_ratio() -> None:
    rng = np.random.default_rng(0)
    users = np.arange(200)
    a = rng.random(200)
    w = user_bootstrap_weights(200, resamples=500, seed=1)
    (ea, ba), (eb, bb) = estimate(a * 2, users, w), estimate(a, users, w)
    lo, hi = ratio_interval(ba, bb)
    assert lo == pytest.approx(2.0) and hi == pytest.approx(2.0)  # a paired, exact 2x stays exactly 2x
    assert ea.mean == pytest.approx(2 * eb.mean)


# --- splits ---------------------------------------------------------------------------------------

def test_temporal_split_never_leaks_the_future() -> None:
    rng = random.Random(7)
    events = [ev(n, f"u{rng.randrange(20)}", f"i{rng.randrange(50)}", float(rng.randrange(300))) for n in range(1000)]
    split = temporal_split(events, 0.8)
    assert max(e.timestamp for e in split.train) < min(e.timestamp for e in split.test)
    assert sorted(split.train + split.test, key=lambda e: e.event_id) == sorted(events, key=lambda e: e.event_id)
    assert 0.78 <= len(split.train) / len(events) <= 0.85  # ties at the cut go to training
    assert split.cut == min(e.timestamp for e in split.test)


def test_labelled_split_keeps_the_published_split() -> None:
    events = [ev(0, "u", "a", 0, "train"), ev(1, "u", "b", 1, "valid"), ev(2, "u", "c", 2, "test")]
    split = labelled_split(events, ("train", "valid"), ("test",))
    assert [e.item for e in split.train] == ["a", "b"] and [e.item for e in split.test] == ["c"]


# --- protocols only show models the past ----------------------------------------------------------

class Spy:
    """Checks, at every request, that it has learned nothing at or after the asked time."""

    name = "spy"

    def __init__(self) -> None:
        self.learned: list[Event] = []
        self.asked = 0

    def learn_one(self, event: Event) -> None:
        self.learned.append(event)

    def recommend(self, user: str, k: int, now: float) -> list[str]:
        assert all(e.timestamp <= now for e in self.learned)
        self.asked += 1
        return []

    def tick(self, now: float) -> None:
        pass


_SPIES: list[Spy] = []


def make_spy() -> Spy:
    spy = Spy()
    _SPIES.append(spy)
    return spy


def test_prequential_recommends_before_it_learns() -> None:
    events = [ev(n, f"u{n % 3}", f"i{n}", float(n)) for n in range(30)]
    split = temporal_split(events, 0.5)
    _SPIES.clear()
    prequential({"spy": make_spy}, split, 30, workers=1)
    spy = _SPIES[-1]
    assert spy.asked == len(split.test)  # every test item is new to its user here
    assert [e.event_id for e in spy.learned] == [e.event_id for e in events]  # all learned, in time order


def test_prequential_scores_the_next_choice() -> None:
    # Everyone picks the same items in the same order: MostPopular (learned online) knows the next one.
    events = []
    for u in range(5):
        for step, item in enumerate("abcd"):
            events.append(ev(len(events), f"u{u}", item, u * 10 + step))
    split = Split(events[:4], events[4:])
    catalog = Catalog("abcd")
    out = prequential({"pop": lambda: MostPopular(catalog)}, split, 4, workers=1)
    users, values, _ = out.tallies["pop"].arrays("all")
    hit1 = values[:, metric_names().index("hit@1")]
    assert len(values) == 16 and hit1.mean() == 1.0  # a then b then c then d: always the most popular unseen


def test_prequential_sample_keeps_every_cold_item_event_in_its_slice_only() -> None:
    # 200 test events on 20 well-known items, then one first choice of each of 10 brand-new items.
    train = [ev(n, f"u{n % 7}", f"old{n % 20}", float(n)) for n in range(140)]
    test = [ev(1000 + n, f"v{n}", f"old{n % 20}", 200.0 + n) for n in range(200)]
    test += [ev(2000 + n, f"w{n}", f"new{n}", 500.0 + n) for n in range(10)]
    _SPIES.clear()
    out = prequential({"spy": make_spy}, Split(train, test), 30, workers=1, score_share=0.1, seed=1)
    tally = out.tallies["spy"]
    in_sample = len(tally.arrays("all")[1])
    assert 5 < in_sample < 40  # about 10% of 210
    assert len(tally.arrays("cold_items")[1]) == 10  # all of them, sampled or not
    sampled_cold = sum(1 for t in tally.times["all"] if t >= 500.0)
    assert _SPIES[-1].asked == in_sample + 10 - sampled_cold  # a sampled cold event is asked once
    assert len(tally.lists) == in_sample  # coverage counts the uniform sample only


def test_global_split_scores_only_users_with_history_and_new_items() -> None:
    train = [ev(0, "u1", "a", 0), ev(1, "u1", "b", 1), ev(2, "u2", "a", 2), ev(7, "u4", "c", 2)]
    test = [ev(3, "u1", "a", 3), ev(4, "u1", "c", 4), ev(5, "u3", "c", 5), ev(6, "u2", "b", 6)]
    catalog = Catalog("abc")
    out = global_split({"pop": lambda: MostPopular(catalog)}, Split(train, test), 3, workers=1)
    assert out.users == ["u1", "u2"]  # u3 has no training events
    _, values, _ = out.tallies["pop"].arrays("all")
    # u1: relevant {c} (a was seen), list [c]; u2: relevant {b}, list [b, c] (a tie, broken by catalogue order)
    assert values[:, metric_names().index("recall@1")].tolist() == [1.0, 1.0]


# --- baselines -------------------------------------------------------------------------------------

def feed(model, events):
    for e in events:
        model.learn_one(e)
    return model


def test_baselines_never_recommend_seen_items() -> None:
    rng = random.Random(1)
    events = [ev(n, f"u{rng.randrange(8)}", f"i{rng.randrange(30)}", float(n)) for n in range(400)]
    catalog = Catalog(f"i{i}" for i in range(30))
    for model in (MostPopular(catalog), RecentPopular(catalog, 50.0), ItemKNN(catalog), ALS(catalog, factors=8)):
        feed(model, events)
        model.tick(400.0)
        for u in range(8):
            seen = {e.item for e in events if e.user == f"u{u}"}
            recs = model.recommend(f"u{u}", 10, 400.0)
            assert not seen & set(recs), type(model).__name__
            assert len(recs) == len(set(recs))


def test_recent_popular_forgets_outside_its_window() -> None:
    catalog = Catalog("ab")
    model = RecentPopular(catalog, window_s=10.0)
    feed(model, [ev(n, f"u{n}", "a", 0.0) for n in range(5)] + [ev(9, "x", "b", 20.0)])
    assert model.recommend("new", 2, 20.0) == ["b", "a"]  # a is more popular ever, b is popular now


def test_item_knn_follows_co_occurrence() -> None:
    catalog = Catalog("abcd")
    events = [ev(0, "u1", "a", 0), ev(1, "u1", "b", 1), ev(2, "u2", "a", 2), ev(3, "u2", "b", 3),
              ev(4, "u3", "c", 4), ev(5, "u3", "d", 5), ev(6, "u4", "a", 6)]
    model = feed(ItemKNN(catalog), events)
    assert model.recommend("u4", 1, 7) == ["b"]
    assert model.recommend("nobody", 3, 7) == []


def test_als_serves_a_user_who_arrived_after_the_fit() -> None:
    catalog = Catalog(f"i{i}" for i in range(6))
    events = [ev(n, f"u{u}", f"i{(u % 2) * 3 + j}", n) for n, (u, j) in enumerate((u, j) for u in range(20) for j in range(3))]
    model = feed(ALS(catalog, factors=4, regularization=0.01, iterations=20, refit_s=1e9), events)
    model.tick(100.0)
    assert model.fits == 1
    model.learn_one(ev(999, "late", "i0", 101.0))  # not in the fit
    recs = model.recommend("late", 2, 101.0)
    assert set(recs) == {"i1", "i2"}  # the items of the group i0 belongs to


# --- loaders --------------------------------------------------------------------------------------

def test_movielens_loader_reads_the_grouplens_format(tmp_path) -> None:
    flags = "|".join(["0"] * 19)
    (tmp_path / "u.item").write_text(
        f"1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|{'|'.join(['0'] * 14)}\n2|Heat (1995)|x||y|{flags}\n",
        encoding="latin-1")
    (tmp_path / "u.data").write_text("7\t2\t4\t300\n7\t1\t1\t100\n8\t1\t5\t200\n")
    (tmp_path / "tmdb_overviews.csv").write_text('movie_id,title,overview\n1,Toy Story,"Toys, alive."\n')
    (tmp_path / "posters").mkdir()
    (tmp_path / "posters" / "1.jpg").write_bytes(b"jpeg")
    ds = load_movielens_100k(tmp_path)
    assert ds.timed and ds.modalities == ("text", "image")
    toy = ds.items[0]
    assert toy.title == "Toy Story (1995)" and toy.description == "Toys, alive."
    assert toy.tags == ["Animation", "Children's"] and toy.category == "Animation"
    assert "image" in toy.media and "image" not in ds.items[1].media
    assert [(e.user, e.item, e.timestamp, e.value) for e in ds.events] == [
        ("7", "1", 100.0, 1.0), ("8", "1", 200.0, 5.0), ("7", "2", 300.0, 4.0)]
    assert all(e.kind is InteractionType.RATING for e in ds.events)


def test_lastfm_loader_maps_ids_tags_and_vectors(tmp_path) -> None:
    (tmp_path / "lfm2k.inter").write_text("userID\titemID\trating\tx_label\n0\t0\t1\t0\n0\t1\t1\t2\n1\t1\t1\t1\n")
    (tmp_path / "lfm2k_og_ids.inter").write_text("userID\titemID\trating\tx_label\n2\t51\t1\t0\n2\t89\t1\t2\n3\t89\t1\t1\n")
    (tmp_path / "lfm2k_text.tsv").write_text("artistID\ttext\n51\tpop,dance\n89\trock\n")
    np.save(tmp_path / "vggish.npy", np.arange(8, dtype=np.float64).reshape(2, 4))
    ds = load_lastfm_2k(tmp_path)
    assert not ds.timed and ds.modalities == ("text", "vggish") and ds.vector_dims == {"vggish": 4}
    assert [it.tags for it in ds.items] == [["pop", "dance"], ["rock"]]
    assert ds.items[1].vectors["vggish"] == [4.0, 5.0, 6.0, 7.0]
    assert [e.split for e in ds.events] == ["train", "test", "valid"]


def test_generic_loader_reads_publish_files(tmp_path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "title": "A song", "vectors": {"clap": [1, 0]}}\n{"id": "b", "title": "B"}\nnot json\n')
    inter = tmp_path / "interactions.csv"
    inter.write_text("event_id,user_id,item_id,type,timestamp\n"
                     "e2,u,b,play,2024-01-02T00:00:00Z\ne1,u,a,play,2024-01-01T00:00:00Z\n")
    ds = load_generic(items, inter)
    assert [it.id for it in ds.items] == ["a", "b"]
    assert ds.modalities == ("text", "clap") and ds.vector_dims == {"clap": 2}
    assert [e.item for e in ds.events] == ["a", "b"]  # time order, not file order


def test_a_grid_point_sets_ranking_weights_and_engine_settings_apart() -> None:
    from fusionrec.streams.build import rank_weights
    from fusionrec.streams.evaluation.run import RANK_GRID, tuned_engine
    from fusionrec.streams.settings import Settings

    base = Settings(weight_cooccurrence=0.9)
    settings, weights = tuned_engine(base, {"popularity": 3.0, "trending_half_life_s": 604800.0})
    assert weights.popularity == 3.0 and weights.cooccurrence == 0.9  # the rest from the settings
    assert settings.trending_half_life_s == 604800.0 and base.trending_half_life_s != 604800.0
    assert tuned_engine(base, {}) == (base, rank_weights(base))
    for protocol, grid in RANK_GRID.items():  # every point names something the engine has
        for point in grid:
            tuned_engine(base, point)
            assert set(point) <= set(weights.__dict__) | set(Settings.model_fields), (protocol, point)


def test_learned_fusion_is_trained_on_training_pairs_only_and_covers_every_item() -> None:
    from fusionrec.encoders import VectorPassThrough
    from fusionrec.streams.evaluation.run import learned_table
    from fusionrec.streams.settings import Settings

    rng = np.random.default_rng(0)
    encoders = {"a": VectorPassThrough("a", 8), "b": VectorPassThrough("b", 4)}
    parts = {f"i{n}": {"a": rng.normal(size=8).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)}
             for n in range(20)}
    parts["only-a"] = {"a": rng.normal(size=8).astype(np.float32)}  # a missing modality still gets a vector
    train = [Event(f"e{u}-{s}", f"u{u}", f"i{(u + s) % 20}", float(s), InteractionType.PLAY)
             for u in range(30) for s in range(4)]
    vectors, spec = learned_table(Settings(), encoders, parts, train, seed=0)
    assert set(vectors) == set(parts) and spec["kind"] == "learned"
    assert all(abs(np.linalg.norm(v) - 1) < 1e-4 for v in vectors.values())
    assert learned_table(Settings(), encoders, parts, train[:3], seed=0) is None  # too few pairs to learn from
