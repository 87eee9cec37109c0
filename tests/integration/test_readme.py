"""The README's Python example runs as written, against the session's stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_python_example_runs(stack):
    [example] = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "Publisher" in b]
    env = {**os.environ, **stack.worker_env()}
    out = subprocess.run([sys.executable, "-c", example], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "sku-2" in out.stdout  # the other running item is recommended after the purchase
