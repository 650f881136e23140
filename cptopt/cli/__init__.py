"""The ``cptopt`` command line: a thin layer over the library (see ``_common`` for exit codes).

Each command lives in its own module and registers itself on ``app`` when imported.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import signal
import sys
import threading
from collections.abc import Iterator
from inspect import cleandoc
from typing import Any

from cptopt.cli import check as _check  # noqa: F401
from cptopt.cli import design as _design  # noqa: F401
from cptopt.cli import fit as _fit  # noqa: F401  (registers the command)
from cptopt.cli import inspect as _inspect  # noqa: F401
from cptopt.cli import next_pilot as _next_pilot  # noqa: F401
from cptopt.cli import plot as _plot  # noqa: F401
from cptopt.cli import predict as _predict  # noqa: F401
from cptopt.cli import recommend as _recommend  # noqa: F401
from cptopt.cli._common import EXIT_ERROR, app, stderr


def _flow_command_help() -> None:
    """A docstring's source line breaks would show in ``--help``: each paragraph becomes one
    line that the help wraps to the terminal. The command list shows the first paragraph
    whole (click would cut it at 45 characters with '...')."""
    for info in app.registered_commands:
        doc = cleandoc(info.callback.__doc__ or "") if info.callback else ""
        paragraphs = [" ".join(paragraph.split()) for paragraph in doc.split("\n\n")]
        info.help = "\n\n".join(paragraphs)
        info.short_help = paragraphs[0]


_flow_command_help()


def _usage_error_class() -> type[Exception]:
    """Click's ``UsageError`` as Typer raises it (Typer >= 0.22 ships its own click)."""
    import typer

    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit (exit 143) while a command runs, so that workers are
    stopped and temporary files removed as for any error (Python's default just dies)."""

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _click_command(argv: list[str]) -> Any:
    """The click command that runs ``argv``: the app with only the command ``argv`` starts
    with, when it starts with one (Typer builds the options of every command it holds, about
    20 ms of each command's start-up for the seven others), else the whole app (``--help``,
    ``--version``, no command, an unknown one)."""
    import typer

    named = [info for info in app.registered_commands if argv and info.name == argv[0]]
    if not named:
        return typer.main.get_command(app)
    single = copy.copy(app)  # the same callback (cptopt's own options) and settings
    single.registered_commands = named
    return typer.main.get_command(single)


def run(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    Usage errors (an unknown option or command, a value out of range) become one line on
    stderr and exit code 2, like every other error, instead of click's multi-line panel.
    """
    import typer

    command = _click_command(sys.argv[1:] if argv is None else argv)
    usage_error = _usage_error_class()
    try:
        with _terminate_as_exit():
            result = command.main(args=argv, prog_name="cptopt", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        stderr.print("aborted", highlight=False)
        return 130
    except usage_error as exc:
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and context is not None:
            stderr.print(context.get_help(), highlight=False, markup=False)
            return EXIT_ERROR
        hint = ""
        if context is not None and context.parent is not None:
            hint = f" (see 'cptopt {context.info_name} --help')"
        message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
        stderr.print(f"error: {message}{hint}", highlight=False, markup=False, soft_wrap=True)
        return EXIT_ERROR
    return result if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry point."""
    code = run()
    # The process ends here. Frozen, the heap is skipped by the garbage collections of the
    # interpreter's exit, which otherwise walk every object (numpy's and pydantic's modules,
    # the law): 0.06-0.09 s of every command. Nothing cptopt made needs the collector to be
    # finalised: its files are closed (laws and configs written atomically), studies
    # committed, workers stopped.
    gc.freeze()
    sys.exit(code)


__all__ = ["app", "main", "run"]
