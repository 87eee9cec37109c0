from fusionrec.agents.ranking import overfetch


def test_overfetch_leaves_room_for_excluded_items_up_to_a_cap():
    assert overfetch(10, 0, 500) == 10
    assert overfetch(10, 40, 500) == 50
    assert overfetch(10, 10_000, 500) == 500
    assert overfetch(600, 10, 500) == 600  # never below k
