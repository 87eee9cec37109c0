"""Event models of every topic, the error tree and the dead-letter codes."""

from .errors import (
    ConfigError,
    EmbeddedStackError,
    EncoderError,
    ErrorCode,
    EventError,
    FusionrecError,
    StreamError,
    VectorIndexError,
)
from .events import (
    SCHEMA_VERSION,
    DeadLetter,
    Event,
    Interaction,
    InteractionType,
    Item,
    MediaKind,
    MediaRef,
    Recommendation,
    RecommendedItem,
    decode,
)

__all__ = [
    "SCHEMA_VERSION",
    "ConfigError",
    "DeadLetter",
    "EmbeddedStackError",
    "EncoderError",
    "ErrorCode",
    "Event",
    "EventError",
    "FusionrecError",
    "Interaction",
    "InteractionType",
    "Item",
    "MediaKind",
    "MediaRef",
    "Recommendation",
    "RecommendedItem",
    "StreamError",
    "VectorIndexError",
    "decode",
]
