"""Render a prediction as rich renderables (the CLI prints them; nothing here prints)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cptopt.prediction import Prediction, PretrainPrediction


def prediction_report(prediction: Prediction) -> RenderableType:
    """Final losses with intervals, the curve at the reported steps, flags and notes."""
    level = f"{100 * prediction.level:.0f} %"
    summary = Table(
        title=(
            f"{prediction.schedule}, replay {prediction.replay_ratio:g}, "
            f"from '{prediction.checkpoint}'"
        ),
        title_justify="left",
    )
    summary.add_column("loss")
    summary.add_column("at step 0", justify="right")
    summary.add_column(f"final (step {prediction.steps})", justify="right")
    summary.add_column(f"{level} interval", justify="right")
    summary.add_column("change", justify="right")
    for name in ("general", "domain"):
        forecast = getattr(prediction, name)
        summary.add_row(
            name,
            f"{forecast.initial:.4f}",
            f"{forecast.final:.4f}",
            f"{forecast.final_lower:.4f} .. {forecast.final_upper:.4f}",
            f"{forecast.final - forecast.initial:+.4f}",
        )
    curve = Table(title="predicted curve", title_justify="left")
    for column in ("step", "general", f"general {level}", "domain", f"domain {level}"):
        curve.add_column(column, justify="right")
    for index, step in enumerate(prediction.general.steps):
        g, d = prediction.general, prediction.domain
        curve.add_row(
            str(step),
            f"{g.mean[index]:.4f}",
            f"{g.lower[index]:.4f} .. {g.upper[index]:.4f}",
            f"{d.mean[index]:.4f}",
            f"{d.lower[index]:.4f} .. {d.upper[index]:.4f}",
        )
    turning = prediction.general_turning_step
    lines = [
        "general loss never rises above its start"
        if turning == 0
        else f"general loss back at its start at step {turning}"
        if turning is not None
        else f"general loss does not recover within {prediction.steps} steps "
        f"(ends {prediction.general_rise:+.4f} above its start)"
    ]
    lines += [f"[yellow]outside the pilots:[/] {flag}" for flag in prediction.flags]
    lines += [f"note: {note}" for note in prediction.notes]
    return Group(summary, curve, Text.from_markup("\n".join(lines)))


def pretrain_prediction_report(prediction: PretrainPrediction) -> RenderableType:
    """A pre-training schedule's predicted loss: final value with its interval, the curve at
    the reported steps, flags and notes."""
    level = f"{100 * prediction.level:.0f} %"
    forecast = prediction.loss
    summary = Table(
        title=f"pre-training {prediction.schedule} (annealing memory from step "
        f"{prediction.warmup_steps})",
        title_justify="left",
    )
    summary.add_column("loss")
    summary.add_column(f"after the warmup (step {prediction.warmup_steps + 1})", justify="right")
    summary.add_column(f"final (step {prediction.steps})", justify="right")
    summary.add_column(f"{level} interval", justify="right")
    summary.add_column("change", justify="right")
    summary.add_row(
        "validation",
        f"{forecast.initial:.4f}",
        f"{forecast.final:.4f}",
        f"{forecast.final_lower:.4f} .. {forecast.final_upper:.4f}",
        f"{forecast.final - forecast.initial:+.4f}",
    )
    curve = Table(title="predicted curve", title_justify="left")
    for column in ("step", "loss", f"{level} interval"):
        curve.add_column(column, justify="right")
    for index, step in enumerate(forecast.steps):
        low, high = forecast.lower[index], forecast.upper[index]
        curve.add_row(str(step), f"{forecast.mean[index]:.4f}", f"{low:.4f} .. {high:.4f}")
    lines = [f"[yellow]outside the pilots:[/] {flag}" for flag in prediction.flags]
    lines += [f"note: {note}" for note in prediction.notes]
    extra = [Text.from_markup("\n".join(lines))] if lines else []
    return Group(summary, curve, *extra)
