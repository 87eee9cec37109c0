"""Choosing and loading encoders from settings (no model is loaded here)."""

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

from fusionrec.encoders import load_encoders


def test_loading_encoders_asks_torch_for_huge_pages_unless_the_operator_chose(monkeypatch):
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    load_encoders(["text"], text_model="hashing")
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    load_encoders(["text"], text_model="hashing")
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "0"


def test_importing_the_encoders_lets_torch_threads_sleep_unless_the_operator_chose():
    code = "import os, fusionrec.encoders; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}

    def policy(extra: dict[str, str]) -> str:
        return subprocess.run([sys.executable, "-c", code], env=env | extra, capture_output=True, text=True,
                              check=True).stdout.strip()

    assert policy({}) == "PASSIVE"
    assert policy({"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_only_the_encoders_import_torch():
    """OpenMP reads its wait policy when torch loads: no other layer may load torch before
    ``fusionrec.encoders`` has set it."""
    torch_import = re.compile(r"^\s*(import|from)\s+(torch|torchvision|sentence_transformers)\b", re.MULTILINE)
    layers = [Path(importlib.import_module(f"fusionrec.{name}").__file__).parent for name in ("agents", "schemas", "streams")]
    outside = [str(p) for layer in layers for p in layer.rglob("*.py") if torch_import.search(p.read_text())]
    assert not outside
