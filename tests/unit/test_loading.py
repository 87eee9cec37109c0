"""Choosing and loading encoders from settings (no model is loaded here)."""

import os

from fusionrec.encoders import load_encoders


def test_loading_encoders_asks_torch_for_huge_pages_unless_the_operator_chose(monkeypatch):
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    load_encoders(["text"], text_model="hashing")
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    load_encoders(["text"], text_model="hashing")
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "0"
