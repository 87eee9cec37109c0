import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from fusionrec.schemas import (
    SEARCH_SCHEMA_VERSION,
    DeadLetter,
    ErrorCode,
    EventError,
    Interaction,
    Item,
    Recommendation,
    decode,
)

GOOD = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "like", "timestamp": "2026-01-01T00:00:00Z"}


def test_good_interaction_round_trips():
    ev = decode(Interaction, json.dumps(GOOD).encode(), max_bytes=10_000)
    assert ev.user_id == "u1" and ev.timestamp.tzinfo is not None
    assert decode(Interaction, ev.to_bytes(), max_bytes=10_000) == ev


def test_naive_timestamp_is_utc_and_epoch_numbers_work():
    naive = decode(Interaction, json.dumps({**GOOD, "timestamp": "2026-01-01T00:00:00"}).encode(), max_bytes=10_000)
    epoch = decode(Interaction, json.dumps({**GOOD, "timestamp": 1767225600}).encode(), max_bytes=10_000)
    assert naive.timestamp == epoch.timestamp


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", ErrorCode.MALFORMED_JSON),
        (None, ErrorCode.MALFORMED_JSON),
        (json.dumps({**GOOD, "schema_version": 9}).encode(), ErrorCode.UNSUPPORTED_SCHEMA_VERSION),
        (json.dumps({k: v for k, v in GOOD.items() if k != "user_id"}).encode(), ErrorCode.INVALID_EVENT),
        (json.dumps({**GOOD, "type": "teleport"}).encode(), ErrorCode.INVALID_EVENT),
        (json.dumps({**GOOD, "value": "NaN"}).encode(), ErrorCode.INVALID_EVENT),
        (json.dumps({**GOOD, "user_id": ""}).encode(), ErrorCode.INVALID_EVENT),
        (json.dumps({**GOOD, "surprise": 1}).encode(), ErrorCode.INVALID_EVENT),
        (json.dumps({**GOOD, "context": "x" * 2000}).encode(), ErrorCode.PAYLOAD_TOO_LARGE),
    ],
)
def test_bad_interactions_raise_event_error_with_code(raw, code):
    with pytest.raises(EventError) as info:
        decode(Interaction, raw, max_bytes=1024)
    assert info.value.code is code
    assert info.value.reason


def test_item_text_joins_title_description_tags():
    item = Item(id="x", title="Jazz Night", description="Smoky club.", tags=["swing", "live"])
    assert item.text() == "Jazz Night. Smoky club.. swing live"
    assert Item(id="y").text() == ""


def test_dead_letter_keeps_original_bytes_through_json():
    dl = DeadLetter(source_topic="t", partition=0, offset=5, key=b"\x00k", error_code=ErrorCode.MALFORMED_JSON,
                    reason="bad", original=b"\xff\xfe raw", failed_at="2026-01-01T00:00:00Z")
    back = DeadLetter.model_validate_json(dl.to_bytes())
    assert back.original == b"\xff\xfe raw" and back.key == b"\x00k"


def test_recommendation_is_frozen():
    rec = Recommendation(user_id="u", items=[], model_version="m", generated_at="2026-01-01T00:00:00Z")
    with pytest.raises(ValidationError):
        rec.user_id = "other"  # type: ignore[misc]


def test_search_events_are_schema_version_2_with_words_and_no_item():
    event = Interaction(event_id="e", user_id="u", type="search", query="red shoes", timestamp=datetime.now(UTC))
    assert event.schema_version == SEARCH_SCHEMA_VERSION and event.item_id is None
    assert decode(Interaction, event.to_bytes(), max_bytes=10_000) == event
    ts = '"timestamp": "2026-01-01T00:00:00Z"'
    for raw, why in [
        (f'{{"schema_version": 1, "event_id": "e", "user_id": "u", "type": "search", "query": "x", {ts}}}',
         "schema_version 2"),
        (f'{{"event_id": "e", "user_id": "u", "type": "search", {ts}}}', "needs the query"),
        (f'{{"event_id": "e", "user_id": "u", "type": "search", "query": "x", "item_id": "i", {ts}}}', "no item_id"),
        (f'{{"event_id": "e", "user_id": "u", "type": "like", {ts}}}', "needs an item_id"),
        (f'{{"event_id": "e", "user_id": "u", "item_id": "i", "type": "like", "query": "x", {ts}}}', "only search"),
        (f'{{"event_id": "e", "user_id": "u", "type": "search", "query": "{"x" * 1001}", {ts}}}', "at most 1000"),
    ]:
        with pytest.raises(EventError, match=why) as caught:
            decode(Interaction, raw.encode(), max_bytes=10_000)
        assert caught.value.code is ErrorCode.INVALID_EVENT
    with pytest.raises(EventError, match="understands schema_version 1 or 2"):
        decode(Interaction, f'{{"schema_version": 3, "event_id": "e", "user_id": "u", "item_id": "i", "type": "like", {ts}}}'
               .encode(), max_bytes=10_000)
    # Version 1 events are unchanged.
    old = decode(Interaction, f'{{"event_id": "e", "user_id": "u", "item_id": "i", "type": "like", {ts}}}'.encode(),
                 max_bytes=10_000)
    assert old.schema_version == 1 and b"query" not in old.to_bytes()
