"""A profile worker restart: the table is rebuilt from its changelog (on Tansu through the
fetched-high-watermark work-around), so nothing is lost and a redelivered event is not re-applied."""

from __future__ import annotations

import uuid

import pytest

from fusionrec.agents.profile import ProfileState
from fusionrec.schemas import Item

pytestmark = pytest.mark.integration


def test_profiles_survive_a_worker_restart(stack, driver):
    tag = uuid.uuid4().hex[:6]
    items = [Item(id=f"{tag}-{i}", title=f"vintage mechanical typewriter model {i}") for i in range(30)]
    driver.publish_items(items)
    users = [f"u{n}-{tag}" for n in range(6)]
    seen: dict[str, list[str]] = {u: [] for u in users}
    events = []
    # Many small events across users: the changelog gets multi-message batches, which is where
    # Tansu's wrong ListOffsets answer used to make recovery stop early.
    for step in range(4):
        for n, user in enumerate(users):
            item = items[(n * 4 + step) % len(items)].id
            events.append(driver.interact(user, item))
            seen[user].append(item)
    for eid in events:
        driver.recommendation_for(eid)

    profiles = next(w for w in stack.workers if w.role == "profiles")
    profiles.stop()
    profiles.start()
    profiles.wait_ready()

    for user in users:
        # Redelivery of an applied event after the restart: recognised, nothing emitted for it.
        driver.interact(user, seen[user][0], event_id=events[users.index(user)])
        new_item = items[-1 - users.index(user)].id
        rec = driver.recommendation_for(driver.interact(user, new_item))
        assert not (set(seen[user]) | {new_item}) & {i.item_id for i in rec.items}, user
    log = profiles.log_path.read_text()
    assert "Traceback" not in log


def test_profile_state_bytes_are_what_the_table_holds():
    # The table stores ProfileState bytes; a format change must stay readable.
    assert ProfileState.from_bytes(ProfileState().to_bytes()) == ProfileState()
