"""The README's Python example runs as written, against the session's stack."""

from __future__ import annotations

import json
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

    [search] = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "Client" in b]
    out = subprocess.run([sys.executable, "-c", search], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "sku-" in out.stdout and "matches" in out.stdout


def test_the_kcat_example_runs_as_written(stack, driver):
    """The README's kcat recipe, run by bash with the real kcat (Debian's, which CI installs)."""
    from fusionrec.testing.stack import kcat_or_fail

    kcat_or_fail()
    block = re.search(r"```bash\n(printf '[^\n]*\n[^\n]*kcat [^\n]*)\n```", README.read_text())
    assert block, "the kcat example is gone from the README"
    command = block.group(1)
    assert "-t fusionrec.interactions" in command and "partitioner=murmur2_random" in command
    key, value = re.search(r"printf '(.*?)\\n'", command).group(1).split("\\t", 1)
    env = {**os.environ, **stack.worker_env(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-c", f"set -eo pipefail; {command}"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    rec = driver.recommendation_for(json.loads(value)["event_id"])
    assert rec.user_id == key and rec.items
