"""``cptopt fit``: pilot manifest in, law file and fit-quality report out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cptopt.cli._common import (
    FormatOption,
    OutputFormat,
    app,
    emit,
    handle_errors,
    status,
    stderr,
)
from cptopt.cli._defaults import DEFAULT_LAW_PATH, DEFAULT_STARTS, MAX_SEED, MAX_STARTS


@app.command("fit")
@handle_errors
def fit_command(
    manifest: Annotated[
        Path,
        typer.Argument(
            help="Pilot manifest (YAML): the pilot logs, their replay ratios, CPT schedules "
            "and the checkpoint's PT history; or, with 'kind: pretrain', pre-training runs "
            "and their schedules. See examples/pilots/*.yaml.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the fitted law (JSON).")
    ] = Path(DEFAULT_LAW_PATH),
    form: Annotated[
        str,
        typer.Option(
            "--form",
            help="Law form: 'auto' (each validation set's law is the average of a few replay "
            "forms, weighted by their leave-one-pilot-out CV on the pilots: general odds and "
            "relax with an LR power, domain relax with and without), 'paper' (the paper's "
            "Eq. 4/Eq. 8 exactly: "
            "S2 with lambda 0.999, unless --lam/--annealing say otherwise), 'exp' "
            "(exponential replay terms), 'share' (annealing credit ~ own data share), "
            "'mix' (share, and CPT steps count for the general power law by their data mix), "
            "'odds' (share, and forgetting ~ 1/(1 + a2 r/(1-r)): steep near r = 0) or 'relax' "
            "(odds's level, reached sooner with replay). "
            "Pre-training pilots take 'auto' (the law's pre-training part) or 'paper' (S2, "
            "lambda 0.999).",
        ),
    ] = "auto",
    annealing: Annotated[
        str | None,
        typer.Option(
            "--annealing",
            help="Annealing memory: 's2' (the paper's m-recursion with factor lambda), 'mpl' "
            "(multi-power: a drop's credit grows with the LR area trained since it) or "
            "'auto' (both are candidates; CV decides). Default: mpl, or auto with --lam or "
            "--form paper. Pre-training pilots also take 'mpl1' (multi-power, saturation power "
            "1); their default is auto (all of them).",
            show_default=False,
        ),
    ] = None,
    lr_power: Annotated[
        str | None,
        typer.Option(
            "--lr-power",
            help="Drive the shift term by the sum of LR^q (q fitted per set) instead of the "
            "LR area: 'yes', 'no' or 'auto'. With --form auto, yes/no sets every member's "
            "(auto: as listed there); with a named form, auto makes it a candidate per set, "
            "kept when its CV clearly wins. Default: auto with --form auto, else no.",
            show_default=False,
        ),
    ] = None,
    domain_forward: Annotated[
        str,
        typer.Option(
            "--domain-forward",
            help="'frozen': the domain law's PT power law keeps its checkpoint value during "
            "CPT (the domain loss moves by the shift and the annealing credit); 'advance': "
            "CPT steps advance it as PT steps did (the paper's Eq. 4).",
        ),
    ] = "frozen",
    pt_points: Annotated[
        str | None,
        typer.Option(
            "--pt-points",
            help="PT-phase points pooled in both fits: 'all', 'checkpoint' (only the "
            "checkpoints' values) or 'none'. Default: general all, domain checkpoint.",
            show_default=False,
        ),
    ] = None,
    tie: Annotated[
        str,
        typer.Option(
            "--tie",
            help="Share the multi-power memory (rate, gamma, zeta) between the general and the "
            "domain law of a named form (--form NAME): 'no', 'yes', or 'auto' (a candidate of "
            "its own, kept when its CV is within the noise of the untied law's; about 0.7 s "
            "more).",
        ),
    ] = "no",
    lam: Annotated[
        str | None,
        typer.Option(
            "--lam",
            help="Lambda of the S2 memory, in (0, 1), or 'auto' (CV over "
            "0.98/0.99/0.995/0.999). A number implies --annealing s2. Default: auto, or "
            "0.999 with --form paper.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(min=0, max=MAX_SEED, help="Seed of the random starts (same seed, same law)."),
    ] = 0,
    starts: Annotated[
        int,
        typer.Option(
            min=1, max=MAX_STARTS, help="Optimiser starts polished per fit (more = slower, safer)."
        ),
    ] = DEFAULT_STARTS,
    jackknife: Annotated[
        bool,
        typer.Option(
            help="Refit leaving each pilot out: cross-validated error and uncertainties.",
        ),
    ] = True,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            min=1,
            help="Processes for the fit (1: in this process). Default: 2 when this process "
            "may run on 2 or more cores, else 1. The law does not depend on it.",
            show_default=False,
        ),
    ] = None,
    output_format: FormatOption = OutputFormat.table,
    deprecated_law: Annotated[
        str | None, typer.Option("--law", hidden=True, show_default=False)
    ] = None,
) -> None:
    """Fit the CPT law to pilot runs and write it to a law file.

    Both validation sets (general and domain) get their own parameters. With --form auto
    (the default) each set's law is the average of a few replay forms, each fitted alone
    and weighted by its leave-one-pilot-out cross-validated error on the pilots; the report
    shows that table and which PT-phase points each fit used. It then shows every parameter
    with its jackknife standard error, the fit error of each pilot and its cross-validated
    error, and warnings (parameters at a bound, weakly identified terms, a single replay
    ratio). The law file is written atomically.

    A manifest of pre-training runs ('kind: pretrain') gets the law's pre-training part,
    L0 + A*S1^-alpha - C1*annealing, its annealing memory chosen by leave-one-run-out CV.
    """
    from cptopt._io import check_output_path
    from cptopt.fitting import LawFitter
    from cptopt.law import scenario_type
    from cptopt.pilots import load_pilots, read_manifest
    from cptopt.report import fit_report

    if deprecated_law is not None:
        stderr.print(
            "note: 'cptopt fit --law' is now --form (--law names a law file in the other "
            "commands); --law will be removed in the next release",
            highlight=False,
        )
        form = deprecated_law if form == "auto" else form
    fitter = LawFitter(
        form=form,
        lam=lam,
        annealing=annealing,
        tie=tie,
        lr_power=lr_power,
        domain_forward=domain_forward,
        pt_points=pt_points,
        seed=seed,
        n_starts=starts,
        jackknife=jackknife,
        n_jobs=jobs,
    )
    header = read_manifest(manifest)  # the logs, which can be slow to read, come last
    fitter.check_settings(scenario_type(header.kind))
    check_output_path(output)
    with status(f"reading {len(header.runs)} pilot logs") as progress:
        pilots = load_pilots(header, manifest, progress)
        law = fitter.fit(pilots, progress).law_
    law.save(output)
    emit(law, output_format, lambda: fit_report(law))
    stderr.print(f"law written to {output}", highlight=False, markup=False)  # a path as written
