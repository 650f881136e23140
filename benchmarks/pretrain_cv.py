"""Pre-training pilots: the fitting methods the train runs' CV can choose among, and whether
that CV sees what the test runs ask (issue 24).

Reads a folder in the ``pt-mpl25`` layout (as ``benchmarks/pretrain.py``: the train / test
split and the per-step LRs of ``protocol.json``). A *method* is an annealing memory (the
candidates of the default selection: S2 with each lambda, ``mpl``, ``mpl1``) fitted with a
Huber threshold (``--deltas``), or, per threshold, the average of the memories weighted by
their leave-one-run-out evidence (``bma``: the pseudo-BMA+ weights CPT's averaged laws use,
:func:`cptopt.fitting.averaging.evidence_weights`). For each method it prints

- ``LORO``: leave-one-train-run-out CV, each left-out run predicted by a full fit of the
  others (not the warm-started refits of the fit's own CV), the mean over the runs of the
  mean ``|pred / obs - 1|`` of each;
- ``FC``: forward chaining in time, a fit of every train run's points up to half the
  longest train run, scored on each run's points after it (mean over the runs that have
  any);
- the test runs' mean PredE and WorstE (as ``benchmarks/pretrain.py`` scores them) and
  ``cosine_72000``-style long runs' PredE: reported, never used to choose.

Then the CV itself, judged on the train runs alone (``--worlds``): a *world* is the train
runs' points up to a step ``W``; inside it each method gets its LORO and its forward
chaining at ``W / 2``, and the *truth* it cannot see is the method's error after ``W`` when
fitted on the whole world (the long horizon, as the test runs are 3x longer than the train
runs). Per world: the Spearman rank correlation of each criterion with the truth over the
methods, and the truth of the method each criterion picks against the best.

    python benchmarks/pretrain_cv.py [--data DIR] [--deltas 1e-4,3e-4,1e-3,3e-3]
                                     [--worlds 12000,16000] [--n-starts 3] [--format json]

JSON: ``{"methods": [{"method", "loro", "fc", "test_pred_e", "test_worst_e",
"test_long_pred_e"}], "judgement": [{"world", "criteria": {name: {"spearman",
"picked", "picked_truth"}}, "best_truth"}], "settings"}`` (fractions).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pretrain import DEFAULT_DATA, load_folder  # the sibling benchmark (run as a script)
from scipy.stats import spearmanr

from cptopt.exceptions import CptoptError
from cptopt.fitting import LawFitter
from cptopt.fitting.averaging import evidence_weights
from cptopt.fitting.pretraining import PRETRAIN_ANNEALINGS
from cptopt.fitting.selection import AUTO_LAMBDAS
from cptopt.pilots.logs import Series
from cptopt.pilots.runs import PretrainPilots, PretrainRun
from cptopt.prediction import predict
from cptopt.schedules import Schedule

#: Huber thresholds compared by default (cptopt's default, 1e-3, among them).
DEFAULT_DELTAS = (1e-4, 3e-4, 1e-3, 3e-3)
#: World ends (steps) of the CV judgement by default: half and two thirds of 24,000.
DEFAULT_WORLDS = (12000, 16000)
#: Seed of the Bayesian bootstrap behind the evidence weights.
WEIGHT_SEED = 0


@dataclass(frozen=True)
class Memory:
    """One annealing memory of the default selection (``lam`` for S2 only)."""

    annealing: str
    lam: float | None = None

    @property
    def label(self) -> str:
        return f"s2 {self.lam:g}" if self.annealing == "s2" else self.annealing


MEMORIES = tuple(Memory("s2", lam) for lam in AUTO_LAMBDAS) + tuple(
    Memory(a) for a in PRETRAIN_ANNEALINGS if a != "s2"
)


def truncated(run: PretrainRun, last: int) -> PretrainRun:
    """``run`` with its logged points up to step ``last`` (its LRs are causal: unchanged)."""
    keep = run.loss.steps <= last
    return replace(run, loss=Series(run.loss.steps[keep], run.loss.values[keep]))


def scored_steps(run: PretrainRun, after: int = 0) -> np.ndarray:
    """The run's logged steps after its warmup and after step ``after``."""
    steps = run.loss.steps
    return steps[(steps > run.warmup_steps) & (steps > after)]


def observed(run: PretrainRun, steps: np.ndarray) -> np.ndarray:
    return run.loss.values[np.searchsorted(run.loss.steps, steps)]


class Fitter:
    """Fits of one memory and Huber threshold on any subset of runs, and its predictions."""

    def __init__(self, memory: Memory, delta: float, n_starts: int) -> None:
        self.memory, self.delta, self.n_starts = memory, delta, n_starts

    def fit(self, runs: list[PretrainRun]):
        fitter = LawFitter(
            annealing=self.memory.annealing,
            lam=self.memory.lam,
            huber_delta=self.delta,
            n_starts=self.n_starts,
            jackknife=False,
        )
        return fitter.fit(PretrainPilots(tuple(runs), "benchmark")).law_

    @staticmethod
    def predict(law, run: PretrainRun, steps: np.ndarray) -> np.ndarray:
        if steps.size == 0:
            return np.empty(0)
        schedule = Schedule(family="custom", lr=tuple(run.lr.tolist()))
        predicted = predict(law, schedule, steps=steps, warmup_steps=run.warmup_steps)
        return np.asarray(predicted.loss.mean, dtype=float)


def loro(fitter: Fitter, runs: list[PretrainRun]) -> list[np.ndarray]:
    """Each run's predictions (at :func:`scored_steps`) by a fit of the other runs."""
    out = []
    for index, run in enumerate(runs):
        law = fitter.fit([r for i, r in enumerate(runs) if i != index])
        out.append(fitter.predict(law, run, scored_steps(run)))
    return out


def chained(fitter: Fitter, runs: list[PretrainRun], cut: int) -> list[np.ndarray]:
    """Each run's predictions after step ``cut`` by a fit of every run up to ``cut``
    (empty for a run that ends there)."""
    law = fitter.fit([truncated(run, cut) for run in runs])
    return [fitter.predict(law, run, scored_steps(run, cut)) for run in runs]


def mean_error(
    predictions: list[np.ndarray], runs: list[PretrainRun], after: int = 0
) -> tuple[float, list[float]]:
    """Mean over the runs (with points) of the mean |pred / obs - 1|, and each run's."""
    per_run = []
    for prediction, run in zip(predictions, runs, strict=True):
        if prediction.size:
            per_run.append(
                float(np.abs(prediction / observed(run, scored_steps(run, after)) - 1).mean())
            )
    return float(np.mean(per_run)), per_run


def average(members: list[list[np.ndarray]], weights: np.ndarray) -> list[np.ndarray]:
    """The weighted average of the members' predictions, run by run."""
    by_run = zip(*members, strict=True)
    return [sum(w * p for w, p in zip(weights, parts, strict=True)) for parts in by_run]


@dataclass
class MethodResult:
    """What one method predicted, for scoring and for averaging."""

    name: str
    loro: list[np.ndarray]
    fc: list[np.ndarray]
    test: list[np.ndarray]


def fit_method(
    memory: Memory, delta: float, n_starts: int, train: list, test: list, cut: int
) -> MethodResult:
    fitter = Fitter(memory, delta, n_starts)
    law = fitter.fit(train)
    tests = [fitter.predict(law, run, scored_steps(run)) for run in test]
    name = f"{memory.label}, delta {delta:g}"
    return MethodResult(name, loro(fitter, train), chained(fitter, train, cut), tests)


def averaged(members: list[MethodResult], train: list, name: str) -> MethodResult:
    """The evidence-weighted average of ``members`` (weights from their LORO errors)."""
    errors = [dict(enumerate(mean_error(m.loro, train)[1])) for m in members]
    weights = evidence_weights(errors, np.random.default_rng(WEIGHT_SEED))
    return MethodResult(
        name,
        average([m.loro for m in members], weights),
        average([m.fc for m in members], weights),
        average([m.test for m in members], weights),
    )


def score(result: MethodResult, train: list, test: list, cut: int) -> dict:
    pairs = zip(result.test, test, strict=True)
    errors = [p / observed(run, scored_steps(run)) - 1 for p, run in pairs]
    longest = max(run.steps for run in train)
    long = [np.abs(e).mean() for e, run in zip(errors, test, strict=True) if run.steps > longest]
    return {
        "method": result.name,
        "loro": mean_error(result.loro, train)[0],
        "fc": mean_error(result.fc, train, cut)[0],
        "test_pred_e": float(np.mean([np.abs(e).mean() for e in errors])),
        "test_worst_e": float(np.mean([np.abs(e).max() for e in errors])),
        "test_long_pred_e": float(np.mean(long)) if long else None,
    }


def judge(world: int, methods: list[tuple[Memory, float]], train: list, n_starts: int) -> dict:
    """The CV criteria inside the world ``<= world`` against the truth after it."""
    inner = [truncated(run, world) for run in train]
    names, truth, criteria = [], [], {"LORO": [], "FC": []}
    for memory, delta in methods:
        fitter = Fitter(memory, delta, n_starts)
        names.append(f"{memory.label}, delta {delta:g}")
        truth.append(mean_error(chained(fitter, train, world), train, world)[0])
        criteria["LORO"].append(mean_error(loro(fitter, inner), inner)[0])
        criteria["FC"].append(mean_error(chained(fitter, inner, world // 2), inner, world // 2)[0])
    out = {}
    for name, values in criteria.items():
        pick = int(np.argmin(values))
        out[name] = {
            "spearman": float(spearmanr(values, truth).statistic),
            "picked": names[pick],
            "picked_truth": truth[pick],
        }
    best = int(np.argmin(truth))
    return {"world": world, "criteria": out, "best": names[best], "best_truth": truth[best]}


def run_benchmark(data: Path, deltas, worlds, n_starts: int) -> dict:
    protocol, runs = load_folder(data)
    train = [runs[name] for name in protocol["train"]]
    test = [runs[name] for name in protocol["test"]]
    cut = max(run.steps for run in train) // 2
    rows = []
    for delta in deltas:
        members = [fit_method(m, delta, n_starts, train, test, cut) for m in MEMORIES]
        members.append(averaged(members, train, f"bma, delta {delta:g}"))
        rows += [score(member, train, test, cut) for member in members]
    methods = [(memory, delta) for delta in deltas for memory in MEMORIES]
    judgement = [judge(world, methods, train, n_starts) for world in worlds]
    settings = {"deltas": list(deltas), "worlds": list(worlds), "n_starts": n_starts, "cut": cut}
    return {"methods": rows, "judgement": judgement, "settings": settings}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.3f} %"


def print_table(result: dict) -> None:
    cut = result["settings"]["cut"]
    print(f"| method | LORO | FC (fit <= {cut}) | test PredE | test WorstE | long runs PredE |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in result["methods"]:
        cells = ("loro", "fc", "test_pred_e", "test_worst_e", "test_long_pred_e")
        print(f"| {row['method']} | " + " | ".join(_pct(row[key]) for key in cells) + " |")
    print("\nthe CV judged on the train runs alone (truth: error after the world, fitted on it)")
    for item in result["judgement"]:
        print(f"world <= {item['world']}: best truth {item['best']} {_pct(item['best_truth'])}")
        for name, cell in item["criteria"].items():
            print(
                f"  {name}: Spearman with the truth {cell['spearman']:+.2f}; picks "
                f"{cell['picked']}, truth {_pct(cell['picked_truth'])}"
            )


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(item) for item in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--deltas", type=_floats, default=DEFAULT_DELTAS)
    parser.add_argument("--worlds", type=_floats, default=DEFAULT_WORLDS)
    parser.add_argument("--n-starts", type=int, default=LawFitter().n_starts)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    worlds = tuple(int(world) for world in args.worlds)
    try:
        result = run_benchmark(args.data, args.deltas, worlds, args.n_starts)
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
