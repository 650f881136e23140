"""``cptopt fit``: pilot manifest in, law file and fit-quality report out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cptopt.cli._common import (
    FORMAT_HELP,
    OutputFormat,
    app,
    handle_errors,
    print_json,
    status,
    stderr,
    stdout,
)
from cptopt.fit import LawFitter
from cptopt.lawfile import DEFAULT_LAW_PATH
from cptopt.report import fit_report
from cptopt.runs import load_manifest


@app.command("fit")
@handle_errors
def fit_command(
    manifest: Annotated[
        Path,
        typer.Argument(
            help="Pilot manifest (YAML): the pilot logs, their replay ratios, CPT schedules "
            "and the checkpoint's PT history. See examples/pilots/*.yaml.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the fitted law (JSON).")
    ] = Path(DEFAULT_LAW_PATH),
    lam: Annotated[
        float,
        typer.Option(
            "--lam",
            help="Annealing memory of the m-recursion (paper: 0.999). Must be in (0, 1).",
        ),
    ] = 0.999,
    seed: Annotated[int, typer.Option(help="Seed of the random starts (same seed, same law).")] = 0,
    starts: Annotated[
        int, typer.Option(min=1, help="Optimiser starts polished per fit (more = slower, safer).")
    ] = 4,
    jackknife: Annotated[
        bool,
        typer.Option(
            help="Refit leaving each pilot out: cross-validated error and uncertainties.",
        ),
    ] = True,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help=FORMAT_HELP)
    ] = OutputFormat.table,
) -> None:
    """Fit the CPT law to pilot runs and write it to a law file.

    Both validation sets (general and domain) get their own parameters. The report shows
    every parameter with its jackknife standard error, the fit error of each pilot and its
    leave-one-pilot-out cross-validated error, and warnings (parameters at a bound, weakly
    identified terms, a single replay ratio).
    """
    pilots = load_manifest(manifest)
    with status(f"fitting {len(pilots.runs)} pilot runs"):
        law = LawFitter(lam=lam, seed=seed, n_starts=starts, jackknife=jackknife).fit(pilots).law_
    law.save(output)
    if output_format is OutputFormat.json:
        print_json(law)
    else:
        stdout.print(fit_report(law))
    stderr.print(f"law written to {output}", highlight=False)
