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

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cptopt.report.check import format_github, format_text
    from cptopt.report.design import design_report
    from cptopt.report.fit import fit_report
    from cptopt.report.inspect import inspect_table
    from cptopt.report.next_pilot import next_pilot_line, next_pilot_report
    from cptopt.report.plot import DEFAULT_DPI, dense_steps, parse_size, plot_fit, plot_prediction
    from cptopt.report.prediction import prediction_report
    from cptopt.report.search import ranking_report, recommendation_report

#: Each renderer by its module, loaded on first use: a renderer imports the stage whose
#: results it shows (the design, the search, the limits), and ``cptopt fit`` needs only
#: the fit report's.
_HOME = {
    "format_github": "check",
    "format_text": "check",
    "design_report": "design",
    "fit_report": "fit",
    "inspect_table": "inspect",
    "next_pilot_line": "next_pilot",
    "next_pilot_report": "next_pilot",
    "DEFAULT_DPI": "plot",
    "dense_steps": "plot",
    "parse_size": "plot",
    "plot_fit": "plot",
    "plot_prediction": "plot",
    "prediction_report": "prediction",
    "ranking_report": "search",
    "recommendation_report": "search",
}

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


def __getattr__(name: str) -> Any:
    """A renderer, imported from its module when first used."""
    if name in _HOME:
        return getattr(import_module(f"cptopt.report.{_HOME[name]}"), name)
    raise AttributeError(f"module 'cptopt.report' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The renderers too (``dir``, ``help`` and completion list them before their import)."""
    return sorted({*globals(), *_HOME})
