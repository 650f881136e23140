"""Every command and help page of the README at 80 columns, with nothing cut (issue #23).

Each command the README runs is run at 80 columns and at 200 (in a folder where the README's
relative paths resolve): at 80 no line is wider than 80 and nothing ends in an ellipsis, and
every number and name printed at 200 columns is printed at 80 too (a cut or folded one would
be missing). Help pages: every option the wide page names is on the narrow one, whole.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from pathlib import Path

import pytest

from cptopt.cli import app, run

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

#: Commands the README describes without a command line of their own.
EXTRA = ["cptopt recommend --weights 0.3,0.7 --pareto"]
#: Timings vary between two runs of a command: not compared.
SECONDS = re.compile(r"\d+(?:\.\d+)? s\b")
#: A number on its own (not a digit inside a name such as lr0.3x_r25).
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.])")


def readme_commands() -> list[str]:
    """The cptopt command lines of the README's shell blocks and '$ cptopt' output blocks,
    in order (chains split at '&&', continuation lines joined, comments dropped)."""
    text = README.read_text()
    commands = []
    for language, block in re.findall(r"```(\w*)\n(.*?)```", text, flags=re.DOTALL):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.strip()
            if language == "bash" or line.startswith("$ cptopt "):
                line = line.removeprefix("$ ").split(" #", 1)[0]
                commands += [
                    part.strip() for part in line.split("&&") if part.strip().startswith("cptopt ")
                ]
    return commands + EXTRA


def test_the_readme_has_commands_of_every_kind():
    """The extraction below finds the README's examples (not a silently empty list)."""
    names = {shlex.split(command)[1] for command in readme_commands()}
    assert names >= {"fit", "predict", "recommend", "next-pilot", "check", "inspect"}


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory) -> Path:
    """A folder where the README's relative paths resolve and its outputs can be written."""
    folder = tmp_path_factory.mktemp("readme")
    for name in ("examples", "tests"):
        (folder / name).symlink_to(ROOT / name)
    (folder / "docs").mkdir()
    return folder


def output(argv: list[str], columns: int, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setenv("COLUMNS", str(columns))
    code = run(argv)
    return code, capsys.readouterr().out


#: A word no layout can wrap (a path): the one thing allowed past 80 columns.
UNBREAKABLE = 70


def assert_fits(text: str, what: str) -> None:
    lines = text.splitlines()
    wide = [line for line in lines if len(line) > 80 and max(map(len, line.split())) <= UNBREAKABLE]
    assert not wide, f"{what}: {len(wide)} lines over 80 columns, e.g. {wide[0]!r}"
    assert "…" not in text, f"{what}: something cut: {next(x for x in lines if '…' in x)!r}"


def numbers(text: str) -> Counter:
    return Counter(NUMBER.findall(SECONDS.sub("", text)))


def words(text: str) -> set[str]:
    """Every word (a name, a number with its unit) as printed, without punctuation."""
    found = {word.strip(",;:()'") for word in SECONDS.sub("", text).split()}
    return {word for word in found if word.strip("─")}  # rules differ in length


@pytest.mark.slow
def test_every_readme_command_at_80_columns(readme_folder, monkeypatch, capsys):
    monkeypatch.chdir(readme_folder)
    checked = 0
    for command in readme_commands():
        argv = shlex.split(command)[1:]
        code, narrow = output(argv, 80, monkeypatch, capsys)
        wide_code, wide = output(argv, 200, monkeypatch, capsys)
        assert code == wide_code and code in (0, 1), (command, code)
        assert_fits(narrow, command)
        missing = numbers(wide) - numbers(narrow)
        assert not missing, f"{command}: numbers shown at 200 columns, not at 80: {missing}"
        lost = words(wide) - words(narrow)
        assert not lost, f"{command}: words shown at 200 columns, not at 80: {lost}"
        checked += bool(narrow.strip())
    assert checked == len(readme_commands())  # each printed its result


@pytest.mark.parametrize("command", [[], *([info.name] for info in app.registered_commands)])
def test_every_help_page_at_80_columns(command, monkeypatch, capsys):
    code, narrow = output([*command, "--help"], 80, monkeypatch, capsys)
    assert code == 0
    assert_fits(narrow, f"cptopt {' '.join(command)} --help")
    _, wide = output([*command, "--help"], 200, monkeypatch, capsys)
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", wide))
    assert options and options <= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", narrow))
