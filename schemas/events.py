"""Typed, versioned payloads of every topic.

One model per topic; stages pass these objects, never raw dicts. Each payload carries
``schema_version`` so a consumer can refuse what it does not understand instead of guessing.
Timestamps are timezone-aware; a naive timestamp is read as UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from fusionrec.schemas.errors import ErrorCode, EventError

SCHEMA_VERSION = 1
SEARCH_SCHEMA_VERSION = 2  # interactions: version 2 adds ``search`` events (a ``query`` instead of an item)
MAX_VALUE = 1e6  # the largest |value| an interaction may carry (ratings, watch ratios, counts)

Id = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$")]


_ID = TypeAdapter(Id)


def valid_id(value: str) -> bool:
    """Whether ``value`` could be an item, user or event id (what HTTP paths are checked against).

    >>> valid_id("u-42"), valid_id(""), valid_id("u" * 257)
    (True, False, False)
    """
    try:
        _ID.validate_python(value)
    except ValidationError:
        return False
    return True


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Event(BaseModel):
    """Base of every payload: frozen, strict about unknown fields, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    schema_version: Literal[1] = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class MediaKind(StrEnum):
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"


class MediaRef(BaseModel):
    """Where one piece of media is: a ``uri`` (``file://``, ``http(s)://``) or small inline ``data``."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    uri: str | None = Field(default=None, min_length=1, max_length=2_048)
    data: bytes | None = None
    content_type: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _one_source(self) -> MediaRef:
        if (self.uri is None) == (self.data is None):
            raise ValueError("give exactly one of uri or data")
        if self.data is not None and not self.data:
            raise ValueError("data is empty")
        return self


VectorName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class Item(Event):
    """A catalogue item as the app publishes it (topic ``items``, key = item id).

    ``media`` holds image/audio/video references; ``vectors`` holds ready-made embeddings the app
    computed itself (e.g. ``{"clip": [...]}``), each name declared with its dimension in the settings.
    A newer ``version`` of an item replaces the stored one.
    """

    id: Id
    version: int = Field(default=1, ge=1, le=2**63 - 1)  # Milvus stores it as INT64
    title: str = Field(default="", max_length=1_000)
    description: str = Field(default="", max_length=20_000)
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=100)
    category: str | None = Field(default=None, max_length=200)
    available: bool = True
    updated_at: datetime | None = None
    media: dict[MediaKind, MediaRef] = Field(default_factory=dict)
    vectors: dict[VectorName, Annotated[list[float], Field(min_length=1, max_length=8_192)]] = Field(
        default_factory=dict, max_length=16
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    _aware_updated = field_validator("updated_at")(lambda v: None if v is None else _aware(v))

    def text(self) -> str:
        """The text the text encoder sees: title, description and tags."""
        parts = [self.title, self.description, " ".join(self.tags)]
        return ". ".join(p for p in parts if p)


class InteractionType(StrEnum):
    VIEW = "view"
    CLICK = "click"
    PLAY = "play"
    LIKE = "like"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"
    RATING = "rating"
    SKIP = "skip"
    DISLIKE = "dislike"
    SEARCH = "search"


MAX_QUERY_CHARS = 1_000


class Interaction(Event):
    """One user action on one item (topic ``interactions``, key = user id).

    Schema version 2 adds ``search``: what a user searched for, with the words in ``query`` and no
    ``item_id``; the profile worker folds the query into the user's short-term interest. A search
    event without ``schema_version`` is version 2; every other type is unchanged from version 1.
    """

    # What the validators below check, for apps that validate with the JSON Schema.
    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"type": {"const": "search"}}, "required": ["type"]},
        "then": {"required": ["query"], "not": {"required": ["item_id"]},
                 "properties": {"schema_version": {"const": 2}}},
        "else": {"required": ["item_id"], "not": {"required": ["query"]}},
    })

    schema_version: Literal[1, 2] = SCHEMA_VERSION
    event_id: Id
    user_id: Id
    item_id: Id | None = None
    type: InteractionType
    query: str | None = Field(default=None, min_length=1, max_length=MAX_QUERY_CHARS)
    # Bounded: a rating of 1e308 would push a profile's sums past float32 and leave it infinite for good.
    value: float | None = Field(default=None, ge=-MAX_VALUE, le=MAX_VALUE)
    timestamp: datetime
    context: dict[str, Any] = Field(default_factory=dict)

    _aware_ts = field_validator("timestamp")(_aware)

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("value must be a finite number")
        return v

    @model_validator(mode="before")
    @classmethod
    def _search_is_v2(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == InteractionType.SEARCH and "schema_version" not in data:
            return {**data, "schema_version": SEARCH_SCHEMA_VERSION}
        return data

    @model_validator(mode="after")
    def _item_or_query(self) -> Interaction:
        if self.type is InteractionType.SEARCH:
            if self.schema_version < SEARCH_SCHEMA_VERSION:
                raise ValueError(f"search events need schema_version {SEARCH_SCHEMA_VERSION}")
            if self.query is None or not self.query.strip():
                raise ValueError("a search event needs the query's words in `query`")
            if self.item_id is not None:
                raise ValueError("a search event names no item_id")
        else:
            if self.item_id is None:
                raise ValueError(f"a {self.type} event needs an item_id")
            if self.query is not None:
                raise ValueError("only search events carry a query")
        return self


class RecommendedItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: str
    score: float
    reason: str = ""


class Recommendation(Event):
    """A user's fresh list (topic ``recommendations``, key = user id)."""

    user_id: str
    items: list[RecommendedItem]
    model_version: str
    generated_at: datetime
    trigger_event_id: str | None = None
    trigger_timestamp: datetime | None = None


class SearchResults(Event):
    """The answer to a search (``GET``/``POST /search`` on a profile worker): the best matches first.

    ``personalization`` is how much the user's profile counted (0: plain search, or no user given).
    """

    query: str | None = None
    image: bool = False
    like: str | None = None
    user_id: str | None = None
    personalization: float = 0.0
    items: list[RecommendedItem]
    model_version: str
    generated_at: datetime


class StoredVector(Event):
    """An item vector the encoder stored (topic ``item-vectors``, key = ``<collection>/<item id>``): what profile
    workers keep their in-process copy of the index from. ``vector`` is little-endian float32."""

    id: str
    collection: str
    vector: bytes
    encoder_version: str
    fusion_version: str = ""
    category: str = ""
    available: bool = True
    updated_at_ms: int = 0
    version: int = 1


class DeadLetter(Event):
    """An input that could not be processed, with why and its original bytes (topic ``dead-letters``).

    A large original is cut so that the letter can always be written: ``original_truncated`` then
    says so, ``original_size`` gives the record's real size, and the whole record is still at
    ``source_topic``/``partition``/``offset``.
    """

    source_topic: str
    partition: int
    offset: int
    key: bytes | None = None
    error_code: ErrorCode
    reason: str
    original: bytes
    original_size: int | None = None
    original_truncated: bool = False
    failed_at: datetime


E = TypeVar("E", bound=Event)


def check_not_ahead(when: datetime | None, field: str, *, max_ahead_s: float, now: float) -> None:
    """Refuse a time more than ``max_ahead_s`` past ``now`` (epoch seconds): a clock set wrong or a
    unit mix-up (microseconds read as milliseconds), which would otherwise outweigh every real event.

    >>> check_not_ahead(datetime(9999, 1, 1, tzinfo=UTC), "timestamp", max_ahead_s=86_400, now=0.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fusionrec.schemas.errors.EventError: invalid_event: timestamp 9999-01-01T00:00:00+00:00 is ...
    """
    if when is not None and when.timestamp() > now + max_ahead_s:
        raise EventError(
            ErrorCode.INVALID_EVENT,
            f"{field} {when.isoformat()} is {when.timestamp() - now:.0f} s ahead of this worker's clock "
            f"(FUSIONREC_MAX_FUTURE_S allows {max_ahead_s:g})",
        )


def decode(model: type[E], raw: bytes | None, *, max_bytes: int) -> E:
    """Parse and validate one payload, or raise :class:`EventError` with the dead-letter code."""
    if raw is None:
        raise EventError(ErrorCode.MALFORMED_JSON, "empty message value")
    if len(raw) > max_bytes:
        raise EventError(ErrorCode.PAYLOAD_TOO_LARGE, f"{len(raw)} bytes > limit {max_bytes}")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise EventError(ErrorCode.MALFORMED_JSON, errors[0]["msg"]) from exc
        if any(e["loc"] == ("schema_version",) for e in errors):
            known = " or ".join(map(str, get_args(model.model_fields["schema_version"].annotation)))
            raise EventError(
                ErrorCode.UNSUPPORTED_SCHEMA_VERSION, f"{model.__name__} understands schema_version {known}"
            ) from exc
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in errors[:5])
        raise EventError(ErrorCode.INVALID_EVENT, f"{model.__name__}: {detail}") from exc
