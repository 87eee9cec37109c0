"""The README's Python example runs as written, against the session's stack."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_python_example_runs(stack):
    [example] = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "Publisher" in b]
    env = {**os.environ, **stack.worker_env()}
    out = subprocess.run([sys.executable, "-c", example], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "sku-2" in out.stdout  # the other running item is recommended after the purchase


def test_the_any_language_example_sends_what_the_worker_accepts(stack, driver):
    """kcat is not on the test machines: send the example's key and JSON as kcat would."""
    from confluent_kafka import Producer

    from fusionrec.streams import kafka_config

    line = re.search(r"printf '(.*?)\\n' \|\s*\n\s*kcat (.*)", README.read_text())
    assert line, "the kcat example is gone from the README"
    key, value = line.group(1).split("\\t", 1)
    assert "-t fusionrec.interactions" in line.group(2) and "partitioner=murmur2_random" in line.group(2)
    producer = Producer({**kafka_config(stack.settings), "partitioner": "murmur2_random"})
    producer.produce(stack.settings.interactions_topic, key=key.encode(), value=value.encode())
    assert producer.flush(10) == 0
    rec = driver.recommendation_for(json.loads(value)["event_id"])
    assert rec.user_id == key and rec.items
