"""The one place the CLI writes an error: the fields a library message marks are named as
the command's own options (and a field the command has no option for keeps its Python name)."""

from __future__ import annotations

from cptopt.cli._common import cli_names, error_line, long_options
from cptopt.cli.fit import fit_command
from cptopt.cli.inspect import inspect_command
from cptopt.exceptions import InfeasibleError, InputError, param


def test_fields_are_named_as_the_commands_options():
    error = InputError(f"pass an explicit {param('form')}, {param('n_starts')} and {param('lam')}")
    options = long_options(fit_command)
    assert {"--form", "--starts", "--lam", "--law"} <= options
    line, code = error_line(error, options)
    assert (line, code) == ("error: pass an explicit --form, --starts and --lam", 2)
    assert error_line(error)[0] == "error: pass an explicit form, n_starts and lam"


def test_a_field_without_an_option_keeps_its_python_name():
    names = cli_names(["columns.general", "weights", "recommend()"], long_options(fit_command))
    assert names == {"recommend()": "cptopt recommend"}
    inspect = cli_names(["columns.general", "format:"], long_options(inspect_command))
    assert inspect == {
        "columns.general": "--general / columns.general",
        "format:": "--log-format / format:",
    }


def test_findings_exit_1_and_other_errors_are_internal():
    assert error_line(InfeasibleError("nothing fits"))[1] == 1
    line, code = error_line(KeyError("x"))
    assert code == 2 and line.startswith("internal error: KeyError")
