"""Driving a running stack from tests and benches: its settings, a publisher/reader, the CLI, kcat."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from fusionrec.schemas import Interaction, Item, Recommendation
from fusionrec.streams import EmbeddedStack, Publisher, RecommendationConsumer, Settings, open_index
from fusionrec.streams.embedded.processes import free_port


def stack_settings(data_dir: Path, media_root: Path) -> Settings:
    """The settings of a test stack: small timeouts, one list per event, a free HTTP port."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return Settings(
        data_dir=data_dir,
        bootstrap_servers=None,
        milvus_uri=None,
        partitions=2,
        local_fetch_wait_ms=20,
        encode_batch_wait_s=0.05,
        top_k=5,
        max_event_bytes=64_000,
        max_image_bytes=20_000,
        media_root=media_root,
        vector_dims={"clip": 4},
        pending_retry_s=0.5,
        pending_timeout_s=8.0,
        # One list per event, so tests can wait for the list of each event they publish; the
        # emission policy has its own tests.
        emit_only_changed=False,
        emit_min_interval_s=0.0,
        web_port=free_port(),
    )


class Driver:
    """Publishes events into the stack and waits for what the workers make of them."""

    def __init__(self, stack: EmbeddedStack) -> None:
        self.settings = stack.settings
        self.index = open_index(self.settings.require_milvus_uri(), self.settings.collection)
        self.consumer = RecommendationConsumer(self.settings, start="beginning")
        self.by_trigger: dict[str, Recommendation] = {}

    def publish_items(self, items: list[Item], timeout_s: float = 120.0) -> None:
        with Publisher(self.settings) as pub:
            for it in items:
                pub.publish_item(it)
        deadline = time.monotonic() + timeout_s
        while len(self.index.get([it.id for it in items])) < len(items):
            assert time.monotonic() < deadline, "items were not indexed in time"
            time.sleep(0.2)

    def interact(
        self, user: str, item: str, kind: str = "like", event_id: str | None = None, timestamp: datetime | None = None
    ) -> str:
        event = Interaction(event_id=event_id or uuid.uuid4().hex, user_id=user, item_id=item, type=kind,
                            timestamp=timestamp or datetime.now(UTC))
        with Publisher(self.settings) as pub:
            pub.publish_interaction(event)
        return event.event_id

    def recommendation_for(self, event_id: str, timeout_s: float = 60.0) -> Recommendation:
        deadline = time.monotonic() + timeout_s
        while event_id not in self.by_trigger:
            assert time.monotonic() < deadline, f"no recommendation for event {event_id}"
            got = self.consumer.poll(0.2)
            if got is not None:
                self.by_trigger[got.recommendation.trigger_event_id or ""] = got.recommendation
        return self.by_trigger[event_id]

    def on_demand(self, user: str, **params: object) -> Recommendation:
        resp = httpx.get(f"{self.settings.worker_url}/recommend/{user}/", params=params, timeout=30)
        assert resp.status_code == 200, resp.text
        return Recommendation.model_validate_json(resp.content)

    def profile(self, user: str) -> dict:
        resp = httpx.get(f"{self.settings.worker_url}/profile/{user}/", timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wait_until(self, check, timeout_s: float = 60.0, what: str = "condition"):
        deadline = time.monotonic() + timeout_s
        while True:
            got = check()
            if got:
                return got
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.3)

    def drain(self, seconds: float) -> None:
        """Read recommendations for ``seconds``, so a test can tell that none came."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            got = self.consumer.poll(0.1)
            if got is not None:
                self.by_trigger[got.recommendation.trigger_event_id or ""] = got.recommendation

    def close(self) -> None:
        self.consumer.close()
        self.index.close()


def run_cli(stack: EmbeddedStack, *args: str, timeout_s: float = 180.0, input_text: str | None = None):
    """``fusionrec ARGS`` as a user runs it, pointed at the session's stack."""
    env = {**os.environ, **stack.worker_env(), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "fusionrec.streams.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout_s, input=input_text)


def kcat_or_fail() -> None:
    """Skip where kcat is missing, except in CI, which installs it."""
    if shutil.which("kcat") is None:
        if os.environ.get("CI"):
            pytest.fail("kcat is not installed: .ci/run installs it (apt-get install kcat)")
        pytest.skip("kcat is not installed here (apt-get install kcat); CI installs it and runs this")
