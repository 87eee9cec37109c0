"""`fusionrec evaluate` end to end on a small log in the generic format, with the real text model."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

TOPICS = {
    "jazz": ["smoky saxophone quartet", "late night piano trio", "bebop trumpet standards", "cool jazz ballads",
             "upright bass and brushes", "swing big band", "modal jazz improvisation", "vocal jazz torch songs"],
    "metal": ["distorted guitar riffs", "thrash drumming at full speed", "growled vocals and blast beats",
              "heavy doom sludge", "power metal anthems", "shredding guitar solos", "black metal tremolo picking",
              "downtuned groove riffs"],
    "kids": ["nursery rhymes to sing along", "lullabies for bedtime", "songs about animals on the farm",
             "counting songs for toddlers", "alphabet songs", "silly songs for car trips", "dance songs for kids",
             "bedtime stories with music"],
}


def write_log(folder: Path) -> tuple[Path, Path]:
    """Users each stick to one genre, so a model that reads the text can tell what comes next."""
    rng = random.Random(5)
    items = folder / "items.jsonl"
    with items.open("w") as f:
        for genre, titles in TOPICS.items():
            for n, title in enumerate(titles):
                f.write(json.dumps({"id": f"{genre}{n}", "title": title, "category": genre}) + "\n")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for u in range(45):
        genre = list(TOPICS)[u % 3]
        picks = rng.sample(range(len(TOPICS[genre])), 6)
        for step, n in enumerate(picks):
            when = start + timedelta(hours=u * 3 + step * 7)
            rows.append({"event_id": f"e{u}-{step}", "user_id": f"u{u}", "item_id": f"{genre}{n}", "type": "play",
                         "timestamp": when.isoformat()})
    inter = folder / "interactions.jsonl"
    inter.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return items, inter


def run_evaluate(items: Path, inter: Path, out: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FUSIONREC_DATA_DIR": str(data_dir), "FUSIONREC_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "fusionrec.streams.cli", "evaluate", "--dataset", "generic", "--items", str(items),
           "--interactions", str(inter), "--out", str(out), "--resamples", "200", "--workers", "2", "--name", "shop"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def test_evaluate_generic_files_end_to_end(tmp_path: Path) -> None:
    items, inter = write_log(tmp_path)
    first = run_evaluate(items, inter, tmp_path / "one", tmp_path / "state")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "| hybrid |" in first.stdout and "## prequential" in first.stdout and "## Goals" in first.stdout

    assert "a rating weighs value - 3 (FUSIONREC_RATING_MIDPOINT)" in " ".join(first.stderr.split())
    report = json.loads((tmp_path / "one" / "report.json").read_text())
    assert report["dataset"] == "shop" and report["encoders"] == {"text": "all-MiniLM-L6-v2@384"}
    for protocol, tuned in report["rank_weights"].items():  # the settings block shows what ran, as tuned
        assert report["settings"][protocol]["weight_content"] == tuned["content"]
        assert report["settings"][protocol]["weight_popularity"] == tuned["popularity"]
    expected = {"MostPopular", "RecentPopular", "ItemKNN", "ALS", "content:text", "hybrid", "hybrid:no-content"}
    for protocol in ("global", "prequential"):
        models = report["protocols"][protocol]["models"]
        assert set(models) == expected
        for name, m in models.items():
            for metric, est in m["slices"]["all"].items():
                assert 0.0 <= est["low"] <= est["mean"] <= est["high"] <= 1.0, (protocol, name, metric)
    pre = report["protocols"]["prequential"]["models"]
    # The log is built so the text says which genre comes next: reading it must beat popularity.
    assert pre["content:text"]["slices"]["all"]["hit@5"]["mean"] > pre["MostPopular"]["slices"]["all"]["hit@5"]["mean"]
    assert set(report["rank_weights"]) == set(report["rank_validation"]) == {"global", "prequential"}
    assert all(len(rows) > 1 for rows in report["rank_validation"].values()) and report["als_params"]
    for png in ("global-metric-vs-k.png", "prequential-metric-vs-k.png", "prequential-over-time.png"):
        assert (tmp_path / "one" / png).stat().st_size > 10_000

    # Seeded: a second run (vectors now from the cache) gives the very same numbers.
    second = run_evaluate(items, inter, tmp_path / "two", tmp_path / "state")
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads((tmp_path / "two" / "report.json").read_text())
    strip = lambda doc: {p: {n: m["slices"] for n, m in v["models"].items()} for p, v in doc["protocols"].items()}  # noqa: E731
    assert strip(again) == strip(report)


def test_evaluate_explains_a_missing_dataset_folder(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FUSIONREC_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "fusionrec.streams.cli", "evaluate", "--dataset", "movielens-100k",
                          "--data-dir", str(tmp_path / "nope")], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2 and "u.item not found" in " ".join(out.stderr.split())  # rich wraps long lines


def test_evaluate_search_end_to_end(tmp_path: Path) -> None:
    items, inter = write_log(tmp_path)
    rows = [json.loads(line) for line in items.read_text().splitlines()]
    # Two sentences each (the known-item query is the second) and genre words (the replay's query).
    items.write_text("".join(json.dumps({**r, "description": f"A {r['category']} record. {r['title'].capitalize()} "
                                         "from start to finish.", "tags": [r["category"]]}) + "\n" for r in rows))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FUSIONREC_DATA_DIR": str(tmp_path / "state"),
           "FUSIONREC_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "fusionrec.streams.cli", "evaluate", "--task", "search", "--dataset", "generic",
           "--items", str(items), "--interactions", str(inter), "--out", str(tmp_path / "out"), "--resamples", "200",
           "--score-share", "1.0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "## Known-item search" in done.stdout and "Personalised / plain Recall@20" in done.stdout
    report = json.loads((tmp_path / "out" / "search.json").read_text())
    [words] = report["known_item"]
    assert (words["queries"], words["vectors"], words["n"]) == ("words", "text", 24)
    assert words["recall@10"]["mean"] > 0.5  # the second sentence names the item's own words
    replay = report["replay"]
    assert replay["events"] > 0 and set(replay["recall@20"]) == {"plain", "personalised", "personalised, seen dropped"}
    for est in replay["recall@20"].values():
        assert 0.0 <= est["low"] <= est["mean"] <= est["high"] <= 1.0
    assert (tmp_path / "out" / "search-recall.png").stat().st_size > 10_000
