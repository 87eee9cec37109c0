"""Prometheus metrics of a profile worker, served at ``/metrics`` on its HTTP port.

Nothing in the agents knows about them: every event's outcome is what the agents yield (a sink
counts it), batch sizes and index latency are measured around the engine's and the index's calls,
and lags are read from the consumer and the feeders when Prometheus scrapes. docs/operations.md
lists every metric.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from fusionrec.agents.engine import Duplicate, Recommender
from fusionrec.agents.ports import ItemVector, VectorIndex
from fusionrec.agents.recommend import Deferred, NotEmitted
from fusionrec.schemas import DeadLetter, Recommendation

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONTENT_TYPE = "text/plain; version=0.0.4"  # aiohttp adds the charset


class WorkerMetrics:
    """The collectors of one worker, in their own registry (tests build many workers in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("fusionrec_events", "Interactions handled, by outcome: emitted, not_emitted (emission "
                              "policy), duplicate, deferred (item not indexed yet), dead_letter.", ["outcome"], registry=r)
        self.lists = Counter("fusionrec_lists_emitted", "Recommendation lists written to the output topic.", registry=r)
        self.latency = Histogram("fusionrec_event_to_list_seconds", "From an interaction's timestamp to its list "
                                 "being sent.", buckets=LATENCY_BUCKETS, registry=r)
        self.dead_letters = Counter("fusionrec_dead_letters", "Dead letters written, by error code.", ["code"], registry=r)
        self.batch_size = Histogram("fusionrec_batch_size", "Interactions per micro-batch.", buckets=BATCH_BUCKETS,
                                    registry=r)
        self.batch_seconds = Histogram("fusionrec_batch_seconds", "Engine time per micro-batch (profiles, search, "
                                       "ranking).", buckets=LATENCY_BUCKETS, registry=r)
        self.index_seconds = Histogram("fusionrec_index_call_seconds", "Vector index calls, by call.", ["call"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self._lags: dict[str, Any] = {}
        r.register(_LagCollector(self._lags))

    def observe(self, outcome: Any) -> Any:
        """A sink for the agents' outcomes (one per event)."""
        if isinstance(outcome, Recommendation):
            self.events.labels("emitted").inc()
            self.lists.inc()
            if outcome.trigger_timestamp is not None:
                self.latency.observe(max(0.0, time.time() - outcome.trigger_timestamp.timestamp()))
        elif isinstance(outcome, DeadLetter):
            self.events.labels("dead_letter").inc()
            self.dead_letters.labels(outcome.error_code.value).inc()
        elif isinstance(outcome, NotEmitted):
            self.events.labels("not_emitted").inc()
        elif isinstance(outcome, Duplicate):
            self.events.labels("duplicate").inc()
        elif isinstance(outcome, Deferred):
            self.events.labels("deferred").inc()
        return outcome

    def time_batches(self, processor: Recommender) -> None:
        handle_many = processor.handle_many

        def timed(events: Sequence[Any], states: Mapping[str, Any], **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return handle_many(events, states, **kwargs)
            finally:
                self.batch_size.observe(len(events))
                self.batch_seconds.observe(time.perf_counter() - started)

        processor.handle_many = timed  # type: ignore[method-assign]

    def lag(self, name: str, read: Any) -> None:
        """Report ``read()`` (``{label: records behind}``) as ``fusionrec_<name>_lag_records`` at each scrape."""
        self._lags[name] = read

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LagCollector:
    def __init__(self, lags: dict[str, Any]) -> None:
        self.lags = lags

    def collect(self) -> Any:
        for name, read in self.lags.items():
            family = GaugeMetricFamily(f"fusionrec_{name}_lag_records", f"Records not read yet: {name}.",
                                       labels=["source"])
            for source, value in read().items():
                family.add_metric([source], value)
            yield family


class TimedIndex:
    """The index, with each read call's latency observed (writes and admin calls pass through)."""

    def __init__(self, index: VectorIndex, metrics: WorkerMetrics) -> None:
        self.index = index
        self.histogram = metrics.index_seconds

    def get(self, ids: Sequence[str]) -> dict[str, ItemVector]:
        with self.histogram.labels("get").time():
            return self.index.get(ids)

    def search(self, vector: np.ndarray, limit: int) -> list[tuple[str, float]]:
        with self.histogram.labels("search").time():
            return self.index.search(vector, limit)

    def search_many(self, vectors: Sequence[np.ndarray], limit: int) -> list[list[tuple[str, float]]]:
        with self.histogram.labels("search_many").time():
            return self.index.search_many(vectors, limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.index, name)


def consumer_lag(app: Any, topics: Sequence[str]) -> dict[str, float]:
    """Per assigned partition of ``topics``: the high watermark minus the committed offset."""
    consumer = app.consumer
    out = {}
    for tp in sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition)):
        if tp.topic not in topics:
            continue
        high = consumer.highwater(tp)
        committed = consumer._committed_offset.get(tp)  # Faust keeps it; no public accessor
        if high is not None and high >= 0:
            out[f"{tp.topic}[{tp.partition}]"] = float(max(0, high - (committed or 0)))
    return out
