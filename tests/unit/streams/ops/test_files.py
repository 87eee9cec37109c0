"""Publish-file validation: pure, no broker."""

import json

import pyarrow as pa
import pyarrow.parquet as pq

from fusionrec.streams.ops.files import read_rows, validate_rows


def test_rows_are_validated_with_line_numbers_from_every_format(tmp_path):
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text("\n".join([
        json.dumps({"id": "a", "title": "Boots"}),
        "{broken",
        "",
        json.dumps({"id": "", "title": "no id"}),
        json.dumps([1, 2]),
        json.dumps({"id": "b", "title": "Hat", "tags": ["wool"]}),
    ]) + "\n")
    good, bad = validate_rows("items", read_rows(jsonl))
    assert [line for line, _ in good] == [1, 6]
    assert [line for line, _ in bad] == [2, 4, 5]
    assert "not JSON" in bad[0][1] and "id" in bad[1][1]

    csv_file = tmp_path / "items.csv"
    csv_file.write_text('sku,name,tags,media\nx,Scarf,wool|winter,\ny,,,{"image": {"uri": "https://e.com/y.jpg"}}\n'
                        'z,Gloves,,{not json\n')
    good, bad = validate_rows("items", read_rows(csv_file), {"id": "sku", "title": "name"})
    assert [(line, e.id) for line, e in good] == [(2, "x"), (3, "y")]
    assert good[0][1].tags == ["wool", "winter"] and good[1][1].media
    assert [line for line, _ in bad] == [4]

    parquet = tmp_path / "inter.parquet"
    rows = [{"event_id": "e1", "user_id": "u", "item_id": "a", "type": "like", "timestamp": "2026-01-01T00:00:00Z"},
            {"event_id": "e2", "user_id": "u", "item_id": "a", "type": "warp", "timestamp": "2026-01-01T00:00:00Z"}]
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    good, bad = validate_rows("interactions", read_rows(parquet))
    assert [line for line, _ in good] == [1] and [line for line, _ in bad] == [2] and "type" in bad[0][1]
