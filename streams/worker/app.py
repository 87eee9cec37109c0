"""The Faust apps. Encoding and profiles are separate apps (separate consumer groups), so GPU
encoder workers and CPU profile workers scale independently; parallelism = partitions."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Mapping
from typing import Any, Literal

import faust
from threadpoolctl import threadpool_limits

from fusionrec.agents import encode_items, pages, recommend, search_page
from fusionrec.agents.emission import EmissionConfig, EmissionPolicy
from fusionrec.agents.ports import EventSink, MediaFetcher
from fusionrec.encoders import Encoder
from fusionrec.encoders.media.fetch import PolicyMediaFetcher
from fusionrec.streams.build import (
    build_recommender,
    build_searcher,
    load_encoders,
    make_fusion,
    media_limits,
    media_policy,
    query_encoder,
)
from fusionrec.streams.embedded import tansu
from fusionrec.streams.index import PublishingIndex, ReplicaIndex, VectorIndex, open_index
from fusionrec.streams.kafka.sinks import FaustSink
from fusionrec.streams.settings import Settings
from fusionrec.streams.worker.faust_fixes import InOrder, guard_rebalances
from fusionrec.streams.worker.metrics import CONTENT_TYPE, TimedIndex, WorkerMetrics, consumer_lag
from fusionrec.streams.worker.views import ViewFeeder

logger = logging.getLogger(__name__)

Role = Literal["encoder", "profiles"]


class _BadRequestLog(logging.Filter):
    """aiohttp logs a request it cannot even parse (a 10,000-character path) at ERROR with a
    traceback, after answering it 400; a client's mistake is a one-line warning here."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args, record.exc_info, record.exc_text = "refused a bad HTTP request: %s", (exc,), None, None
        return True


_BAD_REQUEST_LOG = _BadRequestLog()


def _raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    # Raw bytes in and out: decoding is the agent's job, so a bad payload becomes a dead letter
    # instead of a deserialisation crash inside Faust.
    return app.topic(name, key_serializer="raw", value_serializer="raw", partitions=partitions)


def faust_credentials(settings: Settings) -> Any:
    import ssl

    context = None
    if "SSL" in settings.kafka_security_protocol:
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_ca_location) if settings.kafka_ssl_ca_location else None
        )
    if settings.kafka_security_protocol.startswith("SASL"):
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username or "", password=password,
            mechanism=settings.kafka_sasl_mechanism, ssl_context=context,
        )
    return faust.SSLCredentials(context)


def rocksdb_options(memory_mb: int) -> dict[str, int]:
    """RocksDB memory for one table partition, about ``memory_mb`` at most.

    Faust's defaults are 3 write buffers of 64 MB and a 2 GB block cache per partition: a profile
    worker's memory grows with every profile written until those fill (in a 30-minute soak it was
    still growing by about 300 MB an hour). Write buffers take a quarter, the block cache the rest.
    """
    mb = 2**20
    return {"write_buffer_size": max(1, memory_mb // 8) * mb, "max_write_buffer_number": 2,
            "block_cache_size": max(1, memory_mb * 5 // 8) * mb, "block_cache_compressed_size": max(1, memory_mb // 8) * mb}


def create_app(
    settings: Settings,
    role: Role,
    *,
    index: VectorIndex | None = None,
    encoders: Mapping[str, Encoder] | None = None,
    sink: EventSink | None = None,
    media: MediaFetcher | None = None,
) -> faust.App:
    """A Faust app for ``role``. Collaborators default to what ``settings`` name; tests pass twins."""
    datadir = settings.data_dir / "faust" / settings.app_id(role)
    datadir.mkdir(parents=True, exist_ok=True)
    conf: dict[str, Any] = {
        "broker": f"kafka://{settings.require_bootstrap()}",
        "store": settings.table_store,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "consumer_auto_offset_reset": "earliest",
        "datadir": str(datadir),
        # Only the profile worker serves HTTP (on-demand lists); bound to the configured host.
        "web_enabled": role == "profiles",
        "web_bind": settings.web_host,
        "web_host": settings.web_host,
        "web_port": settings.web_port,
        "table_standby_replicas": 0,
    }
    if settings.kafka_security_protocol != "PLAINTEXT":
        conf["broker_credentials"] = faust_credentials(settings)
    if settings.is_tansu:
        conf.update(tansu.FAUST_SETTINGS)
        tansu.patch_faust(settings.require_bootstrap(), settings.local_fetch_wait_ms)
    app = faust.App(settings.app_id(role), **conf)
    sink = sink or FaustSink(app)
    if index is None:
        uri = settings.require_milvus_uri()
        index = open_index(uri, settings.collection, token=settings.milvus_token.get_secret_value())
        if uri.startswith("memory://"):
            pass  # one process, nothing to replicate
        elif role == "encoder":
            index = PublishingIndex(index, settings)
        elif settings.index_replica:
            index = ReplicaIndex(index, settings)

    guard_rebalances(app, [settings.items_topic] if role == "encoder"
                     else [settings.interactions_topic, settings.retry_topic])
    if role == "encoder":
        encoders = encoders or load_encoders(settings)
        encode_items.register(
            app,
            topic=_raw_topic(app, settings.items_topic, settings.partitions),
            processor=encode_items.ItemEncoder(
                encoders, make_fusion(settings, encoders), index, media or PolicyMediaFetcher(media_policy(settings)),
                max_event_bytes=settings.max_event_bytes, limits=media_limits(settings),
                threads=settings.media_fetch_threads, max_future_s=settings.max_future_s,
            ),
            sink=sink,
            dead_letters=settings.dead_letters_topic,
            batch_size=settings.encode_batch_size,
            batch_wait_s=settings.encode_batch_wait_s,
        )
    else:
        # Searches are small matrix products, dozens a second: OpenBLAS's idle threads spin between
        # them and burn a whole core (measured: 100% vs 3% of a core at 50 products/s).
        threadpool_limits(1, user_api="blas")
        table = app.Table(
            "profiles",
            default=None,
            partitions=settings.partitions,
            key_type=bytes,  # bytes in and out ("raw" codec); the agent owns the encoding
            value_type=bytes,
            options=rocksdb_options(settings.table_memory_mb) if settings.table_store.startswith("rocksdb") else None,
        )
        metrics = WorkerMetrics()
        processor = build_recommender(settings, TimedIndex(index, metrics), queries=query_encoder(settings))
        metrics.time_batches(processor)
        feeder = ViewFeeder(settings, processor.views, processor.model.config)

        @app.task
        async def feed_views() -> None:
            # Lives as long as the worker; cancelled at shutdown, which stops the feeder thread.
            feeder.start()
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.get_running_loop().run_in_executor(None, feeder.stop)

        agents = recommend.register(
            app,
            topic=_raw_topic(app, settings.interactions_topic, settings.partitions),
            retry_topic=_raw_topic(app, settings.retry_topic, settings.partitions),
            table=table,
            processor=processor,
            sink=sink,
            recommendations=settings.recommendations_topic,
            dead_letters=settings.dead_letters_topic,
            retry=recommend.RetryPolicy(first_delay_s=settings.pending_retry_s, timeout_s=settings.pending_timeout_s),
            emission=EmissionPolicy(
                EmissionConfig(min_interval_s=settings.emit_min_interval_s, only_changed=settings.emit_only_changed)
            ),
            in_order=InOrder(app),
            batch_size=settings.profile_batch_size,
            batch_wait_s=settings.profile_batch_wait_s,
        )
        pages.register_page(app, table=table, processor=processor)
        search_page.register_search_page(
            app, table=table, searcher=build_searcher(settings, processor),
            fetcher=media or PolicyMediaFetcher(media_policy(settings)), limits=media_limits(settings),
            max_image_bytes=settings.max_image_bytes,
        )
        for agent in agents:
            agent.add_sink(metrics.observe)
        metrics.lag("consumer", lambda: consumer_lag(app, [settings.interactions_topic, settings.retry_topic]))
        metrics.lag("views", lambda: feeder.lag)
        if isinstance(index, ReplicaIndex):
            replica = index
            metrics.lag("index_replica", lambda: {settings.vectors_topic: float(replica.lag)})

        @app.page("/metrics")
        async def metrics_page(web: Any, request: Any) -> Any:
            return web.bytes(metrics.render(), content_type=CONTENT_TYPE)
        logging.getLogger("aiohttp.server").addFilter(_BAD_REQUEST_LOG)  # a no-op when already there
    return app


def run_worker(settings: Settings, role: Role) -> None:
    """Run one role's Faust worker in this process until SIGTERM/SIGINT."""
    app = create_app(settings, role)
    if role == "profiles":
        # Every event makes short-lived candidates; the collector's full passes over everything the
        # worker loaded at start showed as latency spikes. Those objects live as long as the worker.
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
