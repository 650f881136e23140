"""``cptopt next-pilot``: which pilot run to launch next, and when to stop piloting."""

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
    weights_and_law,
)
from cptopt.cli._defaults import DEFAULT_P_BEST, DEFAULT_TOLERANCE
from cptopt.cli._search_options import (
    ConfigOption,
    FamiliesOption,
    LawOption,
    MaxGeneralRiseOption,
    MaxStepsOption,
    PeakLrOption,
    ReplayOption,
    StepsOption,
    shared_search_config,
)


@app.command("next-pilot")
@handle_errors
def next_pilot_command(
    weights: Annotated[
        str | None,
        typer.Option(
            help="Objective weights 'GENERAL,DOMAIN' of the decision (default 0.5,0.5).",
            show_default=False,
        ),
    ] = None,
    law_path: LawOption = None,
    pilots: Annotated[
        Path | None,
        typer.Option(
            help="The pilot manifest the law was fitted to: a candidate that repeats a pilot "
            "then counts as adding nothing, and candidates log at the pilots' eval spacing.",
            show_default=False,
        ),
    ] = None,
    candidates: Annotated[
        Path | None,
        typer.Option(
            help="Candidate pilot runs to rank (YAML 'candidates:' list or CSV, as for "
            "recommend --candidates). Default: peak LRs x replay ratios x families of the "
            "search space, --pilot-steps long.",
            show_default=False,
        ),
    ] = None,
    options: Annotated[
        Path | None,
        typer.Option(
            help="The settings the decision chooses between (same formats). Default: a grid "
            "of the space recommend searches.",
            show_default=False,
        ),
    ] = None,
    pilot_steps: Annotated[
        int | None,
        typer.Option(
            help="Length of the default candidates (default: the longest pilot).",
            show_default=False,
        ),
    ] = None,
    top_k: Annotated[int, typer.Option(help="Candidates to show.")] = 5,
    tolerance: Annotated[
        float,
        typer.Option(
            help="Stop piloting when the expected regret is below this share of the "
            "objective (the noise floor).",
        ),
    ] = DEFAULT_TOLERANCE,
    p_best: Annotated[
        float,
        typer.Option(
            "--p-best",
            help="... or when P(best) of the recommendation reaches this.",
            min=0.0,
            max=1.0,
        ),
    ] = DEFAULT_P_BEST,
    config: ConfigOption = None,
    peak_lr: PeakLrOption = None,
    replay: ReplayOption = None,
    steps: StepsOption = None,
    families: FamiliesOption = None,
    max_steps: MaxStepsOption = None,
    max_general_rise: MaxGeneralRiseOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the Monte Carlo draws.")] = 0,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Rank candidate pilot runs by how much each is expected to improve the decision.

    Decision-focused design on the law's own uncertainty (its leave-one-pilot-out refits):
    for each candidate, the expected regret of the recommendation made after running it.
    Says when no further pilot is worth running.
    """
    from cptopt.design import next_pilot
    from cptopt.pilots import load_manifest
    from cptopt.report import next_pilot_report
    from cptopt.search import load_candidates

    merged = shared_search_config(
        config,
        peak_lr=peak_lr,
        replay=replay,
        steps=steps,
        families=families,
        max_steps=max_steps,
        max_general_rise=max_general_rise,
        weights=weights,
    )
    weights_pair, law = weights_and_law(merged, law_path, "next_pilot()")
    result = next_pilot(
        law,
        weights_pair,
        pilots=load_manifest(pilots, kind="cpt") if pilots is not None else None,
        candidate_pilots=load_candidates(candidates) if candidates is not None else None,
        options=load_candidates(options) if options is not None else None,
        space=merged.space,
        constraints=merged.constraints,
        allow_extrapolation=merged.allow_extrapolation,
        pilot_steps=pilot_steps,
        top_k=top_k,
        tolerance=tolerance,
        p_best_threshold=p_best,
        seed=seed,
    )
    emit(result, output_format, lambda: next_pilot_report(result))
