"""``cptopt inspect``: what cptopt finds in each training log, before any fit."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cptopt._version import __version__
from cptopt.cli._common import (
    EXIT_ERROR,
    FormatOption,
    OutputFormat,
    app,
    handle_errors,
    long_options,
    print_json,
    render_message,
    stderr,
    stdout,
)
from cptopt.cli._defaults import LOG_FORMATS
from cptopt.exceptions import InputError

if TYPE_CHECKING:
    from cptopt.pilots import ColumnMap

LOG_FORMAT_HELP = f"Log format: {', '.join(LOG_FORMATS)} ('auto' detects it from the file)."


def _column_map(
    step: str | None, lr: str | None, general: str | None, domain: str | None
) -> ColumnMap:
    """A map with only the roles given on the command line set (the rest are inferred)."""
    from cptopt.pilots import ColumnMap

    given = {"step": step, "lr": lr, "general": general, "domain": domain}
    values: dict[str, str | None] = {}
    for role, name in given.items():
        if name is None:
            continue
        values[role] = None if name.lower() in ("none", "null", "-") and role != "step" else name
    return ColumnMap(**values)


@app.command("inspect")
@handle_errors
def inspect_command(
    logs: Annotated[
        list[Path],
        typer.Argument(
            help="Training logs: trainer_state.json, TensorBoard event files or run dirs, "
            "Lightning metrics.csv, W&B CSV export or history (CSV/parquet), W&B run folders "
            "or .wandb files, CSV, JSONL.",
            show_default=False,
        ),
    ],
    log_format: Annotated[str, typer.Option("--log-format", help=LOG_FORMAT_HELP)] = "auto",
    step: Annotated[str | None, typer.Option(help="Series/column holding the step.")] = None,
    lr: Annotated[
        str | None, typer.Option(help="Series holding the LR ('none': no LR logged).")
    ] = None,
    general: Annotated[str | None, typer.Option(help="Series of the general loss.")] = None,
    domain: Annotated[str | None, typer.Option(help="Series of the domain loss.")] = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Show the series each log holds, the mapping cptopt would use and the LR coverage.

    Fix the mapping (--general, --domain, --lr; 'columns:' in a manifest) before fitting.
    Exits 2 if a log cannot be read or its mapping fails (one error line per log).
    """
    if log_format not in LOG_FORMATS:  # named as the option here; the library names its parameter
        raise InputError(f"--log-format == {log_format!r}, must be one of {', '.join(LOG_FORMATS)}")
    from cptopt.pilots import read_raw, summarize
    from cptopt.report import inspect_table

    columns = _column_map(step, lr, general, domain)
    options = long_options(inspect_command)
    summaries = [
        summarize(
            read_raw(path, log_format, columns), columns, partial(render_message, options=options)
        )
        for path in logs
    ]
    if output_format is OutputFormat.json:
        print_json({"cptopt_version": __version__, "logs": summaries})
    else:
        for summary in summaries:
            stdout.print(inspect_table(summary), crop=False)
            for note in summary["notes"]:
                stdout.print(f"note: {note}", highlight=False)
            if summary["suggested_columns"]:
                stdout.print(
                    f"suggested mapping (val_dataloaders order): {summary['suggested_columns']}",
                    highlight=False,
                    markup=False,
                )
    failed = [summary for summary in summaries if summary["error"]]
    for summary in failed:
        stderr.print(f"error: {summary['error']}", highlight=False, markup=False, soft_wrap=True)
    if failed:
        raise typer.Exit(EXIT_ERROR)
