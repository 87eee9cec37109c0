"""Every ``fusionrec`` command the README shows names a real command with real options.

The integration tests run the README's Python and kcat examples against a live stack; this checks
the rest of its command lines against the CLI itself, so a renamed command or option fails here.
"""

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from fusionrec.streams.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[list[str]]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and "=" in words[0]:  # VAR=value prefixes
                words = words[1:]
            if words and words[0].endswith("fusionrec"):
                commands.append(words[1:])
    return commands


def resolve(args: list[str]) -> tuple[Any, list[str]]:
    command = typer.main.get_command(app)
    rest = list(args)
    while rest and rest[0].startswith("--"):  # global options, e.g. --env-file F
        option = next(p for p in command.params if rest[0] in p.opts)
        rest = rest[1 if getattr(option, "is_flag", False) else 2:]
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):  # groups
        command = command.commands[rest.pop(0)]
    return command, rest


@pytest.mark.parametrize("args", readme_commands(), ids=" ".join)
def test_a_readme_command_exists_with_its_options(args):
    command, rest = resolve(args)
    options = {opt for p in command.params for opt in p.opts + getattr(p, "secondary_opts", [])}
    used = {word.split("=")[0] for word in rest if word.startswith("--")}
    assert used <= options, f"{' '.join(args)}: unknown {used - options}"


def test_the_readme_shows_commands():
    assert len(readme_commands()) >= 15
