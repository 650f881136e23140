"""benchmarks/pretrain_cv.py on pt-mpl25 (issue 24): the CV figures that keep the default
pre-training selection, on a reduced grid (cptopt's Huber threshold, one world)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from cptopt.fitting import LawFitter
from cptopt.pilots.runs import PretrainPilots

pytestmark = [pytest.mark.accuracy, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "data" / "pt-mpl25"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # it imports benchmarks/pretrain.py
    try:
        spec = importlib.util.spec_from_file_location(
            "pt_cv_bench", ROOT / "benchmarks" / "pretrain_cv.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


@pytest.fixture(scope="module")
def result(bench):
    return bench.run_benchmark(DATA, (1e-3,), (12000,), n_starts=3)


def test_every_memory_and_their_average_is_scored(bench, result):
    names = [row["method"] for row in json.loads(json.dumps(result))["methods"]]
    assert names == [f"{m.label}, delta 0.001" for m in bench.MEMORIES] + ["bma, delta 0.001"]
    for row in result["methods"]:
        assert 0 < row["loro"] < 0.01 and 0 < row["fc"] < 0.01
        assert row["test_long_pred_e"] is not None  # two test runs are 3x the longest train run


def test_its_loro_is_the_default_fits_cv(bench, result):
    """The benchmark refits each left-out fold fully, the fit's own CV with a warm-started,
    budgeted refit: measured 0.1043 % against 0.1044 % for mpl1; 5 % relative tolerance
    for that difference in the refits."""
    protocol, runs = bench.load_folder(DATA)
    pilots = PretrainPilots(tuple(runs[name] for name in protocol["train"]), str(DATA))
    law = LawFitter(annealing="mpl1").fit(pilots).law_
    mpl1 = next(row for row in result["methods"] if row["method"].startswith("mpl1"))
    assert mpl1["loro"] == pytest.approx(law.loss.cv_error, rel=0.05)  # refit procedures differ


def test_the_train_runs_loro_cannot_see_the_long_horizon(result):
    """Measured: within the train runs' first 12,000 steps, LORO ranks the 6 memories
    against their error after step 12,000 (Spearman -0.83), and the evidence-weighted
    average, which LORO prefers (0.099 % vs mpl1's 0.104 %), scores worse on the test
    runs (0.121 % vs 0.118 %)."""
    (world,) = result["judgement"]
    assert world["criteria"]["LORO"]["spearman"] < 0
    assert world["criteria"]["LORO"]["picked_truth"] > world["best_truth"]
    rows = {row["method"].split(",")[0]: row for row in result["methods"]}
    assert rows["bma"]["loro"] < rows["mpl1"]["loro"]
    assert rows["bma"]["test_pred_e"] > rows["mpl1"]["test_pred_e"]
