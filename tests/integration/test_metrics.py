"""The profile worker's /metrics page, scraped as Prometheus would, after real events went through."""

import re
import uuid

import httpx
import pytest
from confluent_kafka import Producer

from fusionrec.schemas import Item
from fusionrec.streams import kafka_config

pytestmark = pytest.mark.integration


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample, summed over label sets that contain ``labels``."""
    total, found = 0.0, False
    for line in text.splitlines():
        m = re.match(rf"^{name}(?:{{(.*)}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            total, found = total + float(m.group(2)), True
    assert found, f"no sample {name} {labels}"
    return total


def test_the_worker_exposes_throughput_latency_lag_and_dead_letter_metrics(driver):
    tag = uuid.uuid4().hex[:6]
    driver.publish_items([Item(id=f"{tag}-m", title="metronome for drummers")])
    before = httpx.get(f"{driver.settings.worker_url}/metrics", timeout=30).text
    emitted = sample(before, "fusionrec_events_total", outcome="emitted") if "fusionrec_events_total{" in before else 0.0
    driver.recommendation_for(driver.interact(f"{tag}-user", f"{tag}-m"))
    raw = Producer(kafka_config(driver.settings))  # a record no app model would let through: a dead letter
    raw.produce(driver.settings.interactions_topic, key=f"{tag}-user".encode(), value=b'{"event_id": 1}')
    raw.flush(10)

    def scraped():
        text = httpx.get(f"{driver.settings.worker_url}/metrics", timeout=30).text
        return text if "fusionrec_dead_letters_total{" in text else None

    text = driver.wait_until(scraped, what="the dead letter to be counted")
    assert sample(text, "fusionrec_events_total", outcome="emitted") >= emitted + 1
    assert sample(text, "fusionrec_dead_letters_total", code="invalid_event") >= 1
    assert sample(text, "fusionrec_event_to_list_seconds_count") >= 1
    assert sample(text, "fusionrec_batch_size_count") >= 1
    assert sample(text, "fusionrec_index_call_seconds_count", call="search_many") >= 1
    for lag in ("consumer", "views", "index_replica"):
        assert sample(text, f"fusionrec_{lag}_lag_records") >= 0
    assert httpx.get(f"{driver.settings.worker_url}/metrics", timeout=30).headers["content-type"].startswith("text/plain")
