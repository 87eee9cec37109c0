"""Topics, clients, the Faust apps, the vector index and the embedded stack."""

from fusionrec.streams.kafka.client import Publisher, Received, RecommendationConsumer, kafka_config
from fusionrec.streams.embedded.stack import EmbeddedStack
from fusionrec.streams.index import ItemVector, MemoryVectorIndex, MilvusVectorIndex, VectorIndex, open_index
from fusionrec.encoders.media.fetch import MediaFetcher, MediaPolicy, MemoryMediaFetcher, PolicyMediaFetcher
from fusionrec.streams.settings import Settings
from fusionrec.streams.kafka.sinks import EventSink, FaustSink, MemorySink
from fusionrec.streams.kafka.topics import TopicSpec, create_topics, topic_specs

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
