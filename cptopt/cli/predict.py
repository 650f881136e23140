"""``cptopt predict``: a training config in, predicted general and domain loss out (or,
with a law fitted to pre-training pilots, a pre-training run's predicted loss)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cptopt._io import check_output_path
from cptopt.cli._common import (
    FormatOption,
    OutputFormat,
    app,
    emit,
    handle_errors,
    stderr,
)
from cptopt.exceptions import InputError
from cptopt.law.fitted import DEFAULT_LAW_PATH, FittedLaw, load_law
from cptopt.pilots.manifest import load_manifest
from cptopt.plan import config_law, load_config, load_pretrain_config
from cptopt.prediction import predict, predict_pretrain
from cptopt.report.plot import dense_steps, parse_size, plot_prediction
from cptopt.report.prediction import prediction_report, pretrain_prediction_report


def parse_steps(text: str | None) -> list[int] | None:
    """``"0,100,500"`` -> ``[0, 100, 500]``."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--steps == {text!r}, must be integers separated by commas") from None


@app.command("predict")
@handle_errors
def predict_command(
    config: Annotated[
        Path,
        typer.Argument(
            help="Training config (YAML): schedule, replay_ratio, checkpoint, tokens_per_step "
            "(for a law fitted to pre-training pilots: schedule, tokens_per_step). See "
            "examples/configs/.",
            show_default=False,
        ),
    ],
    law_path: Annotated[
        Path | None,
        typer.Option(
            "--law",
            help=f"Fitted law file. Default: the config's 'law' key, else {DEFAULT_LAW_PATH}.",
            show_default=False,
        ),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(
            help="Steps to show, e.g. 0,250,500,1000 (default: 11 even steps; a pre-training "
            "schedule's start after its warmup)."
        ),
    ] = None,
    level: Annotated[
        float, typer.Option(help="Central probability of the intervals.", min=0.5, max=0.999)
    ] = 0.9,
    output_format: FormatOption = OutputFormat.table,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Also draw both predicted curves with their intervals to this image (PNG). "
            "Needs matplotlib: pip install 'cptopt\\[plot]'.",
            show_default=False,
        ),
    ] = None,
    pilots: Annotated[
        Path | None,
        typer.Option(
            "--pilots",
            help="Pilot manifest whose measured curves --plot draws underneath the prediction.",
            show_default=False,
        ),
    ] = None,
    plot_size: Annotated[
        str, typer.Option(help="--plot image size in pixels, WIDTHxHEIGHT.")
    ] = "1200x800",
) -> None:
    """Predict the general and domain loss curves of a planned CPT run (with a law fitted
    to pre-training pilots: the loss curve of a planned pre-training run).

    Intervals combine the fit's uncertainty (leave-one-pilot-out jackknife) and the
    eval-to-eval noise of a measured loss. Settings outside what the pilots covered are
    flagged: the law has no "LR too large" regime, so trust such predictions less.
    """
    size = parse_size(plot_size, "plot_size") if plot is not None else None
    if plot is not None:
        check_output_path(plot)
    if pilots is not None and plot is None:
        raise InputError("--pilots is only used with --plot")
    law = load_law(law_path or Path(config_law(config) or DEFAULT_LAW_PATH))
    if law.kind == "pretrain":
        if plot is not None:
            raise InputError(
                "--plot draws CPT predictions; not for a law fitted to pre-training pilots"
            )
        _predict_pretrain(config, law, parse_steps(steps), level, output_format)
        return
    training = load_config(config)
    prediction = predict(
        law,
        training.schedule,
        training.replay_ratio,
        checkpoint=training.checkpoint,
        steps=parse_steps(steps),
        tokens_per_step=training.tokens_per_step,
        level=level,
    )
    emit(prediction, output_format, lambda: prediction_report(prediction))
    if plot is not None and size is not None:
        dense = predict(
            law,
            training.schedule,
            training.replay_ratio,
            checkpoint=training.checkpoint,
            steps=dense_steps(prediction.steps),
            tokens_per_step=training.tokens_per_step,
            level=level,
        )
        pilot_set = load_manifest(pilots) if pilots is not None else None
        written = plot_prediction(dense, plot, pilot_set, size=size)
        stderr.print(f"plot written to {written}", highlight=False)


def _predict_pretrain(
    config: Path, law: FittedLaw, steps: list[int] | None, level: float, output_format: OutputFormat
) -> None:
    """``cptopt predict`` with a law fitted to pre-training pilots: a pre-training config."""
    planned = load_pretrain_config(config)
    prediction = predict_pretrain(
        law,
        planned.schedule,
        steps=steps,
        tokens_per_step=planned.tokens_per_step,
        level=level,
    )
    emit(prediction, output_format, lambda: pretrain_prediction_report(prediction))
