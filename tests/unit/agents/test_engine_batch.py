"""Micro-batches change how often the index is asked, never what the engine decides: one by one and
in batches of any size, the same events give byte-identical profiles and identical lists."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from fusionrec.agents.engine import Applied, Duplicate, Recommender, Views
from fusionrec.agents.profile import ProfileModel, ProfileState
from fusionrec.agents.ranking import RankWeights
from fusionrec.schemas import EventError, Interaction, Item
from fusionrec.streams import MemoryVectorIndex
from fusionrec.streams.index import ItemVector

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def world(seed: int = 0) -> tuple[MemoryVectorIndex, Views, list[Interaction]]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4, 16)).astype(np.float32)
    index = MemoryVectorIndex()
    index.ensure_collection(16)
    views = Views()
    rows = []
    for n in range(300):
        genre = n % 4
        vector = centres[genre] + 0.5 * rng.standard_normal(16).astype(np.float32)
        rows.append(ItemVector(f"i{n}", vector / np.linalg.norm(vector), f"enc{n % 2}"))
        views.learn_item(Item(id=f"i{n}", title=f"Item {n}", category=f"g{genre}", updated_at=NOW))
    index.upsert(rows)
    for n in range(400):  # catalogue-wide history: popularity, trending and co-occurrence to rank with
        views.learn_interaction(f"h{n}", f"old{n % 30}", f"i{rng.integers(0, 300)}", 1.0,
                                (NOW - timedelta(hours=n % 48)).timestamp())
    kinds = ["view", "like", "purchase", "skip"]
    events = [
        Interaction(event_id=f"e{n}", user_id=f"u{rng.integers(0, 12)}", item_id=f"i{rng.integers(0, 300)}",
                    type=kinds[rng.integers(0, 4)], timestamp=NOW + timedelta(seconds=n))
        for n in range(240)
    ]
    # A redelivered event, one repeated inside what becomes a batch, and an item not indexed yet.
    events[50] = events[10]
    events[101] = events[100]
    events[150] = events[150].model_copy(update={"item_id": "not-indexed"})
    return index, views, events


def run(batch: int) -> tuple[dict[str, bytes], list[tuple]]:
    index, views, events = world()
    engine = Recommender(index, ProfileModel(), views=views, top_k=10, max_candidates=200, max_event_bytes=10_000,
                         weights=RankWeights(diversity=0.3, new_item_share=0.2))
    states: dict[str, ProfileState] = {}
    outcomes: list[tuple] = []
    for start in range(0, len(events), batch):
        updated, results = engine.handle_many(events[start:start + batch], states, now=NOW.timestamp() + 300)
        states.update(updated)
        for r in results:
            if isinstance(r, Applied):
                rec = r.recommendation
                outcomes.append(("applied", rec.trigger_event_id, rec.model_version,
                                 [(i.item_id, i.score, i.reason) for i in rec.items]))
            elif isinstance(r, Duplicate):
                outcomes.append(("duplicate", r.event_id))
            else:
                assert isinstance(r, EventError)
                outcomes.append(("error", r.code))
    return {u: s.to_bytes() for u, s in states.items()}, outcomes


@pytest.mark.parametrize("batch", [7, 64, 240])
def test_batched_and_one_by_one_processing_agree_exactly(batch):
    one_states, one_outcomes = run(1)
    states, outcomes = run(batch)
    assert states == one_states
    assert outcomes == one_outcomes
    kinds = [o[0] for o in one_outcomes]
    assert kinds.count("duplicate") == 2 and kinds.count("error") == 1 and kinds.count("applied") == 237
    assert all(len(o[3]) == 10 for o in one_outcomes if o[0] == "applied")


def test_a_batch_leaves_the_states_it_was_given_unchanged():
    index, views, events = world()
    engine = Recommender(index, ProfileModel(), views=views, top_k=5, max_candidates=100, max_event_bytes=10_000)
    before = {"u1": ProfileState()}
    updated, _ = engine.handle_many([e for e in events if e.user_id == "u1"][:3], before)
    assert before == {"u1": ProfileState()} and updated["u1"].n_events == 3
