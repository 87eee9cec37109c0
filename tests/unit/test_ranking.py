from fusionrec.agents.ranking import overfetch, top_k_unseen


def test_overfetch_leaves_room_for_excluded_items_up_to_a_cap():
    assert overfetch(10, 0, 500) == 10
    assert overfetch(10, 40, 500) == 50
    assert overfetch(10, 10_000, 500) == 500
    assert overfetch(600, 10, 500) == 600  # never below k


def test_top_k_unseen_drops_seen_dedupes_and_orders():
    cands = [("a", 0.5), ("b", 0.9), ("c", 0.7), ("b", 0.1), ("d", 0.7)]
    assert top_k_unseen(cands, {"b"}, 10) == [("c", 0.7), ("d", 0.7), ("a", 0.5)]
    assert top_k_unseen(cands, set(), 2) == [("b", 0.9), ("c", 0.7)]
    assert top_k_unseen([], set(), 3) == []
