"""Pre-training runs as pilots: fit on a folder's ``train`` runs, predict its ``test`` runs.

Reads a folder in the layout of ``examples/data/pt-mpl25`` (one ``<run>.csv`` per run with
columns ``step, lr, loss``, and a ``protocol.json`` with the split, ``train`` / ``test``,
and the machine-readable ``schedules``), fits cptopt's law to the train runs as
pre-training pilots with the default selection (the annealing memory chosen by
leave-one-run-out CV on the train runs alone), predicts every test run's loss at its logged
steps from its own per-step LR, and prints per test run

    PredE = mean |pred - loss| / loss,   WorstE = max |pred - loss| / loss

over all its rows, their unweighted means over the test runs, and next to them the
reference figures of the Multi-Power Law paper's split for the model size the folder holds
(the ``model_size`` key of ``protocol.json``, or ``--model-size``): MPL's README table,
25M 0.110 % / 0.41 %, 100M 0.142 % / 0.58 %, 400M 0.168 / 1.0 %, and the LR-annealing law
with lambda 0.999 where known. An unknown size has no reference, and the table says so.

It also prints, per test run and overall, the share of its rows inside the 90 % interval
of the prediction (the intervals are calibrated on the train runs alone), and each test
run's coverage flags (a run longer than the train runs, an LR drop deeper than theirs),
and the coverage per region (issue 21, item 2): ``inside`` (peak LR inside the train runs'
range, no longer than the longest, its lowest LR after warmup not below theirs), ``LR
outside`` (peak LR outside their range), ``long runs`` (more steps than the longest train
run), ``deeper drop`` (an LR after warmup lower than any train run's); a run is in every
region that applies, and a region with fewer than 3 test runs says "too few" (JSON:
``coverage_by_region``, null coverage) rather than a number.

It also times the default fit, and the chosen law alone (no selection, no refits) against
a plain scipy fit of the same law on the same points, in the same run (best of
``--repeat``): multi-start L-BFGS-B with numerical gradients on the same Huber objective,
from as many random starts (uniform in the bounds, log-uniform for scale parameters), the
baseline of ``benchmarks/speed.py``.

Step convention of the folder: the loss at ``step = t`` is after training with
``lr[0..t]`` (0-based), i.e. after ``t + 1`` updates; cptopt's point after ``s`` updates is
step ``s``, so row ``t`` is fitted and predicted at cptopt step ``t + 1``, with the exact
per-step LR rebuilt from ``protocol.json`` (checked against every logged ``lr``).

    python benchmarks/pretrain.py [--data DIR] [--format table|json] [--repeat 1]
                                  [--annealing auto|s2|mpl|mpl1] [--lam X]
                                  [--huber-delta X] [--model-size 25M|100M|400M]

JSON: ``{"runs": {name: {"pred_e", "worst_e"}}, "mean": {"pred_e", "worst_e"}, ...}``
(fractions), plus ``model_size``, ``reference`` (empty for an unknown size), ``details``
(per test run: steps, points, the mean signed error over the last tenth of its logged
steps, where its worst point is, the share of its rows inside the 90 % interval and its
flags), ``coverage`` (overall share inside), ``law`` (the chosen memory, its parameters and
the CV table) and ``timing``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from cptopt.exceptions import CptoptError, InputError
from cptopt.fitting import LawFitter
from cptopt.fitting.data import thin
from cptopt.fitting.jobs import FINAL
from cptopt.fitting.optimise import Problem
from cptopt.fitting.pretraining import equal_points
from cptopt.law import InputNeeds, PretrainRunsLaw, scenario_of
from cptopt.pilots.logs import Series
from cptopt.pilots.runs import PretrainPilots, PretrainRun
from cptopt.prediction import predict
from cptopt.schedules import Schedule

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "examples" / "data" / "pt-mpl25"
#: Reference figures (mean PredE, mean WorstE over the six test runs, fractions; None:
#: not published) of the paper's split by model size: the MPL paper's README table, and a
#: careful fit of the original LR-annealing law (lambda 0.999; the 25M data README, issue
#: 24 for the larger models).
REFERENCES: dict[str, dict[str, tuple[float, float | None]]] = {
    "25M": {
        "Multi-Power Law (paper)": (0.00110, 0.0041),
        "LR-annealing law, lambda 0.999": (0.00152, 0.0059),
    },
    "100M": {
        "Multi-Power Law (paper)": (0.00142, 0.0058),
        "LR-annealing law, lambda 0.999": (0.00140, None),
    },
    "400M": {
        "Multi-Power Law (paper)": (0.00168, 0.0100),
        "LR-annealing law, lambda 0.999": (0.00182, None),
    },
}
#: The level of the intervals whose coverage is reported.
LEVEL = 0.9
#: Regions of a test run relative to the train runs (issue 21, item 2).
REGIONS = ("inside", "LR outside", "long runs", "deeper drop")
#: A region with fewer test runs than this reports "too few" instead of a coverage.
MIN_REGION_RUNS = 3
#: Logged LRs must agree with the rebuilt schedule to this share of the peak LR.
LR_TOLERANCE = 1e-9


def schedule_lr(common: dict, spec: dict) -> np.ndarray:
    """Per-step LR of one run from ``protocol.json`` (0-based ``t``; see the data README)."""
    warmup, peak = int(common["warmup_steps"]), float(common["peak_lr"])
    end = float(common["end_lr"])
    total = int(spec["total_steps"])
    t = np.arange(total, dtype=float)
    lr = np.full(total, peak)
    kind = spec["kind"]
    if kind == "cosine":
        lr = end + 0.5 * (peak - end) * (1 + np.cos(np.pi * (t - warmup) / (total - warmup)))
    elif kind in ("wsd_geometric", "wsd_linear"):
        start = int(spec["decay_start"])
        decay = t >= start
        share = (t[decay] - start) / (total - start)
        geometric = peak ** (1 - share) * end**share
        lr[decay] = geometric if kind == "wsd_geometric" else peak + (end - peak) * share
    elif kind == "two_stage":
        lr[int(spec["drop_at"]) :] = float(spec["second_lr"])
    elif kind != "constant":
        raise InputError(f"protocol.json: schedules: unknown kind {kind!r}")
    lr[:warmup] = np.linspace(0.0, peak, warmup)
    return lr


def read_run(data: Path, name: str, lr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, loss)`` of one run's CSV (its own 0-based steps), logged LRs checked."""
    path = data / f"{name}.csv"
    if not path.is_file():
        raise InputError(f"{path}: not found (named in protocol.json)")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"step", "lr", "loss"} <= set(rows[0]):
        raise InputError(f"{path}: needs the columns step, lr, loss")
    steps = np.array([int(row["step"]) for row in rows])
    logged = np.array([float(row["lr"]) for row in rows])
    loss = np.array([float(row["loss"]) for row in rows])
    if steps.max() >= lr.size:
        raise InputError(f"{path}: step {steps.max()} beyond the schedule ({lr.size} steps)")
    bad = np.flatnonzero(np.abs(logged - lr[steps]) > LR_TOLERANCE * lr.max())
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{path}: lr: {logged[i]:.6g} at step {steps[i]} but the schedule of "
            f"protocol.json gives {lr[steps[i]]:.6g}"
        )
    return steps, loss


def load_folder(data: Path) -> tuple[dict, dict[str, PretrainRun]]:
    """The protocol and every train and test run, at cptopt's steps (row ``t`` -> ``t + 1``)."""
    protocol_path = data / "protocol.json"
    if not protocol_path.is_file():
        raise InputError(f"{protocol_path}: not found")
    protocol = json.loads(protocol_path.read_text())
    common = protocol["schedules"]["common"]
    runs = {}
    for name in [*protocol["train"], *protocol["test"]]:
        lr = schedule_lr(common, protocol["schedules"]["runs"][name])
        steps, loss = read_run(data, name, lr)
        path = data / f"{name}.csv"
        runs[name] = PretrainRun(
            name=name,
            lr=lr,
            loss=Series(steps + 1, loss),
            warmup_steps=int(common["warmup_steps"]),
            source=str(path),
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        )
    return protocol, runs


def score(law: PretrainRunsLaw, run: PretrainRun) -> dict:
    """PredE and WorstE of ``law`` on every point of ``run`` after its warmup, the mean
    signed error over the last tenth of its logged steps, the step of its worst point, the
    share of its points inside the prediction's :data:`LEVEL` interval, and its flags."""
    keep = run.loss.steps > run.warmup_steps
    steps, observed = run.loss.steps[keep], run.loss.values[keep]
    schedule = Schedule(family="custom", lr=tuple(run.lr.tolist()))
    predicted = predict(law, schedule, steps=steps, warmup_steps=run.warmup_steps, level=LEVEL)
    signed = np.asarray(predicted.loss.mean) / observed - 1.0
    inside = (np.asarray(predicted.loss.lower) <= observed) & (
        observed <= np.asarray(predicted.loss.upper)
    )
    late = steps >= 0.9 * steps[-1]
    return {
        "pred_e": float(np.abs(signed).mean()),
        "worst_e": float(np.abs(signed).max()),
        "late_signed": float(signed[late].mean()),
        "worst_step": int(steps[np.argmax(np.abs(signed))]),
        "n_points": int(keep.sum()),
        "steps": run.steps,
        "coverage": float(inside.mean()),
        "flags": predicted.flags,
    }


def after_warmup(run: PretrainRun) -> np.ndarray:
    """The run's per-step LR after its warmup."""
    return run.lr[run.warmup_steps :] if run.lr.size > run.warmup_steps else run.lr


def regions_of(run: PretrainRun, train: list[PretrainRun]) -> list[str]:
    """The regions (:data:`REGIONS`) a test run is in, relative to the train runs
    (relative tolerance 1e-9 on the LRs)."""
    peaks = [float(r.lr.max()) for r in train]
    peak, out = float(run.lr.max()), []
    if not min(peaks) * (1 - 1e-9) <= peak <= max(peaks) * (1 + 1e-9):
        out.append("LR outside")
    if run.steps > max(r.steps for r in train):
        out.append("long runs")
    if float(after_warmup(run).min()) < min(float(after_warmup(r).min()) for r in train) * (
        1 - 1e-9
    ):
        out.append("deeper drop")
    return out or ["inside"]


def coverage_by_region(scores: dict[str, dict], regions: dict[str, list[str]]) -> dict:
    """Per region: test runs, and the share of their rows inside the interval (pooled over
    the runs' rows; None when fewer than :data:`MIN_REGION_RUNS` runs)."""
    out = {}
    for region in REGIONS:
        members = [name for name in scores if region in regions[name]]
        enough = len(members) >= MIN_REGION_RUNS
        rows = sum(scores[name]["n_points"] for name in members)
        inside = sum(scores[name]["coverage"] * scores[name]["n_points"] for name in members)
        out[region] = {
            "runs": members,
            "coverage": float(inside / rows) if enough and rows else None,
            "too_few": not enough,
        }
    return out


def model_size_of(protocol: dict, given: str | None) -> str | None:
    """The model size: ``given`` (``--model-size``), else the protocol's ``model_size``."""
    size = given if given is not None else protocol.get("model_size")
    return None if size is None else str(size).strip().upper()


def references_for(size: str | None) -> dict[str, dict[str, float | None]]:
    """The reference figures for ``size`` (empty when unknown or not given)."""
    known = REFERENCES.get(size or "", {})
    return {label: {"pred_e": pred, "worst_e": worst} for label, (pred, worst) in known.items()}


def scipy_baseline(pilots: PretrainPilots, law: PretrainRunsLaw, n_starts: int, seed: int = 0):
    """Plain multi-start L-BFGS-B (numerical gradients) of the law ``law`` has, on the same
    points (every pilot thinned to the same count, as the fit does) and Huber objective;
    returns (seconds, best cost)."""
    started = time.perf_counter()
    form = law.form_for("loss")
    data = scenario_of(pilots).fit_data("loss", InputNeeds(law.lam, history=form.needs_history))
    data = thin(data, equal_points(data, FINAL).points)  # the points the fit itself uses
    problem = Problem(form, data, law.huber_delta, level_scales=False)
    rng = np.random.default_rng(seed)
    bounds = list(zip(problem.lower, problem.upper, strict=True))
    best = np.inf
    for _ in range(n_starts):
        x0 = rng.uniform(problem.lower, problem.upper)
        best = min(best, float(minimize(problem.cost, x0, method="L-BFGS-B", bounds=bounds).fun))
    return time.perf_counter() - started, best


def best_of(repeat: int, function):
    """``(seconds, value)`` of the fastest of ``repeat`` calls of ``function()``."""
    results = []
    for _ in range(repeat):
        started = time.perf_counter()
        value = function()
        results.append((time.perf_counter() - started, value))
    return min(results, key=lambda item: item[0])


def timing(pilots: PretrainPilots, law: PretrainRunsLaw, repeat: int) -> dict:
    """The chosen law alone (no selection, no refits) by cptopt and by plain scipy."""
    single = {"annealing": law.annealing, "jackknife": False, "huber_delta": law.huber_delta}
    if law.annealing == "s2":
        single["lam"] = law.lam
    n_starts = LawFitter().n_starts
    seconds, alone = best_of(repeat, lambda: LawFitter(**single).fit(pilots).law_)
    with threadpool_limits(limits=1):
        baseline = min(
            (scipy_baseline(pilots, law, n_starts) for _ in range(repeat)),
            key=lambda item: item[0],
        )
    return {
        "single_fit_seconds": seconds,
        "single_fit_cost": alone.loss.huber_cost,
        "scipy_seconds": baseline[0],
        "scipy_cost": baseline[1],
        "n_starts": n_starts,
    }


def run_benchmark(data: Path, settings: dict, repeat: int, model_size: str | None = None) -> dict:
    protocol, runs = load_folder(data)
    size = model_size_of(protocol, model_size)
    pilots = PretrainPilots(tuple(runs[name] for name in protocol["train"]), str(data))
    fit_seconds, law = best_of(repeat, lambda: LawFitter(**settings).fit(pilots).law_)
    scores = {name: score(law, runs[name]) for name in protocol["test"]}
    train = [runs[name] for name in protocol["train"]]
    regions = {name: regions_of(runs[name], train) for name in protocol["test"]}
    details = ("steps", "n_points", "late_signed", "worst_step", "coverage", "flags")
    return {
        "runs": {name: {k: v[k] for k in ("pred_e", "worst_e")} for name, v in scores.items()},
        "mean": {
            key: float(np.mean([v[key] for v in scores.values()])) for key in ("pred_e", "worst_e")
        },
        "model_size": size,
        "reference": references_for(size),
        "details": {name: {k: v[k] for k in details} for name, v in scores.items()},
        "coverage": float(
            sum(v["coverage"] * v["n_points"] for v in scores.values())
            / sum(v["n_points"] for v in scores.values())
        ),
        "coverage_by_region": coverage_by_region(scores, regions),
        "law": {
            "memory": law.annealing_description,
            "annealing": law.annealing,
            "lam": law.lam,
            "parameters": dict(zip(law.loss.parameter_names, law.loss.values, strict=True)),
            "cv_error": law.loss.cv_error,
            "selection": [
                {k: getattr(row, k) for k in ("annealing", "lam", "n_params", "cv_mean", "chosen")}
                for row in law.selection
            ],
            "train": [run.model_dump() for run in law.loss.runs],
        },
        "timing": {
            "repeat": repeat,
            "default_fit_seconds": fit_seconds,
            "n_train_points": law.loss.n_points,
            **timing(pilots, law, repeat),
        },
    }


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.3f} %"


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    size = result["model_size"]
    table = Table(title="pre-training pilots: held-out test runs (fit on the train runs only)")
    columns = ("test run", "steps", "points", "PredE", "WorstE", "last 10 %", "worst at")
    for column in (*columns, f"in {LEVEL:.0%} interval"):
        table.add_column(column, justify="left" if column == "test run" else "right")
    for name, value in result["runs"].items():
        details = result["details"][name]
        table.add_row(
            name,
            str(details["steps"]),
            str(details["n_points"]),
            _percent(value["pred_e"]),
            _percent(value["worst_e"]),
            f"{100 * details['late_signed']:+.3f} %",
            str(details["worst_step"]),
            f"{details['coverage']:.0%}",
        )
    mean = result["mean"]
    table.add_row(
        "mean (cptopt)",
        "",
        "",
        _percent(mean["pred_e"]),
        _percent(mean["worst_e"]),
        "",
        "",
        f"{result['coverage']:.0%}",
    )
    for label, value in result["reference"].items():
        row = f"{label}, {size}"
        table.add_row(row, "", "", _percent(value["pred_e"]), _percent(value["worst_e"]))
    console.print(table)
    if not result["reference"]:
        known = ", ".join(REFERENCES)
        why = f"model size {size}" if size else "no model size (protocol.json or --model-size)"
        console.print(f"no reference figures: {why}; known sizes: {known}", highlight=False)
    cells = []
    for region, cell in result["coverage_by_region"].items():
        n = len(cell["runs"])
        cells.append(
            f"{region} too few ({n})" if cell["coverage"] is None
            else f"{region} {cell['coverage']:.0%} ({n})"
        )  # fmt: skip
    console.print(
        f"in the {LEVEL:.0%} interval per region (test runs; rows pooled): " + ", ".join(cells),
        highlight=False,
    )
    for name, details in result["details"].items():
        for flag in details["flags"]:
            console.print(f"{name}: {flag}", highlight=False)
    law = result["law"]
    choices = ", ".join(
        f"{'λ ' + format(row['lam'], 'g') if row['annealing'] == 's2' else row['annealing']}"
        f" {_percent(row['cv_mean'])}{' ✓' if row['chosen'] else ''}"
        for row in law["selection"]
    )
    console.print(f"law: {law['memory']}; leave-one-train-run-out CV: {choices or '-'}")
    t = result["timing"]
    console.print(
        f"fit time (best of {t['repeat']}, {t['n_train_points']} points): default fit (CV "
        f"selection + jackknife) {t['default_fit_seconds']:.2f} s; the chosen law alone "
        f"{t['single_fit_seconds']:.2f} s (Huber cost {t['single_fit_cost']:.4g}) vs plain "
        f"scipy L-BFGS-B, {t['n_starts']} starts, {t['scipy_seconds']:.2f} s (cost "
        f"{t['scipy_cost']:.4g})",
        highlight=False,
    )
    console.print(
        "last 10 %: mean signed error (pred/obs - 1) over the last tenth of each run's logged "
        "steps; "
        "worst at: the step of its largest error",
        highlight=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--annealing", default=None, help="auto (default: CV), s2, mpl or mpl1")
    parser.add_argument("--lam", default=None, help="S2 lambda (with --annealing s2)")
    parser.add_argument(
        "--huber-delta", type=float, default=None, help="Huber threshold (default: cptopt's)"
    )
    parser.add_argument(
        "--model-size", default=None, help="the reference's model size (default: protocol.json)"
    )
    args = parser.parse_args(argv)
    settings = {"annealing": args.annealing, "lam": args.lam}
    if args.huber_delta is not None:
        settings["huber_delta"] = args.huber_delta
    try:
        result = run_benchmark(args.data, settings, max(1, args.repeat), args.model_size)
    except (CptoptError, OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
