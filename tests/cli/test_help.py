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


def test_brackets_in_help_texts_are_shown_as_written():
    """Rich read '[plot]' as a style tag and dropped it ("pip install 'cptopt'"): the help
    is click's plain layout now, so a bracket in a help text reaches the page as written."""
    for command, text in (("plot", "pip install 'cptopt[plot]'"), ("check", "[tool.cptopt.check]")):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "100"})
        assert result.exit_code == 0
        assert text in " ".join(result.stdout.split()), (command, result.stdout)
