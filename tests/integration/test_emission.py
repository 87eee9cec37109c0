"""The emission policy through the real broker: a burst is coalesced into one trailing list, and an
unchanged list is not re-published. Its own small stack (profile worker only, policy switched on);
item vectors are stored directly, so no model is needed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from fusionrec.streams import EmbeddedStack, ItemVector, Settings, open_index
from fusionrec.streams.embedded.processes import free_port
from fusionrec.streams.index import PublishingIndex
from fusionrec.testing.stack import Driver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emitting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Driver]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("emission"), bootstrap_servers=None, milvus_uri=None, partitions=1,
        local_fetch_wait_ms=20, top_k=3, web_port=free_port(), table_store="memory://",
        emit_only_changed=True, emit_min_interval_s=1.5,
    )
    with EmbeddedStack(settings, roles=("profiles",)) as stack:
        # Stored as the encoder stores them: in Milvus and on the vectors topic the worker's index copy reads.
        index = PublishingIndex(open_index(stack.settings.require_milvus_uri(), stack.settings.collection),
                                stack.settings)
        index.ensure_collection(4)
        a, b = np.array([1, 0, 0, 0], np.float32), np.array([0, 1, 0, 0], np.float32)
        index.upsert([ItemVector(f"a{i}", a, "test@4") for i in range(1, 7)] +
                     [ItemVector(f"b{i}", b, "test@4") for i in range(1, 4)])
        index.close()
        driver = Driver(stack)
        yield driver
        driver.close()


def test_bursts_coalesce_and_unchanged_lists_are_not_republished(emitting):
    user = f"u-{uuid.uuid4().hex[:6]}"
    e1 = emitting.interact(user, "a1", "view")
    e2 = emitting.interact(user, "a2", "view")
    e3 = emitting.interact(user, "a3", "view")
    first = emitting.recommendation_for(e1)
    assert [i.item_id for i in first.items] == ["a2", "a3", "a4"]
    trailing = emitting.recommendation_for(e3, timeout_s=20)  # held, then flushed by the timer
    assert [i.item_id for i in trailing.items] == ["a4", "a5", "a6"]
    assert (trailing.generated_at - first.generated_at).total_seconds() >= 1.4
    emitting.drain(2.0)
    assert e2 not in emitting.by_trigger  # coalesced into e3's list

    e4 = emitting.interact(user, "a3", "view")  # seen already: the list stays the same
    emitting.drain(4.0)
    assert e4 not in emitting.by_trigger
    assert [i.item_id for i in emitting.on_demand(user).items] == ["a4", "a5", "a6"]
    assert emitting.profile(user)["n_events"] == 4  # applied, just not re-published
