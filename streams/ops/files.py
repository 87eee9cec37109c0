"""Reading events from files (JSONL, CSV, Parquet) and validating them row by row."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fusionrec.schemas import ConfigError, Event, Interaction, Item

MODELS: dict[str, type[Event]] = {"items": Item, "interactions": Interaction}
# Fields that a flat file (CSV) carries as JSON text, and list fields it carries as "a|b|c".
_JSON_FIELDS = {"media", "vectors", "context", "metadata"}
_LIST_FIELDS = {"tags"}


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``(line number, row)``, or ``(line number, why it is not a row)``; CSV line 1 is the header."""
    if path.suffix == ".jsonl":
        with path.open() as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield n, f"not JSON: {exc.msg}"
                    continue
                yield (n, row) if isinstance(row, dict) else (n, "not a JSON object")
    elif path.suffix == ".csv":
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                yield reader.line_num, {k: v for k, v in row.items() if v not in ("", None)}
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for n, row in enumerate(pq.read_table(path).to_pylist(), 1):
            yield n, {k: v for k, v in row.items() if v is not None}
    else:
        raise ConfigError(f"read .jsonl, .csv or .parquet files, not {path.suffix or 'no suffix'}")


def _shape(row: dict[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    row = dict(row)
    for field, column in mapping.items():
        if column in row:
            row[field] = row.pop(column)
    for field in _JSON_FIELDS & row.keys():
        if isinstance(row[field], str):
            row[field] = json.loads(row[field])
    for field in _LIST_FIELDS & row.keys():
        if isinstance(row[field], str):
            row[field] = [t for t in row[field].split("|") if t]
    return row


def validate_rows(
    kind: str, rows: Iterable[tuple[int, dict[str, Any] | str]], mapping: Mapping[str, str] | None = None
) -> tuple[list[tuple[int, Event]], list[tuple[int, str]]]:
    """Split rows into valid events and ``(line, reason)`` rejections."""
    model = MODELS[kind]
    good: list[tuple[int, Event]] = []
    bad: list[tuple[int, str]] = []
    for line, row in rows:
        if isinstance(row, str):
            bad.append((line, row))
            continue
        try:
            good.append((line, model.model_validate(_shape(row, mapping or {}))))
        except json.JSONDecodeError as exc:
            bad.append((line, f"a JSON column does not parse: {exc.msg}"))
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            bad.append((line, "; ".join(f"{'.'.join(map(str, e['loc'])) or '<row>'}: {e['msg']}" for e in errors[:3])))
    return good, bad
