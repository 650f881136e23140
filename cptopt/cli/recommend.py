"""``cptopt recommend``: the settings that minimise the final loss, from a law file: CPT
settings for a CPT law (the weighted general and domain loss), a pre-training schedule for
a law fitted to pre-training pilots. The law's kind picks the search
(``cptopt.search.law_search``) and so the options and config keys it takes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cptopt.cli._common import (
    FormatOption,
    OutputFormat,
    app,
    emit,
    handle_errors,
    law_file,
    objective_weights,
    stderr,
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
from cptopt.exceptions import InputError, param

if TYPE_CHECKING:
    from cptopt.law import CptLaw, PretrainRunsLaw
    from cptopt.search import PretrainSearchConfig, SearchConfig


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
            help=f"WSD decay fraction, {RANGE_HELP} (default: 0.1,0.5; pre-training laws "
            "0.02,0.9).",
            show_default=False,
        ),
    ] = None,
    decay_shapes: Annotated[
        str | None,
        typer.Option(
            help="Pre-training laws: WSD decay shapes, e.g. cosine,linear (default: linear, "
            "cosine, exponential).",
            show_default=False,
        ),
    ] = None,
    final_lr: Annotated[
        str | None,
        typer.Option(
            help=f"Pre-training laws: the LR the decay ends at, {RANGE_HELP} (default: the "
            "pilots' lowest after their warmup up to 10x it).",
            show_default=False,
        ),
    ] = None,
    warmup_steps: Annotated[
        int | None,
        typer.Option(
            help="Pre-training laws: warmup steps (default: the pilots' longest).",
            show_default=False,
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
            "range (flagged: the law has no 'LR too large' regime); pre-training laws: "
            "peak LRs outside the pilots' as given, final LRs below theirs.",
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
    """Recommend the settings of a run: a CPT run, or a pre-training schedule.

    A CPT law: peak LR, replay ratio, steps and schedule shape minimising
    w_g*L_general(T) + w_d*L_domain(T), with an Optuna study cross-checked by a dense
    vectorised search. A law fitted to pre-training pilots: the schedule (peak LR, family,
    WSD decay shape and length, final LR; --steps fixes or bounds the budget, default the
    longest pilot's) with the lowest predicted final loss, on a grid refined around each
    family's best; options for CPT runs only are refused. The space defaults to what the
    pilots covered; settings outside it are flagged.
    """
    from cptopt.law import load_law
    from cptopt.search import law_search, load_search_config, search_config_law

    named = search_config_law(config) if config is not None else None
    law = load_law(law_file(law_path, named))
    model = law_search(law).config
    base = load_search_config(config, model) if config is not None else model()
    flags = {
        "space.peak_lr": peak_lr,
        "space.replay_ratio": replay,
        "space.steps": steps,
        "space.families": families,
        "space.warmup_fraction": warmup_fraction,
        "space.decay_fraction": decay_fraction,
        "space.checkpoints": checkpoints,
        "space.final_lr": final_lr,
        "space.decay_shapes": decay_shapes,
        "space.warmup_steps": warmup_steps,
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
    run = _searches()[type(law)]
    run(law, merged, candidates=candidates, verbose=verbose, output_format=output_format)


def _recommend_cpt(
    law: CptLaw,
    merged: SearchConfig,
    *,
    candidates: Path | None,
    verbose: bool,
    output_format: OutputFormat,
) -> None:
    """Search (or rank ``candidates``) CPT settings; the next-pilot hint after."""
    from cptopt.report import ranking_report, recommendation_report
    from cptopt.search import load_candidates, rank_candidates, recommend

    w_general, w_domain = objective_weights(merged)
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


def _recommend_pretrain(
    law: PretrainRunsLaw,
    merged: PretrainSearchConfig,
    *,
    candidates: Path | None,
    verbose: bool,
    output_format: OutputFormat,
) -> None:
    """Search a pre-training schedule (no candidates to rank, no Optuna log to show)."""
    from cptopt.report import recommendation_report
    from cptopt.search import recommend_pretrain

    for name, given in (("candidates", candidates is not None), ("verbose", verbose)):
        if given:
            raise InputError(f"{param(name)}: {merged.foreign}")
    result = recommend_pretrain(
        law, merged.space, allow_extrapolation=merged.allow_extrapolation, level=merged.level
    )
    emit(result, output_format, lambda: recommendation_report(result))


def _searches() -> dict[type, Any]:
    """How the command searches each kind of law (the library's search: ``law_search``);
    built when the command runs, so that importing the command line loads no law."""
    from cptopt.law import CptLaw, PretrainRunsLaw

    return {CptLaw: _recommend_cpt, PretrainRunsLaw: _recommend_pretrain}
