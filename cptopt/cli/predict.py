"""``cptopt predict``: a training config in, predicted general and domain loss out (or,
with a law fitted to pre-training pilots, a pre-training run's predicted loss)."""

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
    stderr,
)
from cptopt.cli._defaults import DEFAULT_LAW_PATH
from cptopt.exceptions import InputError


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
            "Needs matplotlib: pip install 'cptopt[plot]'.",
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
    from cptopt._io import check_output_path
    from cptopt.law import cpt_law, load_law
    from cptopt.pilots import load_manifest
    from cptopt.plan import config_law
    from cptopt.prediction import predict_run
    from cptopt.report import dense_steps, parse_size, plot_prediction, prediction_report

    size = parse_size(plot_size, "plot_size") if plot is not None else None
    if plot is not None:
        check_output_path(plot)
    if pilots is not None and plot is None:
        raise InputError("--pilots is only used with --plot")
    path = law_path or Path(config_law(config) or DEFAULT_LAW_PATH)
    law = load_law(path)
    if plot is not None:  # the plot draws CPT predictions
        law = cpt_law(law, "plot", str(path))
    plan = law.scenario.read_plan(config)  # the law's kind says what a config plans
    run = law.scenario.plan_run(plan)  # type: ignore[arg-type]
    prediction = predict_run(run, law, plan.schedule, steps=parse_steps(steps), level=level)
    emit(prediction, output_format, lambda: prediction_report(prediction))
    if plot is not None and size is not None:
        dense = predict_run(run, law, plan.schedule, steps=dense_steps(run.steps), level=level)
        pilot_set = load_manifest(pilots, kind="cpt") if pilots is not None else None
        written = plot_prediction(dense, plot, pilot_set, size=size)  # type: ignore[arg-type]
        stderr.print(f"plot written to {written}", highlight=False, markup=False)
