"""Pictures of a fit and of a prediction (matplotlib, an optional extra: ``cptopt[plot]``).

- :func:`plot_fit`: the fitted law over the pilot curves, one column per validation set,
  with the relative residuals underneath; without pilot curves, the per-pilot fit and
  leave-one-pilot-out errors stored in the law file.
- :func:`plot_prediction`: both predicted curves of a planned run with their intervals, the
  pre-CPT levels, the general loss's turning step, and pilot curves when given.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global
state) and written atomically. ``size`` is in pixels: the file is exactly that large.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cptopt._io import atomic_writer
from cptopt.exceptions import InputError, param
from cptopt.law.fitted import CptLaw
from cptopt.pilots.runs import PilotSet, Run
from cptopt.prediction import Prediction

#: Default picture size in pixels (width, height) and resolution.
DEFAULT_SIZE = (1200, 800)
DEFAULT_DPI = 100
#: Up to this many pilot runs get their own colour and legend entry in a prediction plot.
MAX_LABELLED_PILOTS = 8
#: Points of a dense prediction curve for plotting.
DENSE_POINTS = 400


def _matplotlib() -> tuple[Any, Any]:
    """``(Figure, FigureCanvasAgg)``, or a one-line InputError saying how to install them."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError(
            "plotting needs matplotlib, which is not installed: pip install 'cptopt[plot]'"
        ) from None
    return Figure, FigureCanvasAgg


def parse_size(text: str, name: str = "size") -> tuple[int, int]:
    """``"1200x800"`` -> ``(1200, 800)`` pixels (``name``: the parameter, for errors)."""
    parts = text.lower().split("x")
    try:
        width, height = (int(part) for part in parts)
    except ValueError:
        raise InputError(
            f"{param(name)} == {text!r}, must be WIDTHxHEIGHT in pixels, e.g. 1200x800"
        ) from None
    if not (100 <= width <= 10000 and 100 <= height <= 10000):
        raise InputError(f"{param(name)} == {text!r}, width and height must be 100..10000 pixels")
    return width, height


def dense_steps(total: int, points: int = DENSE_POINTS) -> np.ndarray:
    """About ``points`` CPT steps from 0 to ``total`` (all of them when ``total`` is small)."""
    return np.unique(np.linspace(0, total, min(points, total + 1)).round().astype(int))


def _new_figure(size: tuple[int, int], dpi: int) -> tuple[Any, Any]:
    figure_class, canvas_class = _matplotlib()
    width, height = size
    figure = figure_class(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    canvas_class(figure)
    return figure, canvas_class


def _save(figure: Any, path: str | Path, dpi: int) -> Path:
    """Write the figure atomically (format from the suffix, PNG by default)."""
    target = Path(path)
    suffix = target.suffix.lstrip(".").lower() or "png"
    try:
        with atomic_writer(target, binary=True) as handle:
            figure.savefig(handle, format=suffix, dpi=dpi)
    except ValueError as exc:  # unknown image format
        raise InputError(f"{target}: cannot write this image format ({exc})") from None
    return target


def fitted_curve(law: CptLaw, run: Run, validation_set: str, steps: np.ndarray) -> np.ndarray:
    """The law's loss for pilot ``run`` at CPT ``steps`` (shape ``(n,)``)."""
    planned = law.scenario.run(
        run.cpt_lr, run.replay_ratio, run.checkpoint, tokens_per_step=run.tokens_per_step
    )
    areas = law.run_inputs(planned, np.asarray(steps))
    values = np.asarray(law.set_fit(validation_set).values, dtype=float)
    curve = law.form_for(validation_set).evaluate(values[None, :], areas)
    return np.atleast_2d(curve)[0]


def _label(run: Run) -> str:
    return f"{run.name} (r={run.replay_ratio:g}, peak {run.peak_lr:.2g})"


def plot_fit(
    law: CptLaw,
    path: str | Path,
    pilots: PilotSet | None = None,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Draw the fit to ``path``: curves over pilot data with residuals, or per-pilot errors.

    With ``pilots``, runs that the law was fitted to are drawn solid; other runs of the
    manifest (held out) dashed, so the picture also shows how the law predicts them.
    """
    figure, _ = _new_figure(size, dpi)
    if pilots is None:
        _draw_fit_errors(figure, law)
    else:
        _draw_fit_curves(figure, law, pilots)
    figure.suptitle(
        f"cptopt law '{law.form}' ({law.annealing_description}): "
        + ("fit over the pilot curves" if pilots is not None else "per-pilot fit error"),
        fontsize="medium",
    )
    return _save(figure, path, dpi)


def _draw_fit_curves(figure: Any, law: CptLaw, pilots: PilotSet) -> None:
    grid = figure.add_gridspec(2, 2, height_ratios=(3, 1))
    colors = _colors(len(pilots.runs))
    for column, validation_set in enumerate(law.validation_sets):
        fitted_names = {run.name for run in law.set_fit(validation_set).runs}
        curves = figure.add_subplot(grid[0, column])
        residuals = figure.add_subplot(grid[1, column], sharex=curves)
        for color, run in zip(colors, pilots.runs, strict=True):
            series = run.curve(validation_set)
            if series is None or len(series) == 0:
                continue
            dense = dense_steps(run.steps)
            style = "solid" if run.name in fitted_names else "dashed"
            curves.plot(series.steps, series.values, ".", color=color, markersize=3, alpha=0.6)
            curves.plot(
                dense,
                fitted_curve(law, run, validation_set, dense),
                linestyle=style,
                color=color,
                linewidth=1.2,
                label=_label(run) + ("" if style == "solid" else " held out"),
            )
            predicted = fitted_curve(law, run, validation_set, series.steps)
            relative = 100 * (predicted / series.values - 1)
            residuals.plot(series.steps, relative, linestyle=style, color=color, linewidth=0.8)
        noise = 100 * law.set_fit(validation_set).noise
        residuals.axhspan(-noise, noise, color="0.85", zorder=0, label="eval noise (±1 SD)")
        residuals.axhline(0, color="0.3", linewidth=0.6)
        curves.set_title(f"{validation_set} loss: dots = pilot data, lines = law")
        curves.set_ylabel("validation loss (nats)")
        curves.tick_params(labelbottom=False)
        residuals.set_ylabel("pred/obs - 1 (%)")
        residuals.set_xlabel("CPT step")
        residuals.legend(fontsize="x-small", loc="upper right")
        if column == 0:
            curves.legend(fontsize="x-small", loc="best")


def _draw_fit_errors(figure: Any, law: CptLaw) -> None:
    axes = figure.subplots(1, 2)
    for ax, validation_set in zip(axes, law.validation_sets, strict=True):
        fit = law.set_fit(validation_set)
        names = [run.name for run in fit.runs]
        position = np.arange(len(names))
        mean = [100 * run.mean_abs_error for run in fit.runs]
        cv = [
            np.nan if run.cv_mean_abs_error is None else 100 * run.cv_mean_abs_error
            for run in fit.runs
        ]
        ax.barh(position - 0.2, mean, height=0.4, label="fit |pred/obs - 1|")
        ax.barh(position + 0.2, cv, height=0.4, label="leave-this-pilot-out CV")
        ax.axvline(100 * fit.noise, color="0.3", linestyle=":", label="eval noise (robust SD)")
        ax.set_yticks(position, names, fontsize="x-small")
        ax.set_xlabel("mean relative error (%)")
        ax.set_title(f"{validation_set} loss (give the pilots to see the curves)")
        ax.legend(fontsize="x-small")


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_prediction(
    prediction: Prediction,
    path: str | Path,
    pilots: PilotSet | None = None,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Draw both predicted curves with their intervals (and pilot curves when given).

    ``prediction`` should hold many steps (``predict(..., steps=dense_steps(T))``); the
    interval is the prediction's own (``prediction.level``).
    """
    figure, _ = _new_figure(size, dpi)
    axes = figure.subplots(1, 2)
    level = f"{100 * prediction.level:.0f} % interval"
    for ax, (validation_set, forecast) in zip(axes, prediction.forecasts().items(), strict=True):
        if pilots is not None:
            few = len(pilots.runs) <= MAX_LABELLED_PILOTS
            colors = _colors(len(pilots.runs)) if few else ["0.6"] * len(pilots.runs)
            for index, (color, run) in enumerate(zip(colors, pilots.runs, strict=True)):
                series = run.curve(validation_set)
                if series is None or len(series) == 0:
                    continue
                label = f"pilot {_label(run)}" if few else None
                ax.plot(
                    series.steps,
                    series.values,
                    color=color,
                    linewidth=0.7,
                    alpha=0.55,
                    label=label if few else "pilot runs (measured)" if index == 0 else None,
                )
        ax.fill_between(
            forecast.steps, forecast.lower, forecast.upper, color="0.2", alpha=0.15, label=level
        )
        ax.plot(forecast.steps, forecast.mean, color="black", linewidth=2.2, label="predicted")
        ax.axhline(forecast.initial, color="0.2", linestyle=":", linewidth=1, label="pre-CPT loss")
        ax.set_title(
            f"{validation_set}: {forecast.initial:.4f} -> {forecast.final:.4f} "
            f"({forecast.final_lower:.4f}..{forecast.final_upper:.4f})",
            fontsize="medium",
        )
        ax.set_xlabel("CPT step")
        ax.set_ylabel("validation loss (nats)")
    turning = prediction.general_turning_step
    if turning:
        axes[0].axvline(turning, color="C2", linestyle="dashed", linewidth=1)
        axes[0].annotate(
            f"back at start: step {turning}",
            (turning, prediction.general.initial),
            textcoords="offset points",
            xytext=(4, 6),
            fontsize="small",
            color="C2",
        )
    axes[1].legend(fontsize="x-small", loc="upper right")  # one legend serves both panels
    title = (
        f"{prediction.schedule}, replay {prediction.replay_ratio:g}, from '{prediction.checkpoint}'"
    )
    if prediction.flags:
        title += "\nEXTRAPOLATION: " + "; ".join(prediction.flags)
    figure.suptitle(title, fontsize="medium", color="C3" if prediction.flags else "black")
    return _save(figure, path, dpi)
