"""Each package's public API is what its __all__ says, and every name in it exists."""

import importlib

import pytest

EXPECTED = {
    "fusionrec.schemas": {
        "MAX_QUERY_CHARS", "SCHEMA_VERSION", "SEARCH_SCHEMA_VERSION", "ConfigError", "DeadLetter", "EmbeddedStackError",
        "EncoderError", "ErrorCode", "Event", "EventError", "FusionrecError", "Interaction", "InteractionType", "Item",
        "MediaKind", "MediaRef", "QueryError", "Recommendation", "RecommendedItem", "SearchResults", "StoredVector",
        "StreamError", "VectorIndexError", "VectorStoreUnavailable", "check_not_ahead", "decode", "valid_id",
    },
    "fusionrec.encoders": {
        "DEFAULT_TEXT_MODEL", "MODALITIES", "Block", "EarlyFusion", "Encoder", "Fusion", "HashingTextEncoder",
        "LateFusion", "LearnedFusion", "QueryEncoder", "TextEncoder", "VectorPassThrough", "encode_raw", "fusion_from_spec",
        "l2_normalize",
        "load_encoders", "load_text_encoder", "make_blocks", "make_fusion", "query_transform", "resolve_text_model_dir",
    },
    "fusionrec.agents": {
        "DEFAULT_EVENT_WEIGHTS", "Candidate", "Catalogue", "Decision", "EmissionConfig", "EmissionPolicy", "Filters",
        "ItemInfo", "ItemStats", "ProfileConfig", "ProfileModel", "ProfileState", "Query", "RankWeights", "Ranked",
        "SearchRequest", "SearchWeights", "Searcher",
        "overfetch", "rank",
    },
    "fusionrec.streams": {
        "Client", "EmbeddedStack", "EventSink", "FaustSink", "ItemVector", "MediaFetcher", "MediaPolicy", "MemoryMediaFetcher",
        "MemorySink", "MemoryVectorIndex", "PolicyMediaFetcher",
        "MilvusVectorIndex", "Publisher", "Received", "RecommendationConsumer", "Settings", "TopicSpec",
        "VectorIndex", "create_topics", "kafka_config", "open_index", "topic_specs",
    },
    "fusionrec.streams.evaluation": {
        "Dataset", "Estimate", "EvalConfig", "Evaluation", "Event", "Split", "evaluate", "global_split", "load_dataset",
        "prequential", "temporal_split",
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_all_lists_the_public_api(name):
    module = importlib.import_module(name)
    assert set(module.__all__) == EXPECTED[name]
    for attr in module.__all__:
        assert hasattr(module, attr), attr


def test_pure_logic_imports_no_io_libraries():
    import subprocess
    import sys

    code = (
        "import sys, fusionrec.agents;"
        "bad = [m for m in ('faust', 'confluent_kafka', 'pymilvus', 'torch', 'aiokafka') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
