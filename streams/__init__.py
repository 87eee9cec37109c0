"""Topics, clients, the Faust apps, the vector index and the embedded stack."""

from .client import Publisher, Received, RecommendationConsumer, kafka_config
from .embedded import EmbeddedStack
from .index import ItemVector, MemoryVectorIndex, MilvusVectorIndex, VectorIndex, open_index
from .media import MediaFetcher, MediaPolicy, MemoryMediaFetcher, PolicyMediaFetcher
from .settings import Settings
from .sinks import EventSink, FaustSink, MemorySink
from .topics import TopicSpec, create_topics, topic_specs

__all__ = [
    "EmbeddedStack",
    "EventSink",
    "FaustSink",
    "ItemVector",
    "MediaFetcher",
    "MediaPolicy",
    "MemoryMediaFetcher",
    "MemorySink",
    "MemoryVectorIndex",
    "MilvusVectorIndex",
    "PolicyMediaFetcher",
    "Publisher",
    "Received",
    "RecommendationConsumer",
    "Settings",
    "TopicSpec",
    "VectorIndex",
    "create_topics",
    "kafka_config",
    "open_index",
    "topic_specs",
]
