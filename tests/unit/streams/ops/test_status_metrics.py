"""`fusionrec status` summarises two scrapes of the profile worker's /metrics page."""

from fusionrec.streams.ops.status import summarise_metrics
from fusionrec.streams.worker.metrics import WorkerMetrics


def test_rates_outcomes_latency_and_lags_come_from_two_scrapes():
    m = WorkerMetrics()
    m.lag("views", lambda: {"fusionrec.items": 2.0, "fusionrec.interactions": 5.0})
    before = m.render().decode()
    m.events.labels("emitted").inc(20)
    m.lists.inc(20)
    m.events.labels("dead_letter").inc()
    m.dead_letters.labels("malformed_json").inc()
    for _ in range(20):
        m.latency.observe(0.04)
    m.batch_size.observe(10)
    m.batch_size.observe(11)
    got = summarise_metrics(before, m.render().decode(), elapsed_s=2.0)
    assert got["events/s now"] == "10.5" and got["lists/s now"] == "10.0"
    assert got["events emitted"] == "20" and got["dead letters malformed_json"] == "1"
    assert got["event->list p99 (bucket bound)"] == "<= 50 ms"
    assert got["mean batch size"] == "10.5" and got["views lag (records)"] == "7"
