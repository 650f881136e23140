"""Speed and accuracy of ``cptopt recommend``, against baselines timed in the same run.

Prints, on this machine and data:

1. trials/s of cptopt's search loop (vectorised seed batch via ``add_trials`` + batched
   ask/evaluate/tell) per sampler, next to a plain ``study.optimize`` loop with the same
   sampler, space and number of trials whose objective evaluates one setting per call;
   the ratio cptopt / plain;
2. trials/s of the default search (TPE, a fresh study of ``--storage-trials`` trials) per
   storage: in memory (the baseline), SQLite, an Optuna journal file and, with
   ``--postgres URL`` (or ``$CPTOPT_TEST_POSTGRES_URL``), PostgreSQL; the ratio to in
   memory (the target is >= 0.5). Each storage's modules are imported before it is timed
   (a new study in a storage opened once before: the first open, which imports SQLAlchemy
   and for a new SQLite file creates Optuna's tables, is printed apart);
3. the wall time of the default ``recommend`` (library call, and the whole CLI command in a
   fresh process, imports included) and the relative gap of its answer to the dense
   optimum, for the weight pairs of ``protocol.json``.

Usage::

    python benchmarks/recommend_speed.py [--law cptopt-law.json] [--trials 128] [--repeat 3]
                                         [--storage-trials 200] [--postgres URL]

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
from cptopt.search.storage import open_storage  # noqa: E402
from cptopt.search.study import _run_study, _seed_study, make_sampler, run_study  # noqa: E402


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
    _run_study(study, space, evaluator, trials, settings.batch_size, None)
    return trials / (time.perf_counter() - start)


def storage_rates(law, trials: int, repeat: int, postgres: str | None) -> list[tuple]:
    """(storage, best trials/s of a new study, seconds to open it the first time) per storage.

    Each storage is opened once before the studies are timed: the first open pays the
    imports (SQLAlchemy and Optuna's RDB models) and, for a new SQLite file, Optuna's
    tables (one commit per table); both are printed apart, not counted in trials/s.
    """
    import uuid

    space, evaluator = _space_and_evaluator(law)
    folder = Path(tempfile.mkdtemp())
    urls = {
        "memory": None,
        "sqlite": f"sqlite:///{folder}/studies.db",
        "journal": f"journal:{folder}/studies.log",
    }
    if postgres:
        urls["postgres"] = postgres
    rows = []
    for label, url in urls.items():
        first_open = 0.0
        if url is not None:
            start = time.perf_counter()
            open_storage(url)
            first_open = time.perf_counter() - start
        rates = []
        for _ in range(repeat):
            name = f"bench-{uuid.uuid4().hex[:8]}"
            settings = SearchSettings(trials=trials, storage=url, study_name=name)
            start = time.perf_counter()
            outcome = run_study(url, space, evaluator, settings, {"bench": name}, top_k=5)
            rates.append(outcome.complete / (time.perf_counter() - start))
            if label == "postgres":
                optuna.delete_study(study_name=name, storage=open_storage(url))
        rows.append((label, max(rates), first_open))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--law", type=Path, default=None)
    parser.add_argument("--trials", type=int, default=SearchSettings().trials)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--storage-trials", type=int, default=200)
    parser.add_argument(
        "--postgres", default=os.environ.get("CPTOPT_TEST_POSTGRES_URL"), help="PostgreSQL URL"
    )
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
    print(
        f"default search ({args.storage_trials} trials, tpe, a fresh study), best of "
        f"{args.repeat}: trials/s per storage, against in memory timed in this run"
    )
    print(f"{'storage':9} {'trials/s':>9} {'/ memory':>9} {'first open s':>13}")
    rates = storage_rates(law, args.storage_trials, args.repeat, args.postgres)
    memory = rates[0][1]
    for label, rate, imports in rates:
        shown = f"{imports:13.2f}" if label != "memory" else f"{'-':>13}"
        print(f"{label:9} {rate:9.0f} {rate / memory:9.2f} {shown}")
    if not args.postgres:
        print("postgres  (skipped: no --postgres URL)")
    print("target: every storage >= 0.50 of in memory")
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
