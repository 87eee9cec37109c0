"""The demo's data and its measurement are plain functions: check them on hand-made cases."""

from datetime import UTC, datetime

import pytest

from fusionrec.schemas import Recommendation, RecommendedItem
from fusionrec.streams.kafka.client import Received
from fusionrec.streams.ops.demo import DemoConfig, measure, synthesize


def test_synthesize_is_seeded_and_users_follow_their_tastes():
    cfg = DemoConfig(users=10, items=80, events_per_user=20, seed=3)
    a, b = synthesize(cfg), synthesize(cfg)
    assert [i.id for i in a.items] == [i.id for i in b.items]
    assert [(e.user_id, e.item_id) for e in a.events] == [(e.user_id, e.item_id) for e in b.events]
    assert len(a.events) == 200 and all(len(t) == 2 for t in a.tastes.values())
    in_taste = sum(a.genre_of[e.item_id] in a.tastes[e.user_id] for e in a.events) / len(a.events)
    assert in_taste > 0.8
    assert len({e.event_id for e in a.events}) == len(a.events)


def _received(rec: Recommendation, arrived: float) -> tuple[Received, float]:
    return Received(rec, 0, 0, int(arrived * 1000)), arrived


def test_measure_counts_matches_chance_latency_and_seen_leaks():
    data = synthesize(DemoConfig(users=1, items=16, events_per_user=2, seed=1))
    user = next(iter(data.tastes))
    first, second = data.events
    liked = [i for i, g in data.genre_of.items() if g in data.tastes[user] and i not in (first.item_id, second.item_id)]
    other = [i for i, g in data.genre_of.items() if g not in data.tastes[user]]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def rec(trigger, ids):
        return Recommendation(user_id=user, items=[RecommendedItem(item_id=i, score=1.0) for i in ids],
                              model_version="m", generated_at=t0, trigger_event_id=trigger.event_id,
                              trigger_timestamp=t0)

    got = [
        _received(rec(first, [liked[0], other[0]]), t0.timestamp() + 0.010),
        _received(rec(second, [liked[1], first.item_id]), t0.timestamp() + 0.030),  # leaks a seen item
    ]
    result = measure(data, got)
    assert result.lists == 2 and result.users == 1 and result.expected == 2
    assert result.taste_match == (0.5 + (1.0 if data.genre_of[first.item_id] in data.tastes[user] else 0.5)) / 2
    assert result.random_rate == 4 / 16  # two genres of eight, two items each
    assert result.p50_ms == pytest.approx(20.0, abs=0.01) and result.p95_ms <= 30.0 + 0.01
    assert result.seen_violations == 1 and not result.ok
    assert result.events_per_s == pytest.approx(2 / 0.030)
    assert "2 recommendation lists for 1 users" in result.summary_line() and "67 events/s sustained" in result.summary_line()
