"""JSON Schema files for every topic payload, for apps that publish from other languages.

Regenerate after changing a model: ``python -m fusionrec.schemas.jsonschema``; a test fails while
the files in ``schemas/json/`` differ from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import get_args

from pydantic import BaseModel

from fusionrec.schemas.events import DeadLetter, Interaction, Item, Recommendation, StoredVector

MODELS: dict[str, type[BaseModel]] = {
    "item": Item,
    "interaction": Interaction,
    "recommendation": Recommendation,
    "dead_letter": DeadLetter,
    "stored_vector": StoredVector,
}
SCHEMA_DIR = Path(__file__).parent / "json"


def render(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="validation")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def newest_version(model: type[BaseModel]) -> int:
    """The highest ``schema_version`` a model reads (its schema also accepts the older ones)."""
    return max(get_args(model.model_fields["schema_version"].annotation))


def files() -> dict[str, str]:
    """File name -> contents for every payload schema, named after its newest version."""
    return {f"{name}.v{newest_version(model)}.json": render(model) for name, model in MODELS.items()}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files().items():
        (out / name).write_text(text)
        print(out / name)


if __name__ == "__main__":
    main()
