"""Child processes of the embedded stack: free loopback ports, start-and-wait, stop by PID."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fusionrec.schemas import EmbeddedStackError

logger = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], name: str, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise EmbeddedStackError(f"{name} exited with {process.returncode}; see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise EmbeddedStackError(f"{name} did not listen on 127.0.0.1:{port} within {timeout_s} s") from None
            time.sleep(0.1)


def stop_process(process: subprocess.Popen[Any] | None, name: str, *, grace_s: float = 15.0) -> None:
    """SIGTERM the process by PID, then SIGKILL it if it lingers."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        logger.warning("%s (pid %d) ignored SIGTERM; killing it", name, process.pid)
        process.kill()
        process.wait()


class MilvusLiteServer:
    """milvus-lite served over gRPC on loopback, so several worker processes share one data directory."""

    def __init__(self, port: int, data_dir: Path, *, log_path: Path) -> None:
        self.port = port
        self.data_dir = data_dir
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        exe = Path(sys.executable).with_name("milvus-lite")
        with self.log_path.open("ab") as log:
            # Its default host is 0.0.0.0; this one must only be reachable from this machine.
            self.process = subprocess.Popen(
                [str(exe), "server", "--data-dir", str(self.data_dir), "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        wait_for_port(self.port, self.process, "milvus-lite", self.log_path, timeout_s)
        logger.info("milvus-lite pid %d serving %s at %s", self.process.pid, self.data_dir, self.uri)

    def stop(self) -> None:
        stop_process(self.process, "milvus-lite")
        self.process = None


class WorkerProcess:
    """``fusionrec worker --role ROLE`` as a child process; ready once Faust logs ``Ready``."""

    def __init__(self, role: str, env: Mapping[str, str], *, log_path: Path) -> None:
        self.role = role
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._started_at = 0.0
        self._restart_at: float | None = None
        self._quick_deaths = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fusionrec.streams.cli", "worker", "--role", self.role],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **self.env},
            )
        self._started_at = time.monotonic()
        logger.info("worker %s pid %d (log %s)", self.role, self.process.pid, self.log_path)

    def keep_alive(self, *, max_delay_s: float = 60.0) -> None:
        """Start the worker again if it died (call it periodically). A worker that keeps dying soon
        after its start is restarted with growing pauses (1 s doubling to ``max_delay_s``)."""
        if self.process is None or self.process.poll() is None:
            return
        now = time.monotonic()
        if self._restart_at is None:
            self._quick_deaths = self._quick_deaths + 1 if now - self._started_at < 30.0 else 1
            delay = min(2.0 ** (self._quick_deaths - 1), max_delay_s)
            logger.warning("worker %s (pid %d) exited with code %s; restarting it in %.0f s (see %s)",
                           self.role, self.process.pid, self.process.returncode, delay, self.log_path)
            self._restart_at = now + delay
        if now >= self._restart_at:
            self._restart_at = None
            self.restarts += 1
            self.start()

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise EmbeddedStackError(f"worker {self.role} exited with {self.process.returncode}; see {self.log_path}")
            with self.log_path.open("rb") as f:
                f.seek(self._offset)
                if b"]: Ready" in f.read():
                    return
            if time.monotonic() > deadline:
                raise EmbeddedStackError(f"worker {self.role} not ready within {timeout_s} s; see {self.log_path}")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.process, f"worker {self.role}", grace_s=30.0)
        self.process = None
