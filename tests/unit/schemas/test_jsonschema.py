"""The JSON Schema files are generated from the models and stay in step with them."""

import json

import jsonschema
import pytest

from fusionrec.schemas import Interaction
from fusionrec.schemas import jsonschema as js

GOOD_INTERACTION = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "like",
                    "timestamp": "2026-01-01T00:00:00Z"}


def test_files_match_the_models():
    for name, text in js.files().items():
        on_disk = (js.SCHEMA_DIR / name).read_text()
        assert on_disk == text, f"{name} is stale: run python -m fusionrec.schemas.jsonschema"


@pytest.mark.parametrize(
    ("doc", "valid"),
    [
        (GOOD_INTERACTION, True),
        ({**GOOD_INTERACTION, "type": "teleport"}, False),
        ({k: v for k, v in GOOD_INTERACTION.items() if k != "user_id"}, False),
        ({**GOOD_INTERACTION, "extra": 1}, False),
        ({**GOOD_INTERACTION, "schema_version": 3}, False),
        ({**GOOD_INTERACTION, "query": "red shoes"}, False),
        ({k: v for k, v in GOOD_INTERACTION.items() if k != "item_id"}, False),
        ({**{k: v for k, v in GOOD_INTERACTION.items() if k != "item_id"}, "type": "search", "query": "red shoes"}, True),
        ({**GOOD_INTERACTION, "type": "search", "query": "red shoes"}, False),
        ({**{k: v for k, v in GOOD_INTERACTION.items() if k != "item_id"}, "type": "search"}, False),
        ({**{k: v for k, v in GOOD_INTERACTION.items() if k != "item_id"}, "type": "search", "query": "shoes",
          "schema_version": 1}, False),
    ],
)
def test_a_non_python_app_can_validate_what_it_publishes(doc, valid):
    schema = json.loads((js.SCHEMA_DIR / "interaction.v2.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(doc) is valid
    assert _model_accepts(doc) is valid  # the schema says what the model says


def test_item_schema_accepts_media_and_vectors():
    schema = json.loads((js.SCHEMA_DIR / "item.v1.json").read_text())
    item = {"id": "sku-1", "title": "Boots", "media": {"image": {"uri": "https://cdn.example.com/a.jpg"}},
            "vectors": {"clip": [0.1, 0.2]}}
    assert jsonschema.Draft202012Validator(schema).is_valid(item)
    assert not jsonschema.Draft202012Validator(schema).is_valid({**item, "media": {"smell": {"uri": "x"}}})


def _model_accepts(doc: dict) -> bool:
    try:
        Interaction.model_validate_json(json.dumps(doc))
    except ValueError:
        return False
    return True
