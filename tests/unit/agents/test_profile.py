import numpy as np
import pytest

from fusionrec.agents.profile import ProfileConfig, ProfileModel, ProfileState
from fusionrec.schemas import InteractionType as T

A, B, C = np.eye(3, dtype=np.float32)
DAY = 86_400.0


def apply(model, events, state=None):
    state = state or ProfileState()
    for eid, item, vec, kind, value, ts in events:
        state = model.learn_one(state, eid, item, vec, kind, value, ts)
    return state


def test_profile_is_weighted_mean_of_item_vectors():
    model = ProfileModel(ProfileConfig(half_life_s=1e12))  # no decay
    state = apply(model, [("1", "a", A, T.VIEW, None, 0), ("2", "b", B, T.PURCHASE, None, 0)])
    # purchase weighs 3, view 1 -> mean = (A + 3B) / 4
    expected = (A + 3 * B) / np.linalg.norm(A + 3 * B)
    np.testing.assert_allclose(state.vector(), expected, rtol=1e-6)


def test_decay_halves_an_event_after_one_half_life():
    model = ProfileModel(ProfileConfig(half_life_s=DAY))
    state = apply(model, [("1", "a", A, T.VIEW, None, 0), ("2", "b", B, T.VIEW, None, DAY)])
    np.testing.assert_allclose(state.sum_vector, 0.5 * A + B, rtol=1e-6)
    assert state.weight == pytest.approx(1.5)


def test_out_of_order_event_gives_same_profile_as_in_order():
    model = ProfileModel(ProfileConfig(half_life_s=DAY))
    events = [("1", "a", A, T.LIKE, None, 0), ("2", "b", B, T.VIEW, None, 2 * DAY), ("3", "c", C, T.CLICK, None, DAY)]
    in_order = apply(model, sorted(events, key=lambda e: e[-1]))
    shuffled = apply(model, events)
    np.testing.assert_allclose(shuffled.sum_vector, in_order.sum_vector, rtol=1e-5)
    assert shuffled.weight == pytest.approx(in_order.weight)
    assert shuffled.ref_time == 2 * DAY


def test_negative_feedback_pushes_profile_away():
    model = ProfileModel(ProfileConfig(half_life_s=1e12))
    state = apply(model, [("1", "a", A + B, T.LIKE, None, 0), ("2", "b", B, T.DISLIKE, None, 1)])
    v = state.vector()
    assert v @ A > 0.9 and v @ B < 0.1
    assert set(state.seen) == {"a", "b"}  # disliked items are seen: never recommended back


def test_rating_below_midpoint_is_negative():
    cfg = ProfileConfig()
    assert cfg.event_weight(T.RATING, 5.0) > 0 > cfg.event_weight(T.RATING, 1.0)
    assert cfg.event_weight(T.RATING, 3.0) == 0


def test_duplicate_event_id_is_applied_once():
    model = ProfileModel()
    once = apply(model, [("e1", "a", A, T.LIKE, None, 10)])
    twice = apply(model, [("e1", "a", A, T.LIKE, None, 10)], once)
    assert twice is once and twice.n_events == 1


def test_seen_and_event_ids_are_bounded_keeping_newest():
    model = ProfileModel(ProfileConfig(max_seen=3, max_event_ids=2))
    state = apply(model, [(str(i), f"i{i}", A, T.VIEW, None, i) for i in range(5)])
    assert state.seen == ("i2", "i3", "i4")
    assert state.event_ids == ("3", "4")


def test_serialisation_round_trip_is_exact():
    model = ProfileModel()
    state = apply(model, [("1", "a", A, T.LIKE, None, 5.5), ("2", "b", B, T.SKIP, 0.3, 7.0)])
    back = ProfileState.from_bytes(state.to_bytes())
    np.testing.assert_array_equal(back.sum_vector, state.sum_vector)
    assert (back.weight, back.ref_time, back.seen, back.event_ids, back.n_events) == (
        state.weight, state.ref_time, state.seen, state.event_ids, state.n_events,
    )
    assert ProfileState.from_bytes(None) == ProfileState()


def test_empty_or_cancelled_profile_has_no_vector():
    assert ProfileState().vector() is None
    model = ProfileModel(ProfileConfig(half_life_s=1e12))
    state = apply(model, [("1", "a", A, T.VIEW, None, 0), ("2", "a", A, T.SKIP, 2.0, 0)])
    # +1*A and -0.5*A: still leaning to A
    assert state.vector() @ A == pytest.approx(1.0)
