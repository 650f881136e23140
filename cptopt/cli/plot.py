"""``cptopt plot``: a law file (and the pilots) in, a picture of the fit out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cptopt.cli._common import app, handle_errors, stderr
from cptopt.cli._defaults import DEFAULT_DPI, DEFAULT_LAW_PATH
from cptopt.exceptions import InputError


@app.command("plot")
@handle_errors
def plot_command(
    law_path: Annotated[
        Path,
        typer.Argument(help="Fitted law file (from 'cptopt fit').", show_default=True),
    ] = Path(DEFAULT_LAW_PATH),
    law_option: Annotated[
        Path | None,
        typer.Option(
            "--law",
            help="The law file, as the other commands take it (instead of LAW_PATH).",
            show_default=False,
        ),
    ] = None,
    pilots: Annotated[
        Path | None,
        typer.Option(
            "--pilots",
            help="Pilot manifest (of the law's kind): draw the fitted curves over its runs, "
            "with residuals. Runs the law was not fitted to are drawn dashed (held out). "
            "Without it: the per-pilot errors stored in the law file.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Image file (PNG; .svg/.pdf also work).")
    ] = Path("cptopt-fit.png"),
    size: Annotated[str, typer.Option(help="Image size in pixels, WIDTHxHEIGHT.")] = "1200x800",
    dpi: Annotated[int, typer.Option(min=30, max=600, help="Resolution.")] = DEFAULT_DPI,
) -> None:
    """Draw the fitted law over the pilot data with residuals, to judge whether to trust it
    (a CPT law's general and domain loss, or a pre-training law's loss).

    Needs matplotlib: pip install 'cptopt[plot]'.
    """
    from cptopt._io import check_output_path
    from cptopt.law import load_law
    from cptopt.pilots import load_manifest
    from cptopt.report import parse_size, plot_fit

    if law_option is not None:
        if law_path != Path(DEFAULT_LAW_PATH) and law_path != law_option:
            raise InputError(
                f"the law file is given twice ({law_path} and --law {law_option}): give one"
            )
        law_path = law_option
    dimensions = parse_size(size)
    check_output_path(output)
    law = load_law(law_path)
    pilot_set = load_manifest(pilots, kind=law.scenario.kind) if pilots is not None else None
    written = plot_fit(law, output, pilot_set, size=dimensions, dpi=dpi)
    stderr.print(f"plot written to {written}", highlight=False, markup=False)
