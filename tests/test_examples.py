"""The README's library example, examples/quickstart.py, runs and says what the API says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cptopt import Schedule, predict

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"


@pytest.mark.slow
def test_quickstart_prints_the_prediction_and_a_recommendation_no_worse_than_baselines(
    fitted_law,
):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, check=True, timeout=120
    )
    out = result.stdout
    assert f"law: {fitted_law.form}, {fitted_law.annealing_description}" in out
    domain = float(re.search(r"domain loss: ([0-9.]+)", out).group(1))
    schedule = Schedule(family="wsd", peak_lr=1e-3, steps=1000, warmup_fraction=0.02)
    expected = predict(fitted_law, schedule, replay_ratio=0.25).domain.final
    assert domain == pytest.approx(expected, abs=1e-4)
    objective = float(re.search(r"objective ([0-9.]+)\n", out).group(1))
    baselines = [float(v) for v in re.findall(r"vs .*: objective ([0-9.]+)", out)]
    assert len(baselines) >= 3 and all(objective <= b + 1e-4 for b in baselines)
