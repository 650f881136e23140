"""``cptopt design``: the first pilot runs to launch, before any fit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cptopt.cli._common import FormatOption, OutputFormat, app, emit, handle_errors
from cptopt.cli._search_options import (
    RANGE_HELP,
    ConfigOption,
    FamiliesOption,
    MaxGeneralRiseOption,
    MaxStepsOption,
    shared_search_config,
)
from cptopt.exceptions import InputError


@app.command("design")
@handle_errors
def design_command(
    pilot_steps: Annotated[
        int,
        typer.Option(help="Length of each pilot run (steps).", min=10, show_default=False),
    ],
    peak_lr: Annotated[
        str | None,
        typer.Option(
            help=f"Peak LR bounds the decision will search, {RANGE_HELP} (required: before "
            "any pilot there is no range to take it from; e.g. 0.3x to 1x the pre-training "
            "peak LR).",
            show_default=False,
        ),
    ] = None,
    replay: Annotated[
        str | None,
        typer.Option(
            help=f"Replay ratio bounds, {RANGE_HELP} (default 0,0.5).", show_default=False
        ),
    ] = None,
    reach_peak_lr: Annotated[
        str | None,
        typer.Option(
            help="Peak LR range 'LO,HI' you expect to RECOMMEND in later, wider than "
            "--peak-lr: the pilots may go there and spread over both, and the decision is "
            "judged on both (default: --peak-lr's range). Opt-in: see the README for where "
            "it helped and where it hurt.",
            show_default=False,
        ),
    ] = None,
    reach_replay: Annotated[
        str | None,
        typer.Option(
            help="Replay ratio range 'LO,HI' (within 0..1) you expect to recommend in, "
            "wider than --replay (default: --replay's range).",
            show_default=False,
        ),
    ] = None,
    n_pilots: Annotated[
        int, typer.Option("--pilots", help="How many pilots to design.", min=1, max=20)
    ] = 5,
    prior: Annotated[
        list[Path] | None,
        typer.Option(
            help="A law file fitted on another domain to reason with (repeat for several). "
            "Default: the bundled laws of the code and cyr domains.",
            show_default=False,
        ),
    ] = None,
    pretrain_lr: Annotated[
        float | None,
        typer.Option(
            help="Peak LR of the pre-training run: LRs are mapped onto the priors' as "
            "multiples of it (default: the top of --peak-lr).",
            show_default=False,
        ),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            help="Objective weights 'GENERAL,DOMAIN' of the decision (default: 0.3,0.7, "
            "0.5,0.5 and 0.7,0.3 together).",
            show_default=False,
        ),
    ] = None,
    candidates: Annotated[
        Path | None,
        typer.Option(
            help="The pilot runs to choose from (as for recommend --candidates). Default: "
            "peak LRs x replay ratios x families of the space, as long as the pilots.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    steps: Annotated[
        str | None,
        typer.Option(
            help=f"CPT steps bounds of the decision, {RANGE_HELP} (default: the pilots' length).",
            show_default=False,
        ),
    ] = None,
    families: FamiliesOption = None,
    max_steps: MaxStepsOption = None,
    max_general_rise: MaxGeneralRiseOption = None,
    write: Annotated[
        Path | None,
        typer.Option(
            help="Also write each pilot as a training config (YAML) into this folder "
            "(created if missing; each file written atomically).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the Monte Carlo draws.")] = 0,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """The first pilot runs to launch, before any fit, and why each is there.

    Before any pilot there is no law, so the design reasons with a prior: laws fitted on
    other domains (default: the bundled code and cyr laws; --prior for your own). Greedy:
    first pilots that reach both ends of the peak-LR and replay ranges recommend will
    search, then those that most lower the expected regret of its decision, then those
    farthest from any pilot, then the most informative about the law.

    --reach-peak-lr and --reach-replay widen where the pilots may go to the ranges you
    expect to recommend in (e.g. --reach-peak-lr 6e-4,6e-3 for pilots up to 3x).

    Example: cptopt design --pilot-steps 1000 --peak-lr 6e-4,2e-3. Then run the pilots,
    list them in a pilot manifest, and go on with cptopt fit, cptopt next-pilot and cptopt
    recommend.
    """
    from cptopt.design import design_pilots, write_pilot_configs
    from cptopt.report import design_report
    from cptopt.search import load_candidates

    if write is not None and write.exists() and not write.is_dir():
        raise InputError(f"{write}: not a directory (--write takes a folder)")
    merged = shared_search_config(
        config,
        peak_lr=peak_lr,
        replay=replay,
        steps=steps,
        families=families,
        max_steps=max_steps,
        max_general_rise=max_general_rise,
    )
    result = design_pilots(
        merged.space,
        merged.constraints,
        pilot_steps,
        n_pilots,
        prior=prior or None,
        weights=[weights] if weights is not None else None,
        pretrain_lr=pretrain_lr,
        candidate_pilots=load_candidates(candidates) if candidates is not None else None,
        seed=seed,
        reach_peak_lr=reach_peak_lr,
        reach_replay=reach_replay,
    )
    if write is not None:
        for path in write_pilot_configs(result, write):
            result.notes.append(f"wrote {path}")
    emit(result, output_format, lambda: design_report(result))
