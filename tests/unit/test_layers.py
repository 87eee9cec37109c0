"""The layers import one way: schemas <- encoders <- agents <- streams <- CLI; nobody imports privates."""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["schemas", "encoders", "agents", "streams"]


def package_dir(layer: str) -> Path:
    return Path(importlib.import_module(f"fusionrec.{layer}").__file__).parent


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every ``fusionrec`` module ``path`` imports, with the names it takes, at any depth (lazy ones too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return [(m, names) for m, names in found if m.split(".")[0] == "fusionrec"]


@pytest.mark.parametrize("layer", ORDER)
def test_a_layer_imports_only_the_layers_below_it(layer):
    above = {f"fusionrec.{name}" for name in ORDER[ORDER.index(layer) + 1:]} | {"fusionrec.testing"}
    wrong = [f"{path.relative_to(ROOT)}: {module}" for path in package_dir(layer).rglob("*.py")
             for module, _ in imports(path) if any(module == a or module.startswith(a + ".") for a in above)]
    assert not wrong


def test_nothing_below_the_cli_imports_it():
    wrong = [str(path.relative_to(ROOT)) for layer in ORDER for path in package_dir(layer).rglob("*.py")
             if path.name != "cli.py" and any(module == "fusionrec.streams.cli" for module, _ in imports(path))]
    assert not wrong


def test_no_module_imports_another_ones_private_names():
    files = [p for d in ("schemas", "encoders", "agents", "streams", "tests", "bench") for p in (ROOT / d).rglob("*.py")]
    wrong = [f"{path.relative_to(ROOT)}: {module}.{name}" for path in files for module, names in imports(path)
             for name in names if name.startswith("_") and not name.startswith("__")]
    assert not wrong


def test_the_rule_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from fusionrec.streams.index import open_index\n    from fusionrec.agents.x import _private\n")
    assert imports(bad) == [("fusionrec.streams.index", ["open_index"]), ("fusionrec.agents.x", ["_private"])]
