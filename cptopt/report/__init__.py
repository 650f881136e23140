"""Report: every renderer. Rich tables and text for people, GitHub annotations, plots.

- :mod:`cptopt.report.fit`: the fit-quality report of a law file;
- :mod:`cptopt.report.prediction`: a prediction (every kind: one row per validation set);
- :mod:`cptopt.report.search`: a recommendation, a candidate ranking;
- :mod:`cptopt.report.next_pilot`: which pilot to run next (``next-pilot``);
- :mod:`cptopt.report.design`: the first pilots to launch (``design``);
- :mod:`cptopt.report.check`: a check report (text, GitHub workflow commands);
- :mod:`cptopt.report.inspect`: what ``cptopt inspect`` found in a log;
- :mod:`cptopt.report.plot`: pictures of a fit and of a prediction (matplotlib).

Nothing here prints or exits; the CLI does.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cptopt.report.check import format_github, format_text
    from cptopt.report.design import design_report
    from cptopt.report.fit import fit_report
    from cptopt.report.inspect import inspect_table
    from cptopt.report.next_pilot import next_pilot_line, next_pilot_report
    from cptopt.report.plot import (
        DEFAULT_DPI,
        dense_steps,
        parse_size,
        plot_fit,
        plot_prediction,
    )
    from cptopt.report.prediction import prediction_report
    from cptopt.report.search import ranking_report, recommendation_report

#: Each renderer by the module that holds it: a command loads only the renderers it uses
#: (the design and search renderers import their stages; ``cptopt fit`` needs neither).
_HOMES = {
    "check": ("format_github", "format_text"),
    "design": ("design_report",),
    "fit": ("fit_report",),
    "inspect": ("inspect_table",),
    "next_pilot": ("next_pilot_line", "next_pilot_report"),
    "plot": ("DEFAULT_DPI", "dense_steps", "parse_size", "plot_fit", "plot_prediction"),
    "prediction": ("prediction_report",),
    "search": ("ranking_report", "recommendation_report"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(f"cptopt.report.{_HOME[name]}"), name)
    raise AttributeError(f"module 'cptopt.report' has no attribute {name!r}")


__all__ = [
    "DEFAULT_DPI",
    "dense_steps",
    "design_report",
    "fit_report",
    "format_github",
    "format_text",
    "inspect_table",
    "next_pilot_line",
    "next_pilot_report",
    "parse_size",
    "plot_fit",
    "plot_prediction",
    "prediction_report",
    "ranking_report",
    "recommendation_report",
]
