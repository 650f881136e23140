"""``cptopt recommend``: the settings that minimise the weighted final loss, from a law file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from cptopt.cli._common import (
    FormatOption,
    OutputFormat,
    app,
    emit,
    handle_errors,
    stderr,
    weights_and_law,
)
from cptopt.cli._pilot_hint import print_next_pilot_hint
from cptopt.cli._search_options import (
    OPTION_KEYS,
    RANGE_HELP,
    ConfigOption,
    FamiliesOption,
    LawOption,
    MaxGeneralRiseOption,
    MaxStepsOption,
    PeakLrOption,
    ReplayOption,
    StepsOption,
)
from cptopt.report import ranking_report, recommendation_report
from cptopt.search import (
    SearchConfig,
    load_candidates,
    load_search_config,
    rank_candidates,
    recommend,
)


@contextlib.contextmanager
def _progress_bar(enabled: bool) -> Iterator[Any]:
    """A rich progress bar on stderr when it is a terminal (else a no-op callback)."""
    if not enabled or not stderr.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as progress:
        task = progress.add_task("searching", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


@app.command("recommend")
@handle_errors
def recommend_command(
    weights: Annotated[
        str | None,
        typer.Option(
            help="Objective weights 'GENERAL,DOMAIN' (e.g. 0.3,0.7): minimise "
            "w_g*L_general(T) + w_d*L_domain(T). Normalised if they do not sum to 1. "
            "Default 0.5,0.5.",
            show_default=False,
        ),
    ] = None,
    law_path: LawOption = None,
    config: ConfigOption = None,
    peak_lr: PeakLrOption = None,
    replay: ReplayOption = None,
    steps: StepsOption = None,
    families: FamiliesOption = None,
    warmup_fraction: Annotated[
        str | None,
        typer.Option(
            help=f"Warmup fraction, {RANGE_HELP} (default: fixed at 0.02).", show_default=False
        ),
    ] = None,
    decay_fraction: Annotated[
        str | None,
        typer.Option(
            help=f"WSD decay fraction, {RANGE_HELP} (default: 0.1,0.5).", show_default=False
        ),
    ] = None,
    checkpoints: Annotated[
        str | None,
        typer.Option(
            help="Candidate starting checkpoints: names or PT steps, e.g. "
            "2400,3200,4000 (needs the PT history). Default: the pilots'.",
            show_default=False,
        ),
    ] = None,
    allow_extrapolation: Annotated[
        bool | None,
        typer.Option(
            "--allow-extrapolation",
            help="Search peak LRs up to 3x beyond the pilots' "
            "range (flagged: the law has no 'LR too large' regime).",
            show_default=False,
        ),
    ] = None,
    max_steps: MaxStepsOption = None,
    tokens_per_step: Annotated[
        int | None,
        typer.Option(
            help="Tokens per step of the planned run (default: the pilots').", show_default=False
        ),
    ] = None,
    max_tokens: Annotated[
        float | None, typer.Option(help="Token budget of the run.", show_default=False)
    ] = None,
    domain_tokens: Annotated[
        float | None,
        typer.Option(help="Size of the domain data set in tokens.", show_default=False),
    ] = None,
    max_epochs: Annotated[
        float | None,
        typer.Option(
            help="At most this many epochs of domain data, (1-r)*T*tokens_per_step/"
            "domain_tokens (needs --domain-tokens).",
            show_default=False,
        ),
    ] = None,
    max_general_rise: MaxGeneralRiseOption = None,
    sampler: Annotated[
        str | None,
        typer.Option(
            help="Optuna sampler: tpe, cmaes, gp or qmc (default tpe).", show_default=False
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            help="Complete trials the study must hold (default 128, the 64-trial seed batch "
            "included; shared by every process on the study).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed (same inputs and seed, same recommendation; default 0).", show_default=False
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage: sqlite:///FILE, postgresql://..., or journal:FILE "
            "(several processes on one machine). Default: $OPTUNA_STORAGE, else in "
            "memory.",
            show_default=False,
        ),
    ] = None,
    study_name: Annotated[
        str | None,
        typer.Option(
            help="Study name (default: derived from the law, weights, space and "
            "constraints, so rerunning the same command resumes it).",
            show_default=False,
        ),
    ] = None,
    top_k: Annotated[
        int | None, typer.Option(help="Alternatives to show (default 5).", show_default=False)
    ] = None,
    level: Annotated[
        float | None,
        typer.Option(
            help="Central probability of the intervals (default 0.9).", show_default=False
        ),
    ] = None,
    pareto: Annotated[
        bool | None,
        typer.Option(
            "--pareto",
            help="Also print the general-vs-domain Pareto front (a sweep of the weights).",
            show_default=False,
        ),
    ] = None,
    candidates: Annotated[
        Path | None,
        typer.Option(
            help="Rank these configurations instead of searching (YAML 'candidates:' "
            "list or CSV); shows intervals and the probability each is the best.",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Optuna's log lines.")
    ] = False,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Recommend peak LR, replay ratio, steps and schedule shape for a CPT run.

    Minimises w_g*L_general(T) + w_d*L_domain(T) predicted by the fitted law with an Optuna
    study, then cross-checks the answer with a dense vectorised search of the same space.
    The space defaults to what the pilots covered; settings outside it are flagged.
    """
    base = load_search_config(config) if config is not None else SearchConfig()
    flags = {
        "space.peak_lr": peak_lr,
        "space.replay_ratio": replay,
        "space.steps": steps,
        "space.families": families,
        "space.warmup_fraction": warmup_fraction,
        "space.decay_fraction": decay_fraction,
        "space.checkpoints": checkpoints,
        "constraints.max_steps": max_steps,
        "constraints.tokens_per_step": tokens_per_step,
        "constraints.max_tokens": max_tokens,
        "constraints.domain_tokens": domain_tokens,
        "constraints.max_epochs": max_epochs,
        "constraints.max_general_rise": max_general_rise,
        "search.sampler": sampler,
        "search.trials": trials,
        "search.seed": seed,
        "search.storage": storage,
        "search.study_name": study_name,
        "weights": weights,
        "allow_extrapolation": allow_extrapolation,
        "top_k": top_k,
        "level": level,
        "pareto": pareto,
    }
    merged = base.with_overrides(flags, aliases=OPTION_KEYS)
    (w_general, w_domain), law = weights_and_law(merged, law_path)
    if candidates is not None:
        ranked = load_candidates(candidates)
        ranking = rank_candidates(
            law,
            ranked,
            (w_general, w_domain),
            constraints=merged.constraints,
            level=merged.level,
            seed=merged.search.seed,
        )
        emit(ranking, output_format, lambda: ranking_report(ranking))
        print_next_pilot_hint(law, (w_general, w_domain), merged, output_format, ranked)
        return
    with _progress_bar(True) as progress:
        result = recommend(
            law,
            (w_general, w_domain),
            space=merged.space,
            constraints=merged.constraints,
            settings=merged.search,
            allow_extrapolation=merged.allow_extrapolation,
            top_k=merged.top_k,
            level=merged.level,
            pareto=merged.pareto,
            verbose=verbose,
            progress=progress,
        )
    emit(result, output_format, lambda: recommendation_report(result))
    print_next_pilot_hint(law, (w_general, w_domain), merged, output_format)
