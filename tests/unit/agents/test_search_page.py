"""The /search query string: what it asks for, and a clear refusal of what it cannot mean."""

import pytest
from multidict import MultiDict

from fusionrec.agents.search_page import parse
from fusionrec.schemas import QueryError


def test_a_full_query_string():
    query, options = parse(MultiDict([("q", "trail shoes"), ("user", "u1"), ("k", "5"), ("category", "shoes"),
                                      ("category", "boots"), ("exclude_category", "kids"), ("like", "i9"),
                                      ("like_weight", "0.5"), ("personalization", "0"), ("exclude_seen", "true")]),
                           top_k=10)
    assert (query.text, query.like, query.like_weight, query.text_weight) == ("trail shoes", "i9", 0.5, 1.0)
    assert options["user_id"] == "u1" and options["k"] == 5 and options["exclude_seen"] is True
    assert options["personalization"] == 0.0
    assert options["filters"].include_categories == {"shoes", "boots"}
    assert options["filters"].exclude_categories == {"kids"}
    _, defaults = parse(MultiDict([("q", "x")]), top_k=7)
    assert defaults["k"] == 7 and defaults["user_id"] is None and defaults["personalization"] is None


@pytest.mark.parametrize("pairs, why", [
    ([("q", "x"), ("k", "0")], "k must be between"),
    ([("q", "x"), ("k", "many")], "k must be a number"),
    ([("q", "x"), ("user", "")], "user is not a valid"),
    ([("like", "a\x01b")], "like is not a valid"),
    ([("q", "x"), ("personalization", "-1")], "at least 0"),
    ([("q", "x"), ("text_weight", "nan")], "finite"),
    ([("q", "x"), ("exclude_seen", "maybe")], "true or false"),
])
def test_what_cannot_be_meant_is_a_400(pairs, why):
    with pytest.raises(QueryError, match=why) as caught:
        parse(MultiDict(pairs), top_k=10)
    assert caught.value.status == 400
