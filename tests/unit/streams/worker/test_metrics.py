"""The profile worker's Prometheus metrics count what the agents yield and time the engine's calls."""

from datetime import UTC, datetime, timedelta

import numpy as np

from fusionrec.agents.engine import Duplicate, Recommender, Views
from fusionrec.agents.profile import ProfileModel
from fusionrec.agents.recommend import Deferred
from fusionrec.schemas import DeadLetter, ErrorCode, Interaction, Recommendation
from fusionrec.streams import MemoryVectorIndex
from fusionrec.streams.index import ItemVector
from fusionrec.streams.worker.metrics import TimedIndex, WorkerMetrics


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_outcomes_lists_latency_and_dead_letters_are_counted():
    m = WorkerMetrics()
    now = datetime.now(UTC)
    m.observe(Recommendation(user_id="u", items=[], model_version="x", generated_at=now,
                             trigger_event_id="e1", trigger_timestamp=now - timedelta(seconds=0.2)))
    m.observe(DeadLetter(source_topic="t", partition=0, offset=1, error_code=ErrorCode.MALFORMED_JSON, reason="bad",
                         original=b"{", failed_at=now))
    m.observe(Duplicate("e1"))
    m.observe(Deferred("e2", 1))
    assert value(m, "fusionrec_events_total", outcome="emitted") == 1
    assert value(m, "fusionrec_events_total", outcome="duplicate") == 1
    assert value(m, "fusionrec_events_total", outcome="deferred") == 1
    assert value(m, "fusionrec_dead_letters_total", code="malformed_json") == 1
    assert value(m, "fusionrec_lists_emitted_total") == 1
    assert value(m, "fusionrec_event_to_list_seconds_bucket", le="0.15") == 0
    assert value(m, "fusionrec_event_to_list_seconds_bucket", le="0.25") == 1
    m.lag("views", lambda: {"items": 3.0})
    text = m.render().decode()
    assert 'fusionrec_views_lag_records{source="items"} 3.0' in text


def test_batches_and_index_calls_are_timed():
    m = WorkerMetrics()
    index = MemoryVectorIndex()
    index.ensure_collection(2)
    index.upsert([ItemVector("a", np.array([1, 0], dtype=np.float32), "v"),
                  ItemVector("b", np.array([0, 1], dtype=np.float32), "v")])
    engine = Recommender(TimedIndex(index, m), ProfileModel(), views=Views(), top_k=2, max_candidates=10,
                         max_event_bytes=10_000)
    m.time_batches(engine)
    events = [Interaction(event_id=f"e{n}", user_id=f"u{n}", item_id="a", type="like", timestamp=datetime.now(UTC))
              for n in range(3)]
    _, results = engine.handle_many(events, {})
    assert len(results) == 3
    assert value(m, "fusionrec_batch_size_count") == 1 and value(m, "fusionrec_batch_size_sum") == 3
    assert value(m, "fusionrec_index_call_seconds_count", call="search_many") == 1
    assert value(m, "fusionrec_index_call_seconds_count", call="get") >= 1
