"""Topics, clients, the Faust apps, the vector index and the embedded stack."""

from fusionrec.agents.ports import EventSink, MediaFetcher
from fusionrec.encoders.media.fetch import MediaPolicy, MemoryMediaFetcher, PolicyMediaFetcher
from fusionrec.streams.client import Client
from fusionrec.streams.embedded.stack import EmbeddedStack
from fusionrec.streams.index import ItemVector, MemoryVectorIndex, MilvusVectorIndex, VectorIndex, open_index
from fusionrec.streams.kafka.client import Publisher, Received, RecommendationConsumer
from fusionrec.streams.kafka.config import kafka_config
from fusionrec.streams.kafka.sinks import FaustSink, MemorySink
from fusionrec.streams.kafka.topics import TopicSpec, create_topics, topic_specs
from fusionrec.streams.settings import Settings

__all__ = [
    "Client",
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
