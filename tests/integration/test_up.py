"""`fusionrec up` as a user runs it: everything starts on loopback, clients work against the
printed variables, and Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from fusionrec.streams.embedded.processes import free_port

pytestmark = pytest.mark.integration


def listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def test_up_runs_the_stack_until_ctrl_c(tmp_path):
    web_port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FUSIONREC_")},
           "FUSIONREC_DATA_DIR": str(tmp_path), "FUSIONREC_WEB_PORT": str(web_port), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "fusionrec.streams.cli", "up"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines, deadline = [], time.monotonic() + 240
        while not any("Ctrl-C stops everything" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines[-30:])
            lines.append(proc.stdout.readline())
        exported = dict(re.findall(r"export (FUSIONREC_\w+)=(\S+)", "".join(lines)))
        assert exported["FUSIONREC_BROKER_FLAVOR"] == "tansu"
        broker = exported["FUSIONREC_BOOTSTRAP_SERVERS"]
        milvus = exported["FUSIONREC_MILVUS_URI"].removeprefix("http://")
        assert broker.startswith("127.0.0.1:") and milvus.startswith("127.0.0.1:")
        listed = subprocess.run([sys.executable, "-m", "fusionrec.streams.cli", "topics", "list"],
                                env={**env, **exported}, capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and "fusionrec.interactions" in listed.stdout
        assert listening(broker) and listening(milvus) and listening(f"127.0.0.1:{web_port}")

        # Every setting of the workers is in stack.env: a command needs nothing else.
        env_file = tmp_path / "stack.env"
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        bare = {k: v for k, v in env.items() if k != "FUSIONREC_DATA_DIR"}
        listed = subprocess.run([sys.executable, "-m", "fusionrec.streams.cli", "--env-file", str(env_file), "topics",
                                 "list"], env=bare, capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and "fusionrec.interactions" in listed.stdout

        # A worker that dies is restarted, with a log line saying so.
        children = subprocess.run(["ps", "-ww", "--ppid", str(proc.pid), "-o", "pid=,args="], capture_output=True,
                                  text=True)
        [pid] = [int(line.split()[0]) for line in children.stdout.splitlines() if "--role profiles" in line]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while not any(f"worker profiles (pid {pid}) exited with code -9; restarting" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines[-30:])
            lines.append(proc.stdout.readline())
        while not listening(f"127.0.0.1:{web_port}"):
            assert time.monotonic() < deadline, "the restarted profile worker does not serve"
            time.sleep(0.5)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
        time.sleep(1)
        assert not listening(broker) and not listening(milvus) and not listening(f"127.0.0.1:{web_port}")
        assert not env_file.exists()
    finally:
        if proc.poll() is None:  # a failed check: stop it as Ctrl-C does, so its children stop too
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
