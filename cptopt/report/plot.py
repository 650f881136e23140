"""Pictures of a fit and of a prediction (matplotlib, an optional extra: ``cptopt[plot]``).

- :func:`plot_fit`: the fitted law over the pilot curves, one column per validation set
  (a CPT law's general and domain, a pre-training law's loss), with the relative residuals
  underneath; without pilot curves, the per-pilot fit and leave-one-pilot-out errors
  stored in the law file.
- :func:`plot_prediction`: both predicted curves of a planned run with their intervals, the
  pre-CPT levels, the general loss's turning step, and pilot curves when given.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global
state) and written atomically. ``size`` is in pixels: the file is exactly that large.
"""

from __future__ import annotations

from functools import singledispatch
from pathlib import Path
from typing import Any

import numpy as np

from cptopt._io import atomic_writer
from cptopt.exceptions import InputError, param
from cptopt.law.fitted import CptLaw, PretrainRunsLaw
from cptopt.law.scenario import LOSS
from cptopt.pilots.logs import Series
from cptopt.pilots.runs import PilotSet, PretrainPilots, PretrainRun, Run
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


def fitted_curve(
    law: CptLaw | PretrainRunsLaw, run: Run | PretrainRun, validation_set: str, steps: np.ndarray
) -> np.ndarray:
    """The law's loss for pilot ``run`` at ``steps`` (shape ``(n,)``): CPT steps of a CPT
    pilot, steps from initialisation of a pre-training one."""
    return _law_curve(run, law, validation_set, steps)


def _cannot_draw(run: object) -> InputError:
    """The error for pilots of a kind the fit plot has no registrations for."""
    return InputError(f"{param('pilots')}: cannot draw pilots of type {type(run).__name__}")


@singledispatch
def _law_curve(
    run: Run | PretrainRun, law: CptLaw | PretrainRunsLaw, validation_set: str, steps: np.ndarray
) -> np.ndarray:
    raise _cannot_draw(run)


def _evaluate(law: CptLaw | PretrainRunsLaw, validation_set: str, areas: Any) -> np.ndarray:
    values = np.asarray(law.set_fit(validation_set).values, dtype=float)
    return np.atleast_2d(law.form_for(validation_set).evaluate(values[None, :], areas))[0]


@_law_curve.register
def _cpt_pilot_curve(run: Run, law: CptLaw, validation_set: str, steps: np.ndarray) -> np.ndarray:
    planned = law.scenario.run(
        run.cpt_lr, run.replay_ratio, run.checkpoint, tokens_per_step=run.tokens_per_step
    )
    return _evaluate(law, validation_set, law.run_inputs(planned, np.asarray(steps)))


@_law_curve.register
def _pretrain_pilot_curve(
    run: PretrainRun, law: PretrainRunsLaw, validation_set: str, steps: np.ndarray
) -> np.ndarray:
    scenario = law.scenario
    areas = scenario.inputs(scenario.pilot_run(run), np.asarray(steps), law.needs)
    return _evaluate(law, validation_set, areas)


@singledispatch
def _label(run: Run | PretrainRun) -> str:
    raise _cannot_draw(run)


@_label.register
def _cpt_label(run: Run) -> str:
    return f"{run.name} (r={run.replay_ratio:g}, peak {run.peak_lr:.2g})"


@_label.register
def _pretrain_label(run: PretrainRun) -> str:
    lowest = float(run.lr[run.warmup_steps :].min())
    return f"{run.name} (peak {run.peak_lr:.2g}, lowest {lowest:.2g})"


@singledispatch
def _pilot_curve(run: Run | PretrainRun, validation_set: str) -> tuple[Series | None, int]:
    """A pilot's logged curve of ``validation_set`` and the first step the law describes."""
    raise _cannot_draw(run)


@_pilot_curve.register
def _cpt_pilot_series(run: Run, validation_set: str) -> tuple[Series | None, int]:
    return run.curve(validation_set), 0


@_pilot_curve.register
def _pretrain_pilot_series(run: PretrainRun, validation_set: str) -> tuple[Series | None, int]:
    return (run.loss if validation_set == LOSS else None), run.warmup_steps + 1


def _loss_name(validation_set: str) -> str:
    """``general loss``, ``domain loss``; a pre-training law's one set: ``loss``."""
    return validation_set if validation_set == LOSS else f"{validation_set} loss"


#: The step axis of each kind of law's pilots.
_STEP_AXIS = {CptLaw: "CPT step", PretrainRunsLaw: "step (from initialisation)"}


def plot_fit(
    law: CptLaw | PretrainRunsLaw,
    path: str | Path,
    pilots: PilotSet | PretrainPilots | None = None,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Draw the fit to ``path``: curves over pilot data with residuals, or per-pilot errors.

    With ``pilots`` (of the law's kind), runs that the law was fitted to are drawn solid;
    other runs of the manifest (held out) dashed, so the picture also shows how the law
    predicts them. A pre-training law's curves start after each pilot's warmup (the law
    describes the loss after it).
    """
    figure, _ = _new_figure(size, dpi)
    if pilots is None:
        _draw_fit_errors(figure, law)
    else:
        _draw_fit_curves(figure, law, pilots)
    form = law.set_fit(law.validation_sets[0]).form
    figure.suptitle(
        f"cptopt law '{form}' ({law.annealing_description}): "
        + ("fit over the pilot curves" if pilots is not None else "per-pilot fit error"),
        fontsize="medium",
    )
    return _save(figure, path, dpi)


def _draw_fit_curves(
    figure: Any, law: CptLaw | PretrainRunsLaw, pilots: PilotSet | PretrainPilots
) -> None:
    grid = figure.add_gridspec(2, len(law.validation_sets), height_ratios=(3, 1))
    colors = _colors(len(pilots.runs))
    for column, validation_set in enumerate(law.validation_sets):
        fitted_names = {run.name for run in law.set_fit(validation_set).runs}
        curves = figure.add_subplot(grid[0, column])
        residuals = figure.add_subplot(grid[1, column], sharex=curves)
        for color, run in zip(colors, pilots.runs, strict=True):
            series, first = _pilot_curve(run, validation_set)
            if series is None or len(series) == 0:
                continue
            dense = dense_steps(run.steps)
            dense = dense[dense >= first]
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
            steps, observed = (
                series.steps[series.steps >= first],
                series.values[series.steps >= first],
            )
            relative = 100 * (fitted_curve(law, run, validation_set, steps) / observed - 1)
            residuals.plot(steps, relative, linestyle=style, color=color, linewidth=0.8)
        noise = 100 * law.set_fit(validation_set).noise
        residuals.axhspan(-noise, noise, color="0.85", zorder=0, label="eval noise (±1 SD)")
        residuals.axhline(0, color="0.3", linewidth=0.6)
        curves.set_title(f"{_loss_name(validation_set)}: dots = pilot data, lines = law")
        curves.set_ylabel("validation loss (nats)")
        curves.tick_params(labelbottom=False)
        residuals.set_ylabel("pred/obs - 1 (%)")
        residuals.set_xlabel(_STEP_AXIS.get(type(law), "step"))
        residuals.legend(fontsize="x-small", loc="upper right")
        if column == 0:
            curves.legend(fontsize="x-small", loc="best")


def _draw_fit_errors(figure: Any, law: CptLaw | PretrainRunsLaw) -> None:
    axes = figure.subplots(1, len(law.validation_sets), squeeze=False)[0]
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
        ax.set_title(f"{_loss_name(validation_set)} (give the pilots to see the curves)")
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
