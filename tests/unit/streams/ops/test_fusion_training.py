"""`fusionrec fusion train` end to end on files, with the weightless text encoder and ready-made vectors."""

import json

import numpy as np
from typer.testing import CliRunner

from fusionrec.encoders import LearnedFusion
from fusionrec.streams.cli import app


def test_fusion_train_writes_a_loadable_artefact_and_reports_held_out_hit_rates(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 8))
    items, events = [], []
    for k in range(120):
        c = k % 6
        vec = (centres[c] + 0.8 * rng.normal(size=8)).round(4).tolist()
        items.append({"id": f"i{k}", "title": " ".join(rng.choice(["red", "blue", "green", "tall", "short"], 3)),
                      "vectors": {"emb": vec}})
    for u in range(60):
        c = u % 6
        for t, k in enumerate(rng.choice(np.arange(c, 120, 6), 8, replace=False)):
            events.append({"event_id": f"e{u}-{t}", "user_id": f"u{u}", "item_id": f"i{k}", "type": "play",
                           "timestamp": f"2026-01-01T00:{t:02d}:00Z"})
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n{broken\n")
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events))
    monkeypatch.setenv("FUSIONREC_MODALITIES", '["text"]')
    monkeypatch.setenv("FUSIONREC_TEXT_MODEL", "hashing:32")
    monkeypatch.setenv("FUSIONREC_VECTOR_DIMS", '{"emb": 8}')
    monkeypatch.setenv("FUSIONREC_DEVICE", "cpu")
    out = tmp_path / "fusion.npz"
    result = CliRunner().invoke(app, ["fusion", "train", str(tmp_path / "items.jsonl"), str(tmp_path / "events.jsonl"),
                                      "--out", str(out), "--dim", "16", "--epochs", "10"])
    assert result.exit_code == 0, result.output
    assert "hit rate@10 early fusion" in result.output and "120 items" in result.output
    fusion = LearnedFusion.load(out)
    assert [(b.name, b.dim) for b in fusion.blocks] == [("text", 32), ("emb", 8)] and fusion.dim == 16
    assert fusion.version in result.output
