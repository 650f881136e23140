"""The prediction report: what it says about a prediction outside the pilots."""

from __future__ import annotations

from rich.console import Console

from cptopt import Schedule, predict
from cptopt.report.prediction import prediction_report


def render(renderable) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_prediction_report_flags_extrapolation(fitted_law):
    schedule = Schedule(family="wsd", peak_lr=6e-3, steps=3000, warmup_steps=60)
    prediction = predict(fitted_law, schedule, 0.25)
    text = render(prediction_report(prediction))
    assert not prediction.in_range and len(prediction.flags) == 2
    assert "outside the pilots" in text and "6e-03" in text.replace("0.006", "6e-03")


def test_pretraining_prediction_report(pretrain_law):
    from cptopt.prediction import predict

    schedule = Schedule(family="cosine", peak_lr=3e-4, steps=72000, warmup_steps=2160)
    prediction = predict(pretrain_law, schedule, steps=[3000, 72000])
    text = render(prediction_report(prediction))
    assert text.startswith("pre-training cosine 72000 steps, peak 0.0003, warmup 2160")
    assert "after the warmup (step 2161)" in text and "final (step 72000)" in text
    assert "outside the pilots: 72000 steps beyond the longest pilot (24000): 3.0x" in text
    assert "general" not in text and "domain" not in text
