"""``--help`` reads like a manual: every command's description re-wraps to the terminal."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cptopt.cli import app

COMMANDS = [info.name for info in app.registered_commands]


@pytest.mark.parametrize("command", COMMANDS)
def test_description_flows_at_any_width(command):
    """Source-wrapped docstrings used to keep their line breaks: on a 200-column terminal a
    sentence broke after 90 characters. Each paragraph now comes out as one wrapped block."""
    info = next(info for info in app.registered_commands if info.name == command)
    paragraphs = info.help.split("\n\n")
    assert all("\n" not in paragraph for paragraph in paragraphs)
    result = CliRunner().invoke(
        app, [command, "--help"], env={"COLUMNS": "200"}, terminal_width=200
    )
    assert result.exit_code == 0
    description = [line.strip() for line in result.stdout.split("Options")[0].splitlines()]
    first_sentence = paragraphs[0].split(". ")[0]
    # At 200 columns the first paragraph fits on one line of the help, as written.
    assert any(line.startswith(first_sentence[:60]) for line in description)
    if len(paragraphs) > 1:
        second = " ".join(paragraphs[1].split()[:12]).replace("\\[", "[")
        assert any(second in line for line in description), (second, description)


def test_no_help_text_loses_brackets_to_rich_markup():
    """Rich reads '[plot]' as a style tag and drops it ("pip install 'cptopt'"): every help
    text writes a literal bracket as '\\['. Checked on the rendered help of every command."""
    import re

    import typer

    group = typer.main.get_command(app)
    unescaped = re.compile(r"(?<!\\)\[[a-z][a-z._-]*\]")
    for name, command in group.commands.items():
        texts = [command.help or ""] + [
            getattr(param, "help", None) or "" for param in command.params
        ]
        for text in texts:
            assert not unescaped.search(text), (name, text)
