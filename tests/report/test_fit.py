"""Report rendering: PDG rounding and the fit report's content."""

from __future__ import annotations

import pytest
from rich.console import Console

from cptopt.report.fit import fit_report, pdg_format


@pytest.mark.parametrize(
    ("value", "error", "expected"),
    [
        (1.2345, 0.0123, "1.234 ± 0.012"),  # leading digits 123 -> two significant digits
        (1.2345, 0.0456, "1.23 ± 0.05"),  # 456 -> one significant digit
        (172.4, 179.2, "170 ± 180"),  # 179 -> two digits: rounded to tens
        (8.1e-18, 0.68, "0.0 ± 0.7"),  # 680 -> one digit; a value at 0 gets the same precision
        (3759.0, 1819.0, "3800 ± 1800"),
        (0.5, None, "0.5"),
    ],
)
def test_pdg_format(value, error, expected):
    assert pdg_format(value, error) == expected


def render(renderable) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_fit_report_mentions_every_parameter_and_pilot(fitted_law):
    text = render(fit_report(fitted_law))
    for name in fitted_law.general.parameter_names:
        assert name in text
    for run in fitted_law.general.runs:
        assert run.name in text
    assert fitted_law.annealing_description in text
    for name in ("general", "domain"):  # each set's replay form is chosen on its own
        chosen = next(row for row in fitted_law.selection if getattr(row, f"chosen_{name}"))
        assert f"{chosen.form} ✓" in text
    assert "PT-phase points used" in text and "checkpoint only" in text


def test_pretraining_fit_report_speaks_of_one_loss(pretrain_law):
    text = render(fit_report(pretrain_law))
    assert text.startswith("pre-training law L0 + A*S1^-alpha - C1*annealing")
    assert "fitted to 3 pre-training runs" in text and "no domain set" in text
    for run in pretrain_law.loss.runs:
        assert run.name in text
    chosen = next(row for row in pretrain_law.selection if row.chosen)
    labels = {"mpl1": "mpl ζ=1", "mpl": "mpl", "s2": f"λ {chosen.lam or 0:g}"}
    label = labels[chosen.annealing]
    assert f"{label} ✓" in text
    assert "general" not in text and "replay" not in text and "PT-phase" not in text
    bounded = pretrain_law.loss.model_copy(update={"at_bound": ["gamma"]})
    law = pretrain_law.model_copy(update={"loss": bounded})
    assert "warning: loss: parameters at a bound: gamma" in render(fit_report(law))
