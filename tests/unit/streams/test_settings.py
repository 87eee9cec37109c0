"""docs/settings.md is generated from ``Settings``; it must not drift."""

from pathlib import Path

from typer.testing import CliRunner

from fusionrec.streams.cli import app
from fusionrec.streams.settings import Settings, reference

DOC = Path(__file__).resolve().parents[3] / "docs" / "settings.md"


def test_the_settings_reference_lists_every_setting_and_is_in_docs():
    text = reference()
    assert all(f"`FUSIONREC_{name.upper()}`" in text for name in Settings.model_fields)
    assert DOC.read_text() == text, "regenerate: fusionrec settings > docs/settings.md"


def test_the_cli_prints_it():
    result = CliRunner().invoke(app, ["settings"])
    assert result.exit_code == 0 and result.output == reference()
