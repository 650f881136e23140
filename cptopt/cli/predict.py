"""``cptopt predict``: a training config in, predicted general and domain loss out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cptopt.cli._common import FORMAT_HELP, OutputFormat, app, handle_errors, print_json, stdout
from cptopt.config import load_config
from cptopt.exceptions import InputError
from cptopt.lawfile import DEFAULT_LAW_PATH, load_law
from cptopt.predict import predict
from cptopt.report import prediction_report


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
            help="Training config (YAML): schedule, replay_ratio, checkpoint, tokens_per_step. "
            "See examples/configs/.",
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
        typer.Option(help="CPT steps to show, e.g. 0,250,500,1000 (default: 11 even steps)."),
    ] = None,
    level: Annotated[
        float, typer.Option(help="Central probability of the intervals.", min=0.5, max=0.999)
    ] = 0.9,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help=FORMAT_HELP)
    ] = OutputFormat.table,
) -> None:
    """Predict the general and domain loss curves of a planned CPT run.

    Intervals combine the fit's uncertainty (leave-one-pilot-out jackknife) and the
    eval-to-eval noise of a measured loss. Settings outside what the pilots covered are
    flagged: the law has no "LR too large" regime, so trust such predictions less.
    """
    training = load_config(config)
    path = law_path or Path(training.law or DEFAULT_LAW_PATH)
    law = load_law(path)
    prediction = predict(
        law,
        training.schedule,
        training.replay_ratio,
        checkpoint=training.checkpoint,
        steps=parse_steps(steps),
        tokens_per_step=training.tokens_per_step,
        level=level,
    )
    if output_format is OutputFormat.json:
        print_json(prediction)
    else:
        stdout.print(prediction_report(prediction))
