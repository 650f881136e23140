"""Shared CLI plumbing: the Typer app, consoles, output formats and error handling.

Exit codes follow Ruff: 0 ok, 1 findings (a limit broken, nothing feasible), 2 bad input,
usage or internal error. Results go to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import threading
import traceback
import typing
import urllib.parse
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from typer.models import OptionInfo

from cptopt._version import __version__
from cptopt.cli._defaults import DEFAULT_LAW_PATH
from cptopt.exceptions import CptoptError, InfeasibleError, InputError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from cptopt.law import CptLaw
    from cptopt.search import SearchConfig

app = typer.Typer(
    name="cptopt",
    help=(
        "Fit the continual pre-training (CPT) scaling law of Wang et al. (ICML 2025) to a few "
        "short pilot runs, predict the general and domain loss of any CPT schedule, and choose "
        "peak LR, replay ratio and steps.\n\n"
        "Typical session:\n\n"
        "\b\n"  # click keeps this paragraph's lines as they are
        "  cptopt fit examples/pilots/unannealed.yaml         # writes cptopt-law.json\n"
        "  cptopt predict examples/configs/wsd-replay25.yaml  # predicted losses\n\n"
        "Exit codes: 0 ok, 1 findings, 2 bad input or internal error."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's own help layout: option names are never cut, and a help text goes under its
    # option when the option is long (rich's panels cut names and squeeze the help to a
    # narrow column at 80 columns); lines up to 100 columns on wide terminals
    rich_markup_mode=None,
    context_settings={"max_content_width": 100},
)


def version_line() -> str:
    """``cptopt 0.1.0``, with the commit when this very copy was installed from a git URL
    (pip records it; a CI log then says which cptopt judged its configs)."""
    import importlib.metadata

    line = f"cptopt {__version__}"
    try:
        dist = importlib.metadata.distribution("cptopt")
        installed = Path(str(dist.locate_file("cptopt/__init__.py"))).resolve()
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except (importlib.metadata.PackageNotFoundError, OSError, ValueError):
        return line
    commit = direct.get("vcs_info", {}).get("commit_id")
    running = Path(__file__).resolve().parents[1] / "__init__.py"  # this cptopt package
    if commit and installed == running:
        url = urllib.parse.urlsplit(str(direct.get("url", "?")))
        public = url._replace(netloc=url.netloc.rpartition("@")[2]).geturl()  # no token
        line += f" (commit {commit}, {public})"
    return line


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_print_version,
            is_eager=True,
            help="Print cptopt's version and exit.",
        ),
    ] = False,
) -> None:
    """Options of cptopt itself (before the command)."""


# No emoji codes: cptopt writes none, and a path or a run name with ':smile:' in it must
# print as written (rich's table of codes also took 10 ms to load at the first print).
stdout = Console(soft_wrap=False, emoji=False)
# Diagnostics are single lines whatever the terminal width (CI logs, grep).
stderr = Console(stderr=True, soft_wrap=True, emoji=False)

EXIT_FINDINGS, EXIT_ERROR = 1, 2


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


FORMAT_HELP = "Output format: 'table' (rich, for people) or 'json' (for scripts)."
#: The ``--format table|json`` option every result-printing command takes.
FormatOption = Annotated[OutputFormat, typer.Option("--format", help=FORMAT_HELP)]

F = TypeVar("F", bound=Callable[..., Any])


#: How a command names a field the library's messages mark (``cptopt.exceptions.param``),
#: when the command has the option that starts the text; other fields are ``--`` and the
#: name with dashes when the command has that option, else their Python name.
FIELD_NAMES = {
    "n_starts": "--starts",
    "n_jobs": "--jobs",
    "p_best_threshold": "--p-best",
    "columns.step": "--step / columns.step",
    "columns.lr": "--lr / columns.lr",
    "columns.general": "--general / columns.general",
    "columns.domain": "--domain / columns.domain",
    "columns.general/domain": "--general/--domain",
    "format:": "--log-format / format:",
}
#: The commands that run a library function, as its messages name it.
COMMAND_NAMES = {
    "fit()": "cptopt fit",
    "predict()": "cptopt predict",
    "recommend()": "cptopt recommend",
    "next_pilot()": "cptopt next-pilot",
    "check()": "cptopt check",
    "plot_fit()": "cptopt plot",
    "rank_candidates()": "cptopt recommend --candidates",
    "load_search_config()": "cptopt recommend --config",
    "check(limits_file=...)": "cptopt check --limits",
}


def cli_names(fields: typing.Iterable[str], options: typing.Collection[str]) -> dict[str, str]:
    """How a command with the long ``options`` names each field of a message."""
    names = {}
    for name in fields:
        text = FIELD_NAMES.get(name, "--" + name.replace("_", "-"))
        if text.split(" ")[0].split("/")[0] in options:
            names[name] = text
        elif name in COMMAND_NAMES:
            names[name] = COMMAND_NAMES[name]
    return names


def render_message(exc: BaseException, options: typing.Collection[str] = ()) -> str:
    """An exception's message on one line, the fields it marks named as the command's
    ``options`` name them (:func:`cli_names`)."""
    text = exc.render(cli_names(exc.fields, options)) if isinstance(exc, InputError) else str(exc)
    return " ".join(text.split())


def error_line(exc: BaseException, options: typing.Collection[str] = ()) -> tuple[str, int]:
    """The one stderr line and the exit code for an exception: the one place they are made.

    cptopt's own errors carry their line, with the fields it names as the command's long
    ``options`` name them; OS errors name the file and the problem; running out of memory
    says so; anything else is a bug (``internal error``, exit 2).
    """
    if isinstance(exc, InfeasibleError):
        return f"error: {render_message(exc, options)}", EXIT_FINDINGS
    if isinstance(exc, CptoptError):
        return f"error: {render_message(exc, options)}", EXIT_ERROR
    if isinstance(exc, OSError):
        from cptopt._io import os_error_line

        return f"error: {os_error_line(exc)}", EXIT_ERROR
    if isinstance(exc, MemoryError):
        return "error: out of memory (the input is too large for this machine)", EXIT_ERROR
    line = f"internal error: {type(exc).__name__}: {render_message(exc)} "
    return line + "(set CPTOPT_DEBUG=1 for the traceback)", EXIT_ERROR


def long_options(command: Callable[..., Any]) -> frozenset[str]:
    """The long options (``--name``) of a Typer command function, from its annotations."""
    found: set[str] = set()
    for name, hint in typing.get_type_hints(command, include_extras=True).items():
        for info in getattr(hint, "__metadata__", ()):
            if isinstance(info, OptionInfo):
                # In an Annotated hint Typer takes the first declaration as the "default".
                first = [info.default] if str(info.default).startswith("-") else []
                decls = [*first, *(info.param_decls or ())]
                declared = [part for decl in decls for part in decl.split("/")]
                found |= {d for d in declared or ["--" + name.replace("_", "-")] if d[:2] == "--"}
    return frozenset(found)


def handle_errors(command: F) -> F:
    """Turn every exception into one stderr line and an exit code (never a traceback).

    ``CPTOPT_DEBUG=1`` prints the traceback first, for bug reports; the line and the exit
    code stay the same (a CI job with debugging on still tells bad input, 2, from a broken
    limit, 1).
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _size_consoles()
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the CLI must never show a traceback
            if os.environ.get("CPTOPT_DEBUG"):
                traceback.print_exc(file=sys.stderr)
            line, code = error_line(exc, long_options(command))
            stderr.print(line, highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]


def _size_consoles() -> None:
    """Both consoles take this invocation's width ($COLUMNS, else the terminal's, else 80).

    Rich fixes a console's width when it is created if $COLUMNS is set then, i.e. at import:
    a program that runs several commands in one process (a script, a test runner) would
    otherwise keep the first width it saw.
    """
    width = shutil.get_terminal_size(fallback=(80, 25)).columns
    stdout.width = stderr.width = width


def emit(result: BaseModel | dict, output_format: OutputFormat, render: Callable[[], Any]) -> None:
    """Print a result: as JSON, or as ``render()`` (a rich renderable) for people, at the
    width of the terminal, or of ``$COLUMNS``, else 80 columns (files and pipes too)."""
    if output_format is OutputFormat.json:
        print_json(result)
    else:
        stdout.print(render())


def print_json(payload: BaseModel | dict | list) -> None:
    """Write JSON to stdout (plain print: rich would wrap long lines)."""
    from pydantic import BaseModel

    if isinstance(payload, BaseModel):
        text = payload.model_dump_json(indent=1)
    else:
        text = json.dumps(payload, indent=1)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def status(message: str) -> Spinner:
    """A spinner on stderr while long work runs, showing ``message`` and then the stages the
    library reports (call it as the library's ``progress``); silent when stderr is not a
    terminal."""
    return Spinner(message)


class Spinner:
    """The spinner of :func:`status`: ``spinner(stage, done, total)`` shows the stages still
    running with their counts (the general and the domain law are fitted side by side),
    else the last one."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.stages: dict[str, tuple[int, int]] = {}
        self.lock = threading.Lock()
        self.live: Any = stderr.status(message) if stderr.is_terminal else None

    def __enter__(self) -> Spinner:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self.lock:
            self.stages.pop(stage, None)
            self.stages[stage] = (done, total)  # the latest last
            if self.live is not None:
                self.live.update(self.text())

    def text(self) -> str:
        """What the spinner says: the running stages ``stage done/total``."""
        running = [(s, c) for s, c in self.stages.items() if c[0] < c[1]]
        shown = running or list(self.stages.items())[-1:]
        return "; ".join(f"{stage} {done}/{total}" for stage, (done, total) in shown)


def objective_weights(merged: SearchConfig) -> tuple[float, float]:
    """A search config's objective weights (a note on stderr when normalised)."""
    from cptopt.search import parse_weights

    raw_weights = merged.weights if merged.weights is not None else "0.5,0.5"
    w_general, w_domain, normalised = parse_weights(raw_weights)
    if normalised:
        stderr.print(
            f"note: weights {raw_weights} normalised to {w_general:.4g},{w_domain:.4g}",
            highlight=False,
        )
    return w_general, w_domain


def law_file(law_path: Path | None, named: str | None) -> Path:
    """The law file a search command reads: ``--law``, else the one its config names
    (``named``), else the default; one that does not exist is an error saying how to
    make it."""
    path = law_path or Path(named or DEFAULT_LAW_PATH)
    if not path.exists():
        raise InputError(
            f"law file not found: {path} (run 'cptopt fit PILOTS.yaml' first, or pass --law)"
        )
    return path


def weights_and_law(
    merged: SearchConfig, law_path: Path | None, purpose: str = "recommend()"
) -> tuple[tuple[float, float], CptLaw]:
    """The objective weights (a note on stderr when normalised) and the CPT law of a
    command that takes a search config (``purpose``: the library function the command
    runs, for the error a pre-training law gets)."""
    from cptopt.law import load_cpt_law

    weights = objective_weights(merged)
    return weights, load_cpt_law(law_file(law_path, merged.law), purpose)
