"""The benchmarks' own bookkeeping (issue 21): coverage per region of the settings, the
replay's content-hashed refit cache, its stability verdict and stopping-rule judge, and the
MSPE acquisition (active-sl's, written for cptopt's law) on the bundled code pilots."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    """A benchmark script as a module (they import each other as scripts)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(
            f"bench_{name}", ROOT / "benchmarks" / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


@pytest.fixture(scope="module")
def accuracy():
    return _load("accuracy")


@pytest.fixture(scope="module")
def replay():
    return _load("next_pilot")


def _row(lr: float, replay: float, steps: int = 1000) -> dict:
    return {"peak_lr": str(lr), "replay_ratio": str(replay), "total_steps": str(steps)}


def test_regions_follow_the_pilots_hull(accuracy) -> None:
    # The code protocol's shape: one pilot at 0.3x (replay 0.25), three at 1x (0, 0.25, 0.5).
    manifest = {
        "a": _row(0.002, 0.25),
        "b": _row(0.0006, 0.25),
        "c": _row(0.002, 0.0),
        "d": _row(0.002, 0.5),
    }
    hull = accuracy.pilot_hull(manifest, list(manifest))
    assert accuracy.regions_of(_row(0.0011, 0.25), hull) == ["inside the hull"]
    assert accuracy.regions_of(_row(0.002, 0.1), hull) == ["inside the hull"]  # on an edge
    # In the LR range, but at replay 0 only the 1x pilot went: outside the hull.
    assert accuracy.regions_of(_row(0.0006, 0.0), hull) == ["replay outside"]
    assert accuracy.regions_of(_row(0.006, 0.25), hull) == ["LR outside"]
    assert accuracy.regions_of(_row(0.006, 0.25, 4000), hull) == ["LR outside", "length beyond"]
    assert accuracy.regions_of(_row(0.0011, 0.25, 2000), hull) == ["length beyond"]


def test_regions_of_a_degenerate_hull(accuracy) -> None:
    # Every pilot at one LR: the hull is a segment of replay ratios.
    manifest = {"a": _row(0.002, 0.0), "b": _row(0.002, 0.5), "c": _row(0.002, 0.25)}
    hull = accuracy.pilot_hull(manifest, list(manifest))
    assert accuracy.regions_of(_row(0.002, 0.1), hull) == ["inside the hull"]
    assert accuracy.regions_of(_row(0.002, 0.6), hull) == ["replay outside"]


def test_a_region_with_few_runs_says_so(accuracy) -> None:
    def errors(inside: bool) -> dict:
        return {loss: {"inside_90": inside} for loss in accuracy.LOSSES}

    per_run = {"a": errors(True), "b": errors(False), "c": errors(True), "d": errors(True)}
    regions = {
        "a": ["inside the hull"],
        "b": ["inside the hull"],
        "c": ["inside the hull"],
        "d": ["LR outside"],
    }
    table = accuracy.coverage_by_region(per_run, regions)
    inside = table["inside the hull"]["general"]
    assert inside["n"] == 3 and not inside["too_few"]
    assert inside["coverage_90"] == pytest.approx(2 / 3, abs=1e-12)  # exact ratio of counts
    assert table["LR outside"]["domain"] == {"n": 1, "coverage_90": None, "too_few": True}
    assert table["length beyond"]["general"]["n"] == 0
    assert accuracy.region_cell(table["LR outside"]["domain"]) == "too few (1)"
    assert accuracy.region_cell(inside) == "67% (3) *"  # below the 80-95 % band: marked


def test_pretraining_regions_on_the_mpl_split() -> None:
    bench = _load("pretrain")
    protocol, runs = bench.load_folder(bench.DEFAULT_DATA)
    train = [runs[name] for name in protocol["train"]]
    regions = {name: bench.regions_of(runs[name], train) for name in protocol["test"]}
    assert regions["constant_72000"] == ["long runs"]
    assert regions["cosine_72000"] == ["long runs", "deeper drop"]
    assert regions["wsdcon_3"] == ["deeper drop"]  # decays below the train runs' lowest LR
    assert regions["wsd_20000_24000"] == ["inside"]


def test_stability_and_the_stopping_rule_judge(replay) -> None:
    assert replay.stability([0.0, 0.001, 0.0005, 0.002], noise=0.0016)["stable"]
    verdict = replay.stability([0.0, 0.001, 0.0005, 0.0025], noise=0.0016)
    assert not verdict["stable"]
    assert verdict["largest_rise"] == pytest.approx(0.002, abs=1e-12)  # float subtraction
    assert replay.judge(True, 0.0) == "right"
    assert replay.judge(True, 0.005).startswith("wrong")
    assert replay.judge(False, 0.005) == "right"
    assert replay.judge(False, 0.0).startswith("cautious")


def test_the_refit_cache_key_is_the_pilot_sets_content(replay, tmp_path) -> None:
    domain = replay.Domain(ROOT / "examples" / "data" / "cpt-code", "unannealed", tmp_path, 1)
    first, second = domain.pool[:2]
    assert domain.digest([first, second]) == domain.digest([second, first])
    assert domain.digest([first]) != domain.digest([second])
    domain._base = "another version of cptopt"
    assert domain.digest([first, second]) != replay.Domain(
        ROOT / "examples" / "data" / "cpt-code", "unannealed", tmp_path, 1
    ).digest([first, second])


def test_mspe_scores_on_the_bundled_code_pilots(replay, fitted_law, unannealed_manifest) -> None:
    from cptopt import load_manifest
    from cptopt.search import load_candidates

    pilots = load_manifest(unannealed_manifest)
    candidates = load_candidates(ROOT / "examples" / "configs" / "candidates.csv")
    scores = replay.mspe_scores(fitted_law, pilots, candidates, candidates)
    names = [c.name for c in candidates]
    repeats = [i for i, name in enumerate(names) if name in ("lr1x_r00", "lr1x_r50", "lr0.3x_r25")]
    assert len(repeats) == 3  # the candidates file repeats three pilots
    # A repeat of a pilot tells nothing new: both terms exactly 0.
    assert np.all(scores["intra"][repeats] == 0.0) and np.all(scores["inter"][repeats] == 0.0)
    new = [i for i in range(len(names)) if i not in repeats]
    assert np.all(scores["intra"][new] > 0) and np.all(scores["inter"] >= 0)
    expected = (scores["intra"] + scores["inter"]) / scores["cost"] ** replay.MSPE_COST_EXPONENT
    np.testing.assert_allclose(scores["score"], expected, rtol=1e-12)  # the same arithmetic
    # Its V-optimal term is the drop of the targets' summed variance, which cannot exceed it.
    from cptopt.design.pilot_model import LatentModel

    model = LatentModel(fitted_law, "ensemble")
    assert scores["intra"].max() <= _target_variance(model, fitted_law, candidates) * (1 + 1e-9)


def _target_variance(model, law, targets) -> float:
    """Summed variance of the targets' final log-losses under the jackknife Gaussian."""
    from cptopt.design.pilot_model import listed_pilots
    from cptopt.law.areas import Areas

    runs = listed_pilots(law, targets, None)
    areas = Areas.concatenate([law.run_inputs(r.law_run(law), np.array([r.lr.size])) for r in runs])
    return float(
        sum(
            np.sum(np.nan_to_num(model.sensitivity(vs, areas, log=True)[1]) ** 2)
            for vs in law.validation_sets
        )
    )


def test_jitter_moves_only_the_losses_last_bits(accuracy, tmp_path) -> None:
    """``accuracy.py --jitter``: each logged loss times (1 + k eps), every other cell as it
    was, so a refit sees the same curves to the last bits."""
    assert accuracy.jitter_sequence(5) == [1, -1, 2, -2, 3]
    source = ROOT / "examples" / "data" / "cpt-code" / "runs" / "code_U_lr1x_r25_const_1000.csv"
    copy = accuracy.jittered_log(source, tmp_path, -2)
    before = accuracy.read_run(source.parent.parent, {"csv": f"runs/{source.name}"})
    after = accuracy.read_run(tmp_path, {"csv": copy.name})
    np.testing.assert_array_equal(after["lr"], before["lr"])  # exact: copied as text
    for loss in accuracy.LOSSES:
        steps, values = before["curves"][loss]
        np.testing.assert_array_equal(after["curves"][loss][0], steps)
        moved = after["curves"][loss][1] / values - 1
        assert np.all(np.abs(moved) <= 3 * np.finfo(float).eps)
        assert np.any(after["curves"][loss][1] != values)  # jitter that moves nothing tests nothing


def test_jitter_spread_is_each_worst_cell_over_the_refits(accuracy) -> None:
    def results(extrapolated: float, regret: float) -> list[dict]:
        summary = {"curve_mean": 0.01, "curve_worst": 0.02, "final_mean": 0.01}
        return [
            {
                "scenario": "WORST",
                "law": "auto",
                "targets": {"domain": {**summary, "final_worst": 0.04}},
                "extrapolation": {"domain": {**summary, "final_worst": extrapolated}},
                "decision": [{"weights": [0.3, 0.7], "regret_rel": regret}],
            }
        ]

    spread = accuracy.jitter_spread(
        results(0.12, 0.0), [results(0.15, 0.01), results(0.11, 0.0)], [1, -1]
    )
    cell = spread["cells"]["auto extrapolation domain final_worst"]
    # exact: the spread picks given values, it computes none
    assert (cell["value"], cell["min"], cell["max"]) == (0.12, 0.11, 0.15)
    assert spread["cells"]["auto regret 0.3,0.7"]["max"] == 0.01  # exact: a given value
    assert accuracy.jitter_spread(results(0.12, 0.0), [], []) == {}


def test_speed_cpu_figure_counts_ended_workers():
    """benchmarks/speed.py's CPU figure includes the CPU of child processes once they end
    (a fit's workers end with the fit): a child that burns 0.3 s of its own CPU adds at
    least that, however loaded the machine (CPU time, not wall)."""
    import subprocess

    speed = _load("speed")
    burn = "import time\nwhile time.process_time() < 0.3: pass"
    before = speed.cpu_seconds()
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert speed.cpu_seconds() - before >= 0.3


def test_speed_times_the_command_with_a_bytecode_cache_outside_the_checkout(monkeypatch, tmp_path):
    """The command is timed as a user's Python runs it (the bytecode cache on, kept in a
    folder of the benchmark's, never beside the sources) and as this environment runs it
    (its own settings, e.g. PYTHONDONTWRITEBYTECODE, kept)."""
    speed = _load("speed")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    cached = speed.command_env(tmp_path / "pycache")
    assert "PYTHONDONTWRITEBYTECODE" not in cached
    assert cached["PYTHONPYCACHEPREFIX"] == str(tmp_path / "pycache")
    as_is = speed.command_env(None)
    assert as_is["PYTHONDONTWRITEBYTECODE"] == "1" and "PYTHONPYCACHEPREFIX" not in as_is
    assert as_is["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
