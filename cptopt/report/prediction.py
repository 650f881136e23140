"""Render a prediction as rich renderables (the CLI prints them; nothing here prints)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cptopt.prediction import Prediction


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
