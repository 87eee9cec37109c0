"""The recommendation engine's pure parts: short-term and interest vectors, statistics, ranking,
filters, diversity and the emission policy."""

import numpy as np
import pytest

from fusionrec.agents.emission import Decision, EmissionConfig, EmissionPolicy
from fusionrec.agents.profile import ProfileConfig, ProfileModel, ProfileState
from fusionrec.agents.ranking import Candidate, Filters, RankWeights, freshness, rank, shortlist
from fusionrec.agents.stats import Catalogue, DecayedCounter, ItemInfo, ItemStats
from fusionrec.schemas import InteractionType as T

JAZZ, SPACE, FOOD = np.eye(3, dtype=np.float32)


def learn(model, events, state=None):
    state = state or ProfileState()
    for n, (item, vec, kind) in enumerate(events):
        state = model.learn_one(state, f"e{n}", item, vec, kind, None, float(n))
    return state


def test_short_term_follows_a_switch_within_a_few_events():
    model = ProfileModel(ProfileConfig(half_life_s=1e12, short_term_alpha=0.35))
    state = learn(model, [(f"j{i}", JAZZ, T.LIKE) for i in range(10)] + [(f"s{i}", SPACE, T.LIKE) for i in range(3)])
    assert state.vector() @ JAZZ > state.vector() @ SPACE  # the long-term view still says jazz
    assert state.short_term() @ SPACE > state.short_term() @ JAZZ  # the short-term view has moved
    assert state.queries()[0][0] == "short"


def test_interests_keep_distinct_tastes_apart():
    model = ProfileModel(ProfileConfig(max_interests=3, interest_threshold=0.5))
    state = learn(model, [("a", JAZZ, T.LIKE), ("b", SPACE, T.LIKE), ("c", JAZZ, T.LIKE), ("d", FOOD, T.PURCHASE)])
    interests = state.interest_vectors()
    assert len(interests) == 3
    found = {int(np.argmax(v)) for v, _ in interests}
    assert found == {0, 1, 2}  # no blurred average: one interest per taste
    shares = {int(np.argmax(v)): w for v, w in interests}
    assert shares[0] > shares[2] > shares[1]  # two likes (4) > a purchase (3) > one like (2)
    # the mean of jazz, space and food would be far from all three; each interest is exact
    assert all(max(v) == pytest.approx(1.0) for v, _ in interests)


def test_interests_are_capped_and_negative_events_do_not_open_one():
    model = ProfileModel(ProfileConfig(max_interests=2, interest_threshold=0.9))
    state = learn(model, [("a", JAZZ, T.LIKE), ("b", SPACE, T.LIKE), ("c", FOOD, T.LIKE), ("d", FOOD + JAZZ, T.DISLIKE)])
    assert len(state.interests) == 2
    assert state.recent == ("a", "b", "c")  # the disliked item is seen but not "recent"
    assert "d" in state.seen


def test_replaying_the_same_stream_twice_leaves_the_profile_identical():
    model = ProfileModel()
    events = [("a", JAZZ, T.LIKE), ("b", SPACE, T.SKIP), ("c", FOOD, T.PURCHASE)]
    once = learn(model, events)
    twice = learn(model, events, once)
    assert twice.to_bytes() == once.to_bytes()


def test_decayed_counter_halves_and_survives_long_gaps():
    c = DecayedCounter(half_life_s=1.0)
    c.add("a", 8.0, now=0.0)
    c.add("b", 1.0, now=3.0)
    assert c.get("a") == pytest.approx(1.0) and c.top(1)[0][0] in {"a", "b"}
    c.add("b", 1.0, now=10_000.0)  # far past the rebase point: no overflow
    assert c.get("b") == pytest.approx(1.0) and c.get("a") < 1e-100


def test_stats_popularity_trending_category_and_idempotency():
    st = ItemStats(popularity_half_life_s=1e9, trending_half_life_s=10.0)
    for n in range(5):
        st.learn_one(f"old{n}", f"u{n}", "classic", 1.0, 0.0, "film")
    for n in range(3):
        st.learn_one(f"new{n}", f"v{n}", "hit", 1.0, 100.0, "music")
    assert st.popular(1)[0][0] == "classic"  # most counted overall
    assert st.popular(1, trending=True)[0][0] == "hit"  # most counted lately
    assert [i for i, _ in st.popular(5, category="film")] == ["classic"]
    assert st.learn_one("new0", "v0", "hit", 1.0, 100.0) is False
    assert st.counts["hit"] == 3
    st.learn_one("skip", "v9", "flop", -0.5, 100.0)
    assert "flop" not in st.counts  # negative feedback is not popularity
    st.learn_one("late", "w1", "classic", 1.0, -50.0)  # an event from before the others, delivered late
    assert st.first_seen == {"classic": -50.0, "hit": 100.0}


def test_cooccurrence_updates_incrementally_and_names_its_source():
    st = ItemStats(recent_per_user=3)
    for n, (u, i) in enumerate([("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "c")]):
        st.learn_one(f"e{n}", u, i, 1.0, float(n))
    assert st.cooc["a"] == {"b": 2.0, "c": 1.0} and st.cooc["b"] == {"a": 2.0}
    top = st.neighbours(["a"], k=5)
    assert [t[0] for t in top] == ["b", "c"] and top[0][1] == 1.0 and top[0][2] == "a"
    st.learn_one("e9", "u4", "x", 1.0, 9.0)
    assert st.neighbours(["x"], k=5) == []
    st.learn_one("e10", "u1", "z", 1.0, 10.0)  # u1's window holds a, b: z co-occurs with both
    assert set(st.cooc["z"]) == {"a", "b"}


def catalogue(**items: ItemInfo) -> Catalogue:
    cat = Catalogue()
    for k, v in items.items():
        cat.learn_one(k, v)
    return cat


def test_rank_blends_signals_with_weights_and_gives_the_main_reason():
    cands = {
        "similar": Candidate("similar", content=0.9, reasons={"content": "similar to X"}),
        "together": Candidate("together", cooccurrence=1.0, reasons={"cooccurrence": "often chosen with X"}),
        "hit": Candidate("hit", popularity=1.0, reasons={"popularity": "popular now"}),
    }
    kw = {"k": 3, "catalogue": Catalogue(), "exclude": set(), "filters": Filters(), "now": 0.0}
    by_content = rank(cands, weights=RankWeights(content=1, cooccurrence=0.5, popularity=0.2, diversity=0), **kw)
    assert [r.item_id for r in by_content] == ["similar", "together", "hit"]
    assert [r.reason for r in by_content] == ["similar to X", "often chosen with X", "popular now"]
    by_pop = rank(cands, weights=RankWeights(content=0.1, cooccurrence=0.1, popularity=1, diversity=0), **kw)
    assert by_pop[0].item_id == "hit"


def test_rank_filters_seen_unavailable_and_categories():
    cat = catalogue(a=ItemInfo("A", "shoes"), b=ItemInfo("B", "shoes", available=False), c=ItemInfo("C", "hats"),
                    d=ItemInfo("D", "bags"))
    cands = {i: Candidate(i, content=s) for i, s in zip("abcde", [0.9, 0.8, 0.7, 0.6, 0.5], strict=False)}
    w = RankWeights(diversity=0)
    ids = lambda **kw: [r.item_id for r in rank(cands, k=10, weights=w, catalogue=cat, now=0.0, **kw)]  # noqa: E731
    assert ids(exclude={"a"}, filters=Filters()) == ["c", "d", "e"]  # b is unavailable; e unknown is allowed
    assert ids(exclude=set(), filters=Filters(include_categories=frozenset({"hats", "bags"}))) == ["c", "d"]
    assert ids(exclude=set(), filters=Filters(exclude_categories=frozenset({"shoes"}))) == ["c", "d", "e"]


def test_freshness_boosts_new_items():
    cat = catalogue(old=ItemInfo("Old", updated_at=0.0 + 1), new=ItemInfo("New", updated_at=1_000_000.0))
    cands = {"old": Candidate("old", content=0.5), "new": Candidate("new", content=0.45)}
    ranked = rank(cands, k=2, weights=RankWeights(freshness=0.2, diversity=0, freshness_half_life_s=86_400.0),
                  catalogue=cat, exclude=set(), filters=Filters(), now=1_000_000.0)
    assert [r.item_id for r in ranked] == ["new", "old"]
    assert freshness(1_000_000.0 - 86_400.0, 1_000_000.0, 86_400.0) == pytest.approx(0.5)


def test_mmr_trades_relevance_for_diversity():
    vecs = {"a1": JAZZ, "a2": JAZZ * 0.99 + SPACE * 0.01, "b": SPACE}
    cands = {"a1": Candidate("a1", content=0.9), "a2": Candidate("a2", content=0.88), "b": Candidate("b", content=0.6)}
    kw = {"k": 2, "catalogue": Catalogue(), "exclude": set(), "filters": Filters(), "now": 0.0, "vectors": vecs}
    assert [r.item_id for r in rank(cands, weights=RankWeights(diversity=0.0), **kw)] == ["a1", "a2"]
    assert [r.item_id for r in rank(cands, weights=RankWeights(diversity=0.3), **kw)] == ["a1", "b"]


def test_emission_only_changed_rate_cap_and_coalescing():
    p = EmissionPolicy(EmissionConfig(min_interval_s=1.0, only_changed=True))
    assert p.offer("u", ["a"], now=0.0, trigger=1) is Decision.EMIT
    assert p.offer("u", ["a"], now=5.0, trigger=2) is Decision.UNCHANGED
    assert p.offer("u", ["b"], now=5.1, trigger=3) is Decision.EMIT
    for t, trig in [(5.2, 4), (5.3, 5), (5.4, 6)]:  # a burst: held, newest trigger kept
        assert p.offer("u", ["c", str(t)], now=t, trigger=trig) is Decision.HELD
    assert p.due(now=5.5) == [] and p.due(now=6.2) == [("u", 6)] and p.due(now=7.0) == []
    assert p.offer("v", ["a"], now=5.2, trigger=7) is Decision.EMIT  # users are independent
    always = EmissionPolicy(EmissionConfig(min_interval_s=0.0, only_changed=False))
    assert [always.offer("u", ["a"], now=0.0, trigger=n) for n in range(3)] == [Decision.EMIT] * 3


def test_rank_keeps_a_share_of_the_list_for_new_items_that_match_content():
    cands = {f"hit{n}": Candidate(f"hit{n}", cooccurrence=1.0 - n / 10) for n in range(1, 5)}
    cands |= {
        "new1": Candidate("new1", content=0.5, reasons={"content": "similar to X"}),
        "new2": Candidate("new2", content=0.4),
        "unmatched": Candidate("unmatched", popularity=0.1),  # new, but nothing says the user would like it
        "known": Candidate("known", content=0.6),  # matches, but has enough interactions already
    }
    counts = {"hit1": 90, "hit2": 80, "hit3": 70, "hit4": 60, "new1": 0, "new2": 4, "unmatched": 0, "known": 5}
    kw = {"k": 4, "catalogue": Catalogue(), "exclude": set(), "filters": Filters(), "now": 0.0, "interactions": counts}
    plain = RankWeights(content=0.1, cooccurrence=1, popularity=0.1, diversity=0)
    assert [r.item_id for r in rank(cands, weights=plain, **kw)] == ["hit1", "hit2", "hit3", "hit4"]
    shared = RankWeights(**{**plain.__dict__, "new_item_share": 0.5})
    ranked = rank(cands, weights=shared, **kw)
    assert [r.item_id for r in ranked] == ["hit1", "hit2", "new1", "new2"]
    assert ranked[2].reason == "new: similar to X"
    assert rank(cands, weights=shared, **{**kw, "interactions": None}) == rank(cands, weights=plain, **kw)


def test_shortlist_cuts_by_weighted_score_and_leaves_out_filtered_items():
    cands = {f"pop{n}": Candidate(f"pop{n}", popularity=1.0 - n / 1000) for n in range(100)}
    cands |= {"match": Candidate("match", content=0.2), "hidden": Candidate("hidden", content=0.9)}
    catalogue = Catalogue()
    catalogue.learn_one("hidden", ItemInfo(category="news"))
    kw = {"catalogue": catalogue, "exclude": {"pop0"}, "filters": Filters(exclude_categories=frozenset({"news"})), "now": 0.0}
    content_only = shortlist(cands, 80, weights=RankWeights(content=1, popularity=0, freshness=0), **kw)
    assert content_only[0] == "match" and "hidden" not in content_only and "pop0" not in content_only
    assert len(content_only) == 80
    popular = shortlist(cands, 80, weights=RankWeights(content=0.1, popularity=1, freshness=0), **kw)
    assert popular[:2] == ["pop1", "pop2"] and "match" not in popular


def test_newness_lifts_a_new_release_catching_on_above_an_older_hit() -> None:
    from fusionrec.agents.engine import Recommender, Views
    from fusionrec.streams.index import MemoryVectorIndex

    day = 86_400.0
    views = Views(stats=ItemStats(popularity_half_life_s=1e12, trending_half_life_s=1e12))
    for n in range(10):  # chosen steadily for 100 days
        views.learn_interaction(f"o{n}", f"a{n}", "old-hit", 1.0, (1 + n * 10) * day)
    for n in range(7):  # first chosen 2 days ago, and fast
        views.learn_interaction(f"r{n}", f"b{n}", "new-release", 1.0, 98 * day + n)

    def top(newness: float) -> list[str]:
        weights = RankWeights(content=0.0, cooccurrence=0.0, popularity=1.0, freshness=0.0, diversity=0.0,
                              newness=newness, newness_half_life_s=14 * day)
        rec = Recommender(MemoryVectorIndex(), ProfileModel(), views=views, top_k=2, max_candidates=50,
                          max_event_bytes=10_000, weights=weights)
        return [i.item_id for i in rec.recommend(ProfileState(), "new-user", now=100 * day).items]

    assert top(0.0) == ["old-hit", "new-release"]
    assert top(1.0) == ["new-release", "old-hit"]


def test_decayed_counter_top_kept_up_to_date_equals_a_full_scan():
    rng = np.random.default_rng(4)
    c = DecayedCounter(half_life_s=50.0)
    t = 0.0
    for n in range(3000):
        t += float(rng.exponential(1.0)) if n != 1500 else 20_000.0  # one gap long enough to rescale
        c.add(f"i{rng.integers(0, 200)}", float(rng.choice([1.0, 2.0, 0.5])), now=t)
        if n % 7 == 0:
            for k in (1, 10, 50):
                scale = 2.0 ** ((c.ref_time - c._base) / c.half_life_s)
                scan = sorted(((key, v / scale) for key, v in c._raw.items() if v > 0), key=lambda kv: (-kv[1], kv[0]))
                assert c.top(k) == scan[:k]
