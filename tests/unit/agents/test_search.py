"""Search over a small catalogue with the weightless text encoder: words find their item, "more like
this" leaves the item out, personalisation reorders by the user's history, search events move lists."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from fusionrec.agents.engine import Applied, Recommender, Views
from fusionrec.agents.profile import ProfileModel, ProfileState
from fusionrec.agents.ranking import Filters, RankWeights
from fusionrec.agents.search import Query, Searcher, SearchRequest, SearchWeights
from fusionrec.encoders import EarlyFusion, HashingTextEncoder, make_blocks
from fusionrec.encoders.query import QueryEncoder
from fusionrec.schemas import ErrorCode, EventError, Interaction, Item, QueryError
from fusionrec.streams import MemoryVectorIndex
from fusionrec.streams.index import ItemVector

NOW = datetime(2026, 1, 1, tzinfo=UTC)
WORDS = {"shoes": ["trail running shoes", "red leather shoes", "hiking boots shoes", "suede dress shoes"],
         "music": ["jazz piano record", "rock guitar record", "classical violin record", "folk banjo record"]}


def catalogue(with_encoder: bool = True) -> tuple[Recommender, Searcher]:
    text = HashingTextEncoder(64)
    fusion = EarlyFusion(make_blocks({"text": text}))
    index = MemoryVectorIndex()
    index.ensure_collection(fusion.dim, fusion=fusion.spec())
    views = Views()
    rows = []
    for category, titles in WORDS.items():
        for n, title in enumerate(titles):
            item = Item(id=f"{category}{n}", title=title, category=category, updated_at=NOW)
            views.learn_item(item)
            rows.append(ItemVector(item.id, fusion.fuse([{"text": text.encode([title])[0]}])[0], "hashing"))
    index.upsert(rows)
    queries = QueryEncoder({"text": lambda: text}) if with_encoder else None
    engine = Recommender(index, ProfileModel(), views=views, top_k=4, max_candidates=50, max_event_bytes=10_000,
                         weights=RankWeights(diversity=0.0), queries=queries)
    return engine, Searcher(engine, SearchWeights(pool=8))


def event(n: int, user: str, item: str | None = None, query: str | None = None) -> Interaction:
    kind = "search" if query else "like"
    return Interaction(event_id=f"{user}-{n}", user_id=user, item_id=item, query=query, type=kind,
                       timestamp=NOW + timedelta(seconds=n))


def profile(engine: Recommender, user: str, items: list[str]) -> ProfileState:
    states, _ = engine.handle_many([event(n, user, i) for n, i in enumerate(items)], {})
    return states[user]


def test_words_find_their_item_with_a_reason():
    _, searcher = catalogue()
    got = searcher.search(SearchRequest(Query(text="trail running"), k=3))
    assert got.items[0].item_id == "shoes0"
    assert got.items[0].reason == "matches \u2018trail running\u2019"
    assert got.personalization == 0.0 and got.query == "trail running"


def test_more_like_this_leaves_the_item_out():
    _, searcher = catalogue()
    got = searcher.search(SearchRequest(Query(like="music0"), k=3))
    ids = [i.item_id for i in got.items]
    assert "music0" not in ids
    assert all(i.startswith("music") for i in ids)  # "record" is shared by the music titles only
    assert got.items[0].reason.startswith("like \u201cjazz piano record\u201d")


def test_personalisation_reorders_for_users_with_different_histories():
    engine, searcher = catalogue()
    # "shoes" matches four items about equally; two users who chose different ones see them first.
    a = profile(engine, "a", ["shoes1", "music1"])
    b = profile(engine, "b", ["shoes3", "music3"])
    search = lambda state, p=None: [i.item_id for i in searcher.search(  # noqa: E731
        SearchRequest(Query(text="shoes"), user_id="x", state=state, k=4, personalization=p)).items]
    assert search(a)[0] == "shoes1" and search(b)[0] == "shoes3"
    assert search(a, 0.0) == search(b, 0.0) == search(None)  # plain search ignores who asks
    personal = searcher.search(SearchRequest(Query(text="shoes"), user_id="a", state=a, k=1))
    assert personal.items[0].reason == "matches \u2018shoes\u2019, like items you chose"
    assert personal.personalization == 1.0


def test_filters_and_seen_items():
    engine, searcher = catalogue()
    a = profile(engine, "a", ["shoes1"])
    got = searcher.search(SearchRequest(Query(text="shoes record"), state=a, k=8, exclude_seen=True,
                                        filters=Filters(exclude_categories=frozenset({"music"}))))
    ids = [i.item_id for i in got.items]
    assert ids and "shoes1" not in ids and not any(i.startswith("music") for i in ids)


def test_text_and_like_combine_with_weights():
    _, searcher = catalogue()
    text_only = searcher.search(SearchRequest(Query(text="red", like="music0", like_weight=0.0), k=1))
    assert text_only.items[0].item_id == "shoes1"
    both = searcher.search(SearchRequest(Query(text="red", like="music0", like_weight=3.0), k=2))
    assert both.items[0].item_id.startswith("music")
    assert "matches \u2018red\u2019 and like" in both.items[0].reason


@pytest.mark.parametrize("query, status", [
    (Query(), 400), (Query(text="   "), 400), (Query(text="x" * 1001), 400), (Query(like="nope"), 404),
    (Query(text="shoes", text_weight=-1.0), 400), (Query(text="!!! ???"), 422),
])
def test_bad_queries_are_refused_with_a_status(query, status):
    _, searcher = catalogue()
    with pytest.raises(QueryError) as caught:
        searcher.search(SearchRequest(query))
    assert caught.value.status == status


def test_a_picture_query_needs_an_image_encoder():
    _, searcher = catalogue()
    with pytest.raises(QueryError, match="no image") as caught:
        searcher.search(SearchRequest(Query(image=object())))
    assert caught.value.status == 422


def test_a_search_event_moves_the_next_list_toward_the_query():
    engine, _ = catalogue()
    states, _ = engine.handle_many([event(0, "u", "music0"), event(1, "u", "music1")], {})
    before = states["u"]
    states, [applied] = engine.handle_many([event(2, "u", query="shoes")], states)
    assert isinstance(applied, Applied)
    after = states["u"]
    assert after.seen == before.seen and after.last_query == "shoes"
    assert np.allclose(after.vector(), before.vector())  # the long-term view is what the user chose
    assert engine.recommend(before, "u").items[0].item_id.startswith("music")
    assert applied.recommendation.items[0].item_id.startswith("shoes")
    assert any("matches your search \u2018shoes\u2019" in i.reason for i in applied.recommendation.items)
    # Redelivered: nothing applied twice.
    again, [dup] = engine.handle_many([event(2, "u", query="shoes")], states)
    assert again == {} and dup.event_id == "u-2"


def test_a_search_event_without_a_query_encoder_is_a_dead_letter():
    engine, _ = catalogue(with_encoder=False)
    _, [outcome] = engine.handle_many([event(0, "u", query="shoes")], {})
    assert isinstance(outcome, EventError) and outcome.code is ErrorCode.ENCODE_FAILED
