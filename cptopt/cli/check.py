"""``cptopt check``: training configs in, CI verdicts out (exit codes as Ruff's)."""

from __future__ import annotations

from enum import Enum
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from cptopt.cli._common import app, handle_errors, long_options, render_message, stderr, stdout


class CheckFormat(str, Enum):
    text = "text"
    json = "json"
    github = "github"


@app.command("check")
@handle_errors
def check_command(
    configs: Annotated[
        list[Path],
        typer.Argument(
            help="Training configs (YAML) to judge, e.g. configs/*.yaml.", show_default=False
        ),
    ],
    law_path: Annotated[
        Path | None,
        typer.Option(
            "--law",
            help="Fitted law file for every config. Default: the config's 'law' key, else "
            "the limits file's 'law', else cptopt-law.json.",
            show_default=False,
        ),
    ] = None,
    max_general_rise: Annotated[
        float | None,
        typer.Option(help="Largest allowed final general loss minus its pre-CPT value (nats)."),
    ] = None,
    max_final_domain_loss: Annotated[
        float | None, typer.Option(help="Largest allowed final domain loss (nats).")
    ] = None,
    min_domain_gain: Annotated[
        float | None,
        typer.Option(help="Smallest allowed fall of the domain loss, pre-CPT minus final (nats)."),
    ] = None,
    allow_extrapolation: Annotated[
        bool | None,
        typer.Option(
            "--allow-extrapolation/--no-allow-extrapolation",
            help="Settings outside the pilots' range only warn (default: they fail).",
            show_default=False,
        ),
    ] = None,
    conservative: Annotated[
        bool | None,
        typer.Option(
            "--conservative/--no-conservative",
            help="Judge the upper end of the prediction interval, not the central value.",
            show_default=False,
        ),
    ] = None,
    level: Annotated[
        float | None,
        typer.Option(help="Central probability of the intervals (default 0.9).", min=0.5, max=0.99),
    ] = None,
    limits_file: Annotated[
        Path | None,
        typer.Option(
            "--limits",
            help="cptopt.toml or pyproject.toml to read limits from. Default: the nearest one "
            "above each config ([check] or [tool.cptopt.check] table).",
            show_default=False,
        ),
    ] = None,
    isolated: Annotated[
        bool, typer.Option("--isolated", help="Ignore limits files; use the flags only.")
    ] = False,
    output_format: Annotated[
        CheckFormat,
        typer.Option(
            "--format",
            envvar="CPTOPT_FORMAT",
            help="'text' for people, 'json' for scripts, 'github' for workflow annotations.",
        ),
    ] = CheckFormat.text,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the report to this file (atomically), not stdout."
        ),
    ] = None,
    exit_zero: Annotated[
        bool,
        typer.Option(
            "--exit-zero", help="Exit 0 even when a limit is broken (still 2 on bad input)."
        ),
    ] = False,
) -> None:
    """Judge training configs against limits: exit 0 all pass, 1 a limit broken, 2 bad input.

    A config fails when the law's prediction breaks a limit or, unless extrapolation is
    allowed, a setting lies outside what the pilots covered. Limits come from these flags,
    else from [tool.cptopt.check] in pyproject.toml or [check] in cptopt.toml.
    """
    from cptopt._io import atomic_write_text, check_output_path
    from cptopt.limits import check
    from cptopt.report import format_github, format_text

    if output is not None:
        check_output_path(output)  # before any work
    report = check(
        configs,
        law_path,
        limits_file=limits_file,
        isolated=isolated,
        max_general_rise=max_general_rise,
        max_final_domain_loss=max_final_domain_loss,
        min_domain_gain=min_domain_gain,
        allow_extrapolation=allow_extrapolation,
        conservative=conservative,
        level=level,
    )
    options = long_options(check_command)
    for result in report.results:
        if result.problem is not None:
            line = render_message(result.problem, options)
            prefix = "note: skipped " if result.verdict == "skipped" else "error: "
            stderr.print(prefix + line, highlight=False, markup=False, soft_wrap=True)
    if output_format is CheckFormat.json:
        text = report.model_dump_json(indent=1) + "\n"
    elif output_format is CheckFormat.github:
        text = format_github(report, partial(render_message, options=options))
    else:
        text = format_text(report, width=None if output is not None else stdout.width)
    if output is not None:
        atomic_write_text(output, text)
        stderr.print(f"report written to {output}", highlight=False, markup=False)
    elif output_format is CheckFormat.text:
        # format_text wrapped it at this width already
        stdout.print(text, end="", highlight=False, markup=False, soft_wrap=True)
    else:
        typer.echo(text, nl=False)
    raise typer.Exit(report.exit_code(exit_zero))
