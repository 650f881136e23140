"""Sequential piloting on real curves: does ``cptopt next-pilot`` pick pilots that fix the decision?

For each data folder (default: the bundled ``cpt-code`` and ``cpt-cyr``), scenario
``unannealed`` of its ``protocol.json``: start from the scenario's pilots; the candidates
are the scenario's non-extrapolation target runs found in the folder. Each round a strategy
picks one candidate, its real curve joins the pilots, the law is refitted (``cptopt.fit``,
default settings) and the decision is scored as ``benchmarks/accuracy.py`` scores it: the
decision grid ranked with ``rank_candidates`` for every weight pair, regret = real objective
of the predicted best minus the real best, as a fraction of the real best. Strategies:

- ``cptopt``: the best candidate of ``cptopt.next_pilot`` (pilots given, options = the
  decision grid, candidates = the remaining runs), one path per weight pair;
- ``random``: the mean over all choices. After round r the pilots are the protocol's plus r
  candidates; the mean is over every r-subset of the candidates when there are at most
  ``--subsets`` of them, else over ``--subsets`` r-subsets drawn uniformly (seeded). The
  order of the picks does not matter (the law is refitted on the set), so this is the mean
  over random sequences;
- ``max_variance``: the candidate whose predicted log-losses vary most over the law's
  jackknife refits (uncertainty sampling), one path for all weight pairs;
- ``recommendation``: run the current recommendation (common practice): the grid option
  ranked best, or the best-ranked one still among the candidates.

Refits are cached by pilot set (``--cache DIR`` keeps them on disk across runs). With
``--format json`` and one ``--data`` folder the top level is that folder's result:
``strategies`` maps each strategy to its mean regret over the weight pairs (a fraction)
after rounds 0..3, next to the final-loss errors, the picks and the stopping rule's
verdicts; with several folders ``domains`` lists them and ``strategies`` is their mean.

    python benchmarks/next_pilot.py                      # both bundled domains, rich tables
    python benchmarks/next_pilot.py --data DIR --format json
    python benchmarks/next_pilot.py --format markdown    # the README's tables
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from accuracy import (
    decision_scores,
    read_manifest,
    read_run,
    score_run,
    summarise,
    write_pilot_manifest,
)

import cptopt
from cptopt.search import Candidate, rank_candidates

ROOT = Path(__file__).resolve().parent.parent
DATA = [ROOT / "examples" / "data" / "cpt-code", ROOT / "examples" / "data" / "cpt-cyr"]
STRATEGIES = ("cptopt", "random", "max_variance", "recommendation")
#: cptopt's picks, no more once its stopping rule says the decision is settled.
STOPPING = "cptopt, stopping when settled"
LOSSES = ("general", "domain")


class Domain:
    """One data folder: its runs, the scenario, and refits cached by pilot set."""

    def __init__(self, data: Path, scenario: str, cache: Path) -> None:
        self.data = data.resolve()
        protocol = json.loads((self.data / "protocol.json").read_text())
        self.spec = protocol["scenarios"][scenario]
        self.manifest = read_manifest(self.data)
        self.runs = {rid: read_run(self.data, row) for rid, row in self.manifest.items()}
        self.weights = [tuple(w) for w in protocol["weights"]]
        self.pilots = list(self.spec["pilots"])
        self.pool = [t for t in self.spec["targets"] if t in self.manifest and t not in self.pilots]
        self.grid = self.spec["decision_grid"]
        self.cache = cache
        self.fits = 0
        self.fit_seconds = 0.0
        self._laws: dict[frozenset, tuple] = {}
        self._scores: dict[frozenset, tuple] = {}

    def candidate(self, rid: str) -> Candidate:
        return Candidate(
            name=rid,
            schedule=cptopt.Schedule(family="custom", lr=tuple(self.runs[rid]["lr"].tolist())),
            replay_ratio=float(self.manifest[rid]["replay_ratio"]),
            checkpoint=self.manifest[rid]["start_checkpoint"],
        )

    def law(self, added: tuple[str, ...]) -> tuple[cptopt.FittedLaw, cptopt.PilotSet]:
        """The law fitted to the protocol's pilots plus ``added``, and its pilot set."""
        key = frozenset(added)
        if key not in self._laws:
            names = self.pilots + sorted(added)
            digest = hashlib.sha256(f"{self.data}|{','.join(names)}".encode()).hexdigest()[:16]
            folder = self.cache / digest
            folder.mkdir(parents=True, exist_ok=True)
            manifest_path = write_pilot_manifest(self.data, self.manifest, names, folder)
            law_path = folder / "law.json"
            if not law_path.is_file():
                started = time.perf_counter()
                cptopt.fit(manifest_path).save(law_path)
                self.fit_seconds += time.perf_counter() - started
                self.fits += 1
            self._laws[key] = (cptopt.load_law(law_path), cptopt.load_manifest(manifest_path))
        return self._laws[key]

    def scores(self, added: tuple[str, ...]) -> tuple[list[float], dict[str, float]]:
        """Regret (fraction) per weight pair, and mean |final error| over the targets left."""
        key = frozenset(added)
        if key not in self._scores:
            law, _ = self.law(added)
            rows = decision_scores(law, self.grid, self.manifest, self.runs, self.weights)
            regrets = [row.get("regret_rel", float("nan")) for row in rows]
            targets = [t for t in self.spec["targets"] if t in self.manifest and t not in key]
            errors = {t: score_run(law, self.runs[t], self.manifest[t])[0] for t in targets}
            summary = summarise(errors)
            self._scores[key] = (regrets, {k: summary[k]["final_mean"] for k in LOSSES})
        return self._scores[key]

    def remaining(self, added: tuple[str, ...]) -> list[str]:
        return [rid for rid in self.pool if rid not in added]


# -- strategies ----------------------------------------------------------------------


def ask_cptopt(
    domain: Domain, added: tuple[str, ...], weights: tuple[float, float]
) -> cptopt.NextPilot:
    law, pilots = domain.law(added)
    return cptopt.next_pilot(
        law,
        weights,
        pilots=pilots,
        candidate_pilots=[domain.candidate(r) for r in domain.remaining(added)],
        options=[domain.candidate(r) for r in domain.grid],
        top_k=None,
    )


def pick_max_variance(domain: Domain, added: tuple[str, ...]) -> str:
    result = ask_cptopt(domain, added, (0.5, 0.5))  # the predictive SD ignores the weights
    return max(result.candidate_pilots, key=lambda c: c.predictive_sd).name


def pick_recommendation(
    domain: Domain, added: tuple[str, ...], weights: tuple[float, float]
) -> str:
    law, _ = domain.law(added)
    ranking = rank_candidates(law, [domain.candidate(r) for r in domain.grid], weights)
    left = domain.remaining(added)
    for item in ranking.candidates:
        if item.name in left:
            return item.name
    return left[0]  # every grid option is a pilot already: the first candidate left


def run_paths(domain: Domain, rounds: int) -> dict:
    """Regret per round of the weight-dependent strategies, and cptopt's stop verdicts."""
    names = ("cptopt", "max_variance", "recommendation", STOPPING)
    regret = {name: np.zeros(rounds + 1) for name in names}
    per_weight: dict[str, list] = {name: [] for name in regret}
    errors = {name: np.zeros((rounds + 1, 2)) for name in regret}
    picks: dict[str, list] = {name: [] for name in regret}
    verdicts = []
    shared: tuple[str, ...] = ()
    for _ in range(rounds):
        shared += (pick_max_variance(domain, shared),)
    picks["max_variance"] = [list(shared)]
    n = len(domain.weights)
    for w_index, weights in enumerate(domain.weights):
        paths = {"cptopt": (), "recommendation": (), "max_variance": (), STOPPING: ()}
        stopped = False
        for name in per_weight:
            per_weight[name].append([])
        for r in range(rounds + 1):
            paths["max_variance"] = shared[:r]
            if not stopped:
                paths[STOPPING] = paths["cptopt"]
            for name, added in paths.items():
                regrets, final = domain.scores(added)
                regret[name][r] += regrets[w_index] / n
                per_weight[name][-1].append(regrets[w_index])
                errors[name][r] += np.array([final[k] for k in LOSSES]) / n
            if r == rounds:
                break
            answer = ask_cptopt(domain, paths["cptopt"], weights)
            verdicts.append(
                {
                    "weights": list(weights),
                    "round": r,
                    "settled": answer.settled,
                    "expected_regret": answer.expected_regret / answer.objective,
                    "p_best": answer.p_best,
                    "pick": answer.best.name if answer.best else None,
                    "reason": answer.reason,
                    "seconds": answer.seconds,
                }
            )
            stopped = stopped or answer.settled
            paths["cptopt"] += (answer.best.name,)
            paths["recommendation"] += (
                pick_recommendation(domain, paths["recommendation"], weights),
            )
        picks["cptopt"].append(list(paths["cptopt"]))
        picks[STOPPING].append(list(paths[STOPPING]))
        picks["recommendation"].append(list(paths["recommendation"]))
    return {
        "regret": regret,
        "per_weight": per_weight,
        "errors": errors,
        "picks": picks,
        "verdicts": verdicts,
    }


def run_random(domain: Domain, rounds: int, limit: int, seed: int) -> tuple[list, list, list]:
    """Mean regret over the weight pairs and r-subsets of the candidates, per round."""
    rng = np.random.default_rng(seed)
    regret, errors, counts = [], [], []
    for r in range(rounds + 1):
        subsets = list(itertools.combinations(domain.pool, r))
        if len(subsets) > limit:
            chosen = rng.choice(len(subsets), size=limit, replace=False)
            subsets = [subsets[i] for i in sorted(chosen)]
        scored = [domain.scores(s) for s in subsets]
        regret.append(float(np.mean([np.mean(s[0]) for s in scored])))
        errors.append([float(np.mean([s[1][k] for s in scored])) for k in LOSSES])
        counts.append(len(subsets))
    return regret, errors, counts


def time_cli(domain: Domain, repeats: int = 3) -> float:
    """Median wall time of ``cptopt next-pilot`` on the protocol's pilots (fresh process)."""
    law, _ = domain.law(())
    with tempfile.TemporaryDirectory() as folder:
        law_path = Path(folder) / "law.json"
        law.save(law_path)
        manifest_path = write_pilot_manifest(
            domain.data, domain.manifest, domain.pilots, Path(folder)
        )
        command = [
            sys.executable, "-c", "from cptopt.cli import main; main()", "next-pilot",
            "--law", str(law_path), "--pilots", str(manifest_path), "--weights", "0.3,0.7",
        ]  # fmt: skip
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def score_domain(data: Path, args: argparse.Namespace, cache: Path) -> dict:
    domain = Domain(data, args.scenario, cache)
    started = time.perf_counter()
    paths = run_paths(domain, args.rounds)
    random_regret, random_errors, subsets = run_random(domain, args.rounds, args.subsets, args.seed)
    strategies = {name: [float(v) for v in paths["regret"][name]] for name in paths["regret"]}
    strategies["random"] = random_regret
    errors = {name: paths["errors"][name].tolist() for name in paths["errors"]}
    errors["random"] = random_errors
    return {
        "data": str(domain.data),
        "scenario": args.scenario,
        "candidates": domain.pool,
        "strategies": {name: strategies[name] for name in STRATEGIES},
        "with_stopping_rule": strategies[STOPPING],
        "final_errors": {name: errors[name] for name in (*STRATEGIES, STOPPING)},
        "picks": paths["picks"],
        "regret_per_weight": paths["per_weight"],
        "stop_rule": paths["verdicts"],
        "random_subsets": subsets,
        "pilot_sets": len(domain._laws),
        "refits": domain.fits,
        "refit_seconds": domain.fit_seconds,
        "seconds": time.perf_counter() - started,
        "cli_seconds": time_cli(domain) if args.time_cli else None,
    }


# -- output --------------------------------------------------------------------------


def pct(value: float) -> str:
    return f"{100 * value:.3f}%"


def regret_rows(result: dict, rounds: int) -> list[list[str]]:
    name = Path(result["data"]).name
    rows = []
    for strategy in (*STRATEGIES, STOPPING):
        errors = result["final_errors"][strategy]
        regrets = result["strategies"].get(strategy, result["with_stopping_rule"])
        rows.append(
            [name, strategy]
            + [pct(v) for v in regrets]
            + [f"{100 * errors[-1][0]:.2f}% / {100 * errors[-1][1]:.2f}%"]
        )
    return rows


def stop_rows(result: dict) -> list[list[str]]:
    name = Path(result["data"]).name
    return [
        [
            name,
            ",".join(f"{w:g}" for w in v["weights"]),
            str(v["round"]),
            pct(v["expected_regret"]),
            f"{v['p_best']:.2f}",
            "yes" if v["settled"] else "no",
            v["pick"] or "-",
        ]
        for v in result["stop_rule"]
    ]


def headers(rounds: int) -> tuple[list[str], list[str]]:
    regret = ["domain", "strategy"] + [f"round {r}" for r in range(rounds + 1)]
    regret.append(f"final error round {rounds} (general / domain)")
    stop = ["domain", "weights", "round", "expected regret", "P(best)", "settled", "cptopt picks"]
    return regret, stop


def footer(results: list[dict]) -> str:
    parts = []
    for result in results:
        cli = result["cli_seconds"]
        parts.append(
            f"{Path(result['data']).name}: {result['pilot_sets']} pilot sets fitted "
            f"({result['refits']} not cached, {result['refit_seconds']:.0f} s), "
            f"random over {'/'.join(map(str, result['random_subsets']))} subsets per round, "
            f"total {result['seconds']:.0f} s"
            + (f", `cptopt next-pilot` {cli:.2f} s (median of 3, fresh process)" if cli else "")
        )
    return "regret: mean over the weight pairs, fraction of the real best. " + "; ".join(parts)


def print_tables(results: list[dict], rounds: int, markdown: bool) -> None:
    regret_head, stop_head = headers(rounds)
    tables = (
        ("mean regret over the weight pairs after each round", regret_head,
         [row for r in results for row in regret_rows(r, rounds)]),
        ("cptopt's stopping rule before each pick", stop_head,
         [row for r in results for row in stop_rows(r)]),
    )  # fmt: skip
    if markdown:
        for _, columns, rows in tables:
            print("| " + " | ".join(columns) + " |")
            print("|" + "|".join("---" for _ in columns) + "|")
            for row in rows:
                print("| " + " | ".join(row) + " |")
            print()
        print(footer(results))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    for title, columns, rows in tables:
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    console.print(footer(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, action="append", help="folder(s) in the cpt-code layout"
    )
    parser.add_argument("--scenario", default="unannealed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subsets", type=int, default=24, help="random: r-subsets per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, help="keep the refits here (default: temporary)")
    parser.add_argument("--no-time-cli", dest="time_cli", action="store_false")
    parser.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        cache = args.cache or Path(temporary)
        results = [score_domain(data, args, cache) for data in args.data or DATA]
    if args.format == "json":
        top = results[0] if len(results) == 1 else {"domains": results}
        if len(results) > 1:
            top["strategies"] = {
                name: [
                    float(np.mean(v))
                    for v in zip(*(r["strategies"][name] for r in results), strict=True)
                ]
                for name in STRATEGIES
            }
        json.dump(top, sys.stdout, indent=1)
        print()
    else:
        print_tables(results, args.rounds, args.format == "markdown")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
