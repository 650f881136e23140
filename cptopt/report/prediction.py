"""Render a prediction as rich renderables (the CLI prints them; nothing here prints).

One renderer for every kind of prediction: a row (summary) and two columns (curve) per
validation set of the prediction (``prediction.forecasts()``); what differs between kinds
is the title, where the change is measured from, and the lines under the tables.
"""

from __future__ import annotations

from functools import singledispatch

from rich.console import Group, RenderableType
from rich.text import Text

from cptopt.prediction import Prediction, PretrainPrediction
from cptopt.report.layout import ByWidth, add_columns, plain_table, two_line


@singledispatch
def _head(prediction: Prediction | PretrainPrediction) -> tuple[str, str, list[str]]:
    """The summary's title, the column the change is measured from, and the remarks."""
    raise TypeError(f"not a prediction: {type(prediction).__name__}")


@_head.register
def _cpt_head(prediction: Prediction) -> tuple[str, str, list[str]]:
    title = (
        f"{prediction.schedule}, replay {prediction.replay_ratio:g}, from '{prediction.checkpoint}'"
    )
    turning = prediction.general_turning_step
    recovery = (
        "general loss never rises above its start"
        if turning == 0
        else f"general loss back at its start at step {turning}"
        if turning is not None
        else f"general loss does not recover within {prediction.steps} steps "
        f"(ends {prediction.general_rise:+.4f} above its start)"
    )
    return title, "at step 0", [recovery]


@_head.register
def _pretrain_head(prediction: PretrainPrediction) -> tuple[str, str, list[str]]:
    title = (
        f"pre-training {prediction.schedule} (annealing memory from step {prediction.warmup_steps})"
    )
    return title, f"after the warmup (step {prediction.warmup_steps + 1})", []


def prediction_report(prediction: Prediction | PretrainPrediction) -> RenderableType:
    """Final losses with intervals, the curve at the reported steps, flags and notes.

    With one validation set its row is the "validation" loss and its interval column is
    unnamed; with several, each row and interval column names its set.
    """
    title, start, remarks = _head(prediction)
    forecasts = prediction.forecasts()
    several = len(forecasts) > 1
    level = f"{100 * prediction.level:.0f} %"
    summary_columns = [
        (start, "right"),
        (f"final (step {prediction.steps})", "right"),
        (f"{level} interval", "right"),
        ("change", "right"),
    ]
    wide = add_columns(plain_table(title), [("loss", "left"), *summary_columns])
    narrow = add_columns(plain_table(title), [("loss", "left"), *two_line(summary_columns, " (")])
    for name, forecast in forecasts.items():
        cells = [
            name if several else "validation",
            f"{forecast.initial:.4f}",
            f"{forecast.final:.4f}",
            f"{forecast.final_lower:.4f} .. {forecast.final_upper:.4f}",
            f"{forecast.final - forecast.initial:+.4f}",
        ]
        wide.add_row(*cells)
        narrow.add_row(*cells)
    curve_columns = [("step", "right")]
    for name in forecasts:
        curve_columns += [
            (name, "right"),
            (f"{name} {level}" if several else f"{level} interval", "right"),
        ]
    curve = add_columns(plain_table("predicted curve"), curve_columns)
    report_steps = next(iter(forecasts.values())).steps
    for index, step in enumerate(report_steps):
        cells = [str(step)]
        for forecast in forecasts.values():
            low, high = forecast.lower[index], forecast.upper[index]
            cells += [f"{forecast.mean[index]:.4f}", f"{low:.4f} .. {high:.4f}"]
        curve.add_row(*cells)
    lines = remarks + [f"[yellow]outside the pilots:[/] {flag}" for flag in prediction.flags]
    lines += [f"note: {note}" for note in prediction.notes]
    extra = [Text.from_markup("\n".join(lines))] if lines else []
    return Group(ByWidth(wide, narrow), curve, *extra)
