"""The options that ``recommend``, ``next-pilot`` and ``design`` share: the law, the search
space and its limits. One declaration each, so the commands read and document them alike."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cptopt.cli._defaults import DEFAULT_LAW_PATH

if TYPE_CHECKING:
    from cptopt.search import SearchConfig

RANGE_HELP = "'LOW,HIGH' or one value to fix it"

#: Which option sets which key of the search config (for error messages).
OPTION_KEYS = {
    "space.peak_lr": "--peak-lr",
    "space.replay_ratio": "--replay",
    "space.steps": "--steps",
    "space.families": "--families",
    "space.warmup_fraction": "--warmup-fraction",
    "space.decay_fraction": "--decay-fraction",
    "space.checkpoints": "--checkpoints",
    "space.final_lr": "--final-lr",
    "space.decay_shapes": "--decay-shapes",
    "space.warmup_steps": "--warmup-steps",
    "constraints.max_steps": "--max-steps",
    "constraints.tokens_per_step": "--tokens-per-step",
    "constraints.max_tokens": "--max-tokens",
    "constraints.domain_tokens": "--domain-tokens",
    "constraints.max_epochs": "--max-epochs",
    "constraints.max_general_rise": "--max-general-rise",
    "search.sampler": "--sampler",
    "search.trials": "--trials",
    "search.seed": "--seed",
    "search.storage": "--storage",
    "search.study_name": "--study-name",
    "weights": "--weights",
    "allow_extrapolation": "--allow-extrapolation",
    "top_k": "--top-k",
    "level": "--level",
    "pareto": "--pareto",
}

LawOption = Annotated[
    Path | None,
    typer.Option(
        "--law",
        help=f"Fitted law file. Default: the config's 'law', else {DEFAULT_LAW_PATH}.",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Search config (YAML; see examples/configs/search.yaml): space and constraints. "
        "Flags override it.",
        show_default=False,
    ),
]
PeakLrOption = Annotated[
    str | None,
    typer.Option(
        help=f"Peak LR bounds, {RANGE_HELP} (default: the pilots' range).", show_default=False
    ),
]
ReplayOption = Annotated[
    str | None,
    typer.Option(
        help=f"Replay ratio bounds, {RANGE_HELP} (default: the pilots' range).",
        show_default=False,
    ),
]
StepsOption = Annotated[
    str | None,
    typer.Option(
        help=f"CPT steps bounds, {RANGE_HELP} (default: up to the budget).", show_default=False
    ),
]
FamiliesOption = Annotated[
    str | None,
    typer.Option(
        help="Schedule families, e.g. cosine,wsd (default: cosine, wsd, linear, constant).",
        show_default=False,
    ),
]
MaxStepsOption = Annotated[
    int | None, typer.Option(help="At most this many CPT steps.", show_default=False)
]
MaxGeneralRiseOption = Annotated[
    float | None,
    typer.Option(
        help="Allowed final general loss minus its pre-CPT value (nats).", show_default=False
    ),
]


def shared_search_config(
    config: Path | None,
    *,
    peak_lr: str | None = None,
    replay: str | None = None,
    steps: str | None = None,
    families: str | None = None,
    max_steps: int | None = None,
    max_general_rise: float | None = None,
    weights: str | None = None,
) -> SearchConfig:
    """The ``--config`` file's search config (else the defaults) with the shared space and
    limit options applied: what ``next-pilot`` and ``design`` search (errors name the option)."""
    from cptopt.search import SearchConfig, load_search_config

    base = load_search_config(config) if config is not None else SearchConfig()
    flags = {
        "space.peak_lr": peak_lr,
        "space.replay_ratio": replay,
        "space.steps": steps,
        "space.families": families,
        "constraints.max_steps": max_steps,
        "constraints.max_general_rise": max_general_rise,
        "weights": weights,
    }
    return base.with_overrides(flags, aliases=OPTION_KEYS)
