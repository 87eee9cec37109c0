"""The one exception tree of fusionrec.

Every layer raises its own subclass and wraps the client error it caught (``raise ... from exc``),
so callers can catch by layer without importing faust, confluent-kafka or pymilvus::

    FusionrecError
    ├── ConfigError          settings that cannot work (bad URL, missing model directory)
    ├── EventError           one bad input event; carries the dead-letter ``code``
    ├── QueryError           a search that cannot be answered as asked; carries the HTTP ``status``
    ├── EncoderError         a model could not be loaded or failed on a batch
    ├── VectorIndexError     the vector store refused an operation (this request is wrong)
    │   └── VectorStoreUnavailable  the store did not answer (down, restarting, overloaded): wait and retry
    └── StreamError          the broker or a Kafka client failed (publish, consume, topic admin)
        └── EmbeddedStackError  the local broker / Milvus processes could not start
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why an event went to the dead-letter topic; stable strings, part of the public contract."""

    MALFORMED_JSON = "malformed_json"
    INVALID_EVENT = "invalid_event"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    KEY_MISMATCH = "key_mismatch"
    UNKNOWN_ITEM = "unknown_item"
    BAD_VECTOR = "bad_vector"
    MEDIA_NOT_ALLOWED = "media_not_allowed"
    MEDIA_TOO_LARGE = "media_too_large"
    MEDIA_FETCH_FAILED = "media_fetch_failed"
    MEDIA_UNDECODABLE = "media_undecodable"
    NOTHING_TO_ENCODE = "nothing_to_encode"
    ENCODE_FAILED = "encode_failed"
    INDEX_REJECTED = "index_rejected"
    INTERNAL_ERROR = "internal_error"


class FusionrecError(Exception):
    """Root of every error fusionrec raises on purpose."""


class ConfigError(FusionrecError):
    """Settings that cannot work."""


class EventError(FusionrecError):
    """One input event that cannot be processed; it becomes one dead-letter record."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class QueryError(FusionrecError):
    """A search query that cannot be answered as asked (empty, too long, an unknown item, a picture that
    does not decode); ``status`` is the HTTP status it is answered with."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class EncoderError(FusionrecError):
    """A model could not be loaded or failed on a batch."""


class VectorIndexError(FusionrecError):
    """The vector store refused an operation: retrying the same request will not help."""


class VectorStoreUnavailable(VectorIndexError):
    """The vector store could not be reached or is not serving yet; the same request may work later."""


class StreamError(FusionrecError):
    """The broker or a Kafka client failed."""


class EmbeddedStackError(StreamError):
    """The embedded broker or Milvus could not be started."""
