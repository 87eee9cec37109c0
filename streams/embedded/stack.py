"""The embedded default: Tansu + served milvus-lite (+ workers) on loopback, no services to install."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from types import TracebackType

from fusionrec.streams.embedded.processes import MilvusLiteServer, WorkerProcess, free_port
from fusionrec.streams.embedded.tansu import TansuBroker
from fusionrec.streams.kafka.config import kafka_config
from fusionrec.streams.kafka.topics import create_topics, topic_specs
from fusionrec.streams.settings import Settings

logger = logging.getLogger(__name__)


def env_value(value: str) -> str:
    """``value`` quoted so that both a shell (``set -a; . stack.env``) and ``--env-file`` (dotenv)
    read it back unchanged.

    >>> print(env_value('["text", "image"]'), env_value("it's"))
    '["text", "image"]' "it's"
    """
    if "'" not in value:
        return f"'{value}'"
    return '"' + "".join("\\" + c if c in '\\"$`' else c for c in value) + '"'


class EmbeddedStack:
    """Starts what ``settings`` leaves unset (broker, Milvus), creates the topics, and runs workers.

    Use as a context manager; everything it started is stopped by PID on exit, Ctrl-C included.
    """

    def __init__(self, settings: Settings, *, roles: tuple[str, ...] = ("encoder", "profiles")) -> None:
        self.base = settings
        self.roles = roles
        self.broker: TansuBroker | None = None
        self.milvus: MilvusLiteServer | None = None
        self.workers: list[WorkerProcess] = []
        self.settings = settings

    @property
    def log_dir(self) -> Path:
        return self.base.data_dir / "logs"

    @property
    def env_file(self) -> Path:
        """Where the running stack's ``FUSIONREC_*`` variables are written (removed on stop)."""
        return self.base.data_dir / "stack.env"

    def start(self) -> EmbeddedStack:
        overrides: dict[str, object] = {}
        try:
            if not self.base.bootstrap_servers:
                # Tansu keeps topics in memory only: state derived from an earlier broker's topics
                # (table stores, vectors) would describe a stream that no longer exists.
                for derived in ("faust", "milvus", "views"):
                    shutil.rmtree(self.base.data_dir / derived, ignore_errors=True)
                self.broker = TansuBroker(free_port(), log_path=self.log_dir / "tansu.log")
                self.broker.start()
                overrides.update(bootstrap_servers=self.broker.bootstrap_servers, broker_flavor="tansu")
            if not self.base.milvus_uri:
                self.milvus = MilvusLiteServer(free_port(), self.base.data_dir / "milvus", log_path=self.log_dir / "milvus.log")
                self.milvus.start()
                overrides.update(milvus_uri=self.milvus.uri)
            self.settings = self.base.model_copy(update=overrides)
            create_topics(kafka_config(self.settings), topic_specs(self.settings))
            self.workers = [WorkerProcess(r, self.worker_env(), log_path=self.log_dir / f"worker-{r}.log") for r in self.roles]
            for w in self.workers:
                w.start()
            for w in self.workers:
                w.wait_ready()
            self._write_env_file()
        except BaseException:
            self.stop()
            raise
        return self

    def _write_env_file(self) -> None:
        # Everything a worker of this stack was given, so one started by hand matches them
        # (`fusionrec --env-file .fusionrec/stack.env worker --role profiles`). It may hold
        # credentials the operator set: readable by its owner only.
        lines = [f"{k}={env_value(v)}" for k, v in sorted(self.worker_env().items())]
        fd = os.open(self.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# fusionrec up: the running stack's settings; removed when it stops\n" + "\n".join(lines) + "\n")

    def keep_alive(self) -> None:
        """Restart any worker that died (``fusionrec up`` calls this while it waits)."""
        for w in self.workers:
            w.keep_alive()

    def worker_env(self) -> dict[str, str]:
        """The ``FUSIONREC_*`` variables that point a worker (or any client) at this stack."""
        return self.settings.to_env()

    def stop(self) -> None:
        self.env_file.unlink(missing_ok=True)
        for w in reversed(self.workers):
            w.stop()
        self.workers = []
        if self.milvus:
            self.milvus.stop()
            self.milvus = None
        if self.broker:
            self.broker.stop()
            self.broker = None

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
