"""Speed and accuracy of ``cptopt recommend``, against baselines timed in the same run.

Prints, on this machine and data:

1. trials/s of cptopt's search loop (vectorised seed batch via ``add_trials`` + batched
   ask/evaluate/tell) per sampler, next to a plain ``study.optimize`` loop with the same
   sampler, space and number of trials whose objective evaluates one setting per call;
   the ratio cptopt / plain;
2. the wall time of the default ``recommend`` (library call, and the whole CLI command in a
   fresh process, imports included) and the relative gap of its answer to the dense
   optimum, for the weight pairs of ``protocol.json``.

Usage::

    python benchmarks/recommend_speed.py [--law cptopt-law.json] [--trials 128] [--repeat 3]

Without ``--law`` it fits ``examples/pilots/unannealed.yaml`` first (not timed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402

from cptopt import fit, load_law  # noqa: E402
from cptopt.search import (  # noqa: E402
    Constraints,
    SearchSettings,
    SearchSpace,
    dense_optimum,
    recommend,
)
from cptopt.search.evaluate import Evaluator  # noqa: E402
from cptopt.search.models import SEARCH_FAMILIES  # noqa: E402
from cptopt.search.space import resolve_space  # noqa: E402
from cptopt.search.study import _run_study, _seed_study, make_sampler  # noqa: E402


def _space_and_evaluator(law):
    space = resolve_space(law, SearchSpace(), Constraints(), False)
    return space, Evaluator(law, space.checkpoints, 0.5, 0.5, space.tokens_per_step)


WEIGHTS = [(0.3, 0.7), (0.5, 0.5), (0.7, 0.3)]


def plain_loop(law, sampler_name: str, trials: int, seed: int) -> float:
    """trials/s of ``study.optimize`` with a define-by-run objective, one setting per call."""
    space, evaluator = _space_and_evaluator(law)
    distributions = space.distributions()

    def suggest(trial: optuna.Trial, name: str, dist) -> object:
        if isinstance(dist, optuna.distributions.FloatDistribution):
            return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        if isinstance(dist, optuna.distributions.IntDistribution):
            return trial.suggest_int(name, dist.low, dist.high, step=dist.step)
        return trial.suggest_categorical(name, dist.choices)

    def objective(trial: optuna.Trial) -> float:
        params = {name: suggest(trial, name, dist) for name, dist in distributions.items()}
        batch = space.batch_from_params([params])
        _, _, value, violations = evaluator.evaluate(batch)
        for name, values in violations.items():
            trial.set_constraint(name, float(values[0]))
        return float(value[0])

    study = optuna.create_study(sampler=make_sampler(sampler_name, seed))
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return trials / (time.perf_counter() - start)


def cptopt_loop(law, sampler_name: str, trials: int, seed: int) -> float:
    """trials/s of cptopt's loop: seed batch via add_trials, then batched ask/tell."""
    space, evaluator = _space_and_evaluator(law)
    settings = SearchSettings()
    study = optuna.create_study(sampler=make_sampler(sampler_name, seed))
    start = time.perf_counter()
    _seed_study(study, space, evaluator, min(settings.seed_trials, trials), seed)
    _run_study(study, None, "bench", space, evaluator, trials, settings.batch_size, None)
    return trials / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--law", type=Path, default=None)
    parser.add_argument("--trials", type=int, default=SearchSettings().trials)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    if args.law is None:
        law = fit(ROOT / "examples" / "pilots" / "unannealed.yaml")
        law_path = Path(tempfile.mkdtemp()) / "cptopt-law.json"
        law.save(law_path)
    else:
        law_path = args.law
        law = load_law(law_path)
    print(
        f"cores: {os.cpu_count()}, optuna {optuna.__version__}, trials {args.trials}, "
        f"best of {args.repeat} runs, families {', '.join(SEARCH_FAMILIES)}"
    )
    print()
    print(f"{'sampler':8} {'cptopt trials/s':>16} {'plain trials/s':>15} {'ratio':>7}")
    samplers = ["tpe", "cmaes", "qmc"]
    try:
        import torch  # noqa: F401

        samplers.append("gp")
    except ModuleNotFoundError:
        pass
    for name in samplers:
        ours = max(cptopt_loop(law, name, args.trials, seed) for seed in range(args.repeat))
        plain = max(plain_loop(law, name, args.trials, seed) for seed in range(args.repeat))
        print(f"{name:8} {ours:16.0f} {plain:15.0f} {ours / plain:7.2f}")
    if "gp" not in samplers:
        print("gp       (skipped: PyTorch is not installed)")
    print()
    print(f"{'weights':9} {'recommend() s':>14} {'gap to dense':>13} {'study gap':>10}")
    for weights in WEIGHTS:
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = recommend(law, weights)
            times.append(time.perf_counter() - start)
        _, dense_value, _ = dense_optimum(law, weights)
        gap = (result.recommended.objective - dense_value) / abs(dense_value)
        print(
            f"{weights[0]:.1f},{weights[1]:.1f}   {min(times):14.2f} {gap:13.1e} "
            f"{result.search.study_gap:10.1e}"
        )
    command = [
        sys.executable,
        "-c",
        "from cptopt.cli import main; main()",
        "recommend",
        "--law",
        str(law_path),
        "--weights",
        "0.3,0.7",
    ]
    walls = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import cptopt.cli"], check=True)
    imports = time.perf_counter() - start
    print()
    print(
        f"CLI 'cptopt recommend --weights 0.3,0.7' wall time: best {min(walls):.2f} s, "
        f"median {float(np.median(walls)):.2f} s (of which 'import cptopt.cli' alone: "
        f"{imports:.2f} s); target < 3 s"
    )


if __name__ == "__main__":
    main()
