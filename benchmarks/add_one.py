"""One more pilot must not make the law worse: add each in-range run to the pilots, refit, rescore.

For each data folder and scenario of its ``protocol.json``: the law is fitted on the
scenario's pilots (``cptopt.fit``, default settings: ``--law auto``), then once more for
every candidate run added to them. The candidates are every run of a pilot length that is
not a pilot and not an extrapolation target and starts from a pilot's checkpoint with a
peak LR inside the pilots' range (on the bundled folders: the scenario's pilot-length
targets and decision-grid runs). Each fit is scored as ``benchmarks/accuracy.py`` scores
it, on the same targets: the scenario's targets minus the added run.

- per loss, the final mean error: mean over those targets of ``|pred / obs - 1|`` at the
  final step, before (pilots only) and after (pilots + the added run);
- the worse-loss final mean error: the larger of the two losses' (what issue 26 judges);
- the increase, after - before; the worst increase over the additions is the headline;
- the decision: the largest regret over the weight pairs on the decision grid (a fraction
  of the real best), before and after;
- seed noise: for a candidate whose seed twin is also a candidate, both additions scored
  on the same targets (the scenario's minus both): how much the same quantity moves with
  the seed alone.

    python benchmarks/add_one.py                                   # every bundled folder
    python benchmarks/add_one.py --data DIR --scenario unannealed --format json

JSON: ``{"worst_increase": fraction, "adds": {run: {"before": fraction, "after": fraction}}}``
(worse-loss final mean errors), with the detail per domain and scenario under ``domains``.
With several folders or scenarios, ``adds`` keys are ``folder/scenario/run``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from accuracy import (
    LOSSES,
    bundled_domains,
    decision_scores,
    read_manifest,
    read_run,
    score_run,
    write_pilot_manifest,
)

import cptopt

#: Manifest columns that make two runs the same configuration (seed replicates).
CONFIG_KEYS = ("start_checkpoint", "peak_lr", "replay_ratio", "schedule", "total_steps")


class Scenario:
    """One folder's scenario: its runs, pilots, targets, candidates and fits."""

    def __init__(self, data: Path, name: str) -> None:
        self.data, self.name = data, name
        protocol = json.loads((data / "protocol.json").read_text())
        self.spec = protocol["scenarios"][name]
        self.weights = [tuple(w) for w in protocol["weights"]]
        self.manifest = read_manifest(data)
        self.runs = {rid: read_run(data, row) for rid, row in self.manifest.items()}
        self.pilots = list(self.spec["pilots"])
        self.targets = [t for t in self.spec["targets"] if t in self.manifest]
        self.fit_seconds: list[float] = []

    def candidates(self) -> list[str]:
        """Runs that could have been one more pilot (see the module docstring)."""
        rows = [self.manifest[p] for p in self.pilots]
        lengths = {int(r["total_steps"]) for r in rows}
        checkpoints = {r["start_checkpoint"] for r in rows}
        lrs = [float(r["peak_lr"]) for r in rows]
        excluded = set(self.pilots) | set(self.spec.get("extrapolation_targets", []))
        return [
            rid
            for rid, row in self.manifest.items()
            if rid not in excluded
            and int(row["total_steps"]) in lengths
            and row["start_checkpoint"] in checkpoints
            and min(lrs) <= float(row["peak_lr"]) <= max(lrs)
        ]

    def fit(self, pilots: list[str]) -> cptopt.FittedLaw:
        with tempfile.TemporaryDirectory() as folder:
            path = write_pilot_manifest(self.data, self.manifest, pilots, Path(folder))
            started = time.perf_counter()
            law = cptopt.fit(path)
            self.fit_seconds.append(time.perf_counter() - started)
        return law

    def score(self, law: cptopt.FittedLaw) -> dict:
        """Each target's signed final error per loss, and the decision's worst regret."""
        finals = {}
        for rid in self.targets:
            errors = score_run(law, self.runs[rid], self.manifest[rid])[0]
            finals[rid] = {loss: errors[loss]["final"] for loss in LOSSES}
        decision = decision_scores(
            law, self.spec["decision_grid"], self.manifest, self.runs, self.weights
        )
        regrets = [row.get("regret_rel", 1.0) for row in decision]
        return {
            "finals": finals,
            "regret": float(max(regrets)),
            "picks": [row.get("predicted_best") for row in decision],
            "forms": law.forms_description,
        }

    def twin(self, rid: str, pool: list[str]) -> str | None:
        """Another run of ``pool`` with ``rid``'s configuration (a seed replicate)."""

        def config(run: str) -> tuple:
            return tuple(self.manifest[run][k] for k in CONFIG_KEYS)

        return next(
            (other for other in pool if other != rid and config(other) == config(rid)), None
        )


def final_means(scored: dict, targets: list[str]) -> dict[str, float]:
    """Mean |final error| per loss over ``targets``, and the worse loss's (``worse``)."""
    out = {
        loss: float(np.mean([abs(scored["finals"][t][loss]) for t in targets])) for loss in LOSSES
    }
    out["worse"] = max(out[loss] for loss in LOSSES)
    return out


def run_scenario(data: Path, name: str) -> dict:
    """Before/after of every candidate addition, and the seed noise (see module docstring)."""
    scenario = Scenario(data, name)
    base = scenario.score(scenario.fit(scenario.pilots))
    candidates = scenario.candidates()
    after = {rid: scenario.score(scenario.fit([*scenario.pilots, rid])) for rid in candidates}
    adds = {}
    for rid in candidates:
        kept = [t for t in scenario.targets if t != rid]
        before_means, after_means = final_means(base, kept), final_means(after[rid], kept)
        adds[rid] = {
            "before": before_means["worse"],
            "after": after_means["worse"],
            "increase": after_means["worse"] - before_means["worse"],
            "per_loss": {
                loss: {"before": before_means[loss], "after": after_means[loss]} for loss in LOSSES
            },
            "regret_before": base["regret"],
            "regret_after": after[rid]["regret"],
            "forms_after": after[rid]["forms"],
            "n_targets": len(kept),
        }
    seed_noise = []
    for rid in candidates:
        other = scenario.twin(rid, candidates)
        if other is None or other < rid:
            continue
        kept = [t for t in scenario.targets if t not in (rid, other)]
        pair = {r: final_means(after[r], kept) for r in (rid, other)}
        seed_noise.append(
            {
                "runs": [rid, other],
                "worse": [pair[rid]["worse"], pair[other]["worse"]],
                "difference": abs(pair[rid]["worse"] - pair[other]["worse"]),
                "per_loss_difference": {
                    loss: abs(pair[rid][loss] - pair[other][loss]) for loss in LOSSES
                },
                "regret": [after[rid]["regret"], after[other]["regret"]],
            }
        )
    return {
        "data": str(data),
        "scenario": name,
        "forms_before": base["forms"],
        "worst_increase": max((a["increase"] for a in adds.values()), default=0.0),
        "adds": adds,
        "seed_noise": seed_noise,
        "fits": len(scenario.fit_seconds),
        "fit_seconds": float(sum(scenario.fit_seconds)),
    }


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def points(value: float) -> str:
    return f"{100 * value:+.2f}"


def print_table(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    for result in results:
        title = (
            f"{Path(result['data']).name}/{result['scenario']}: final mean error, pilots -> "
            f"pilots + one (forms before: {result['forms_before']})"
        )
        table = Table(title=title, title_justify="left")
        for column in ("added run", "general", "domain", "worse loss", "increase (points)"):
            table.add_column(column, justify="left" if column == "added run" else "right")
        table.add_column("regret", justify="right")
        table.add_column("forms after", justify="left")
        for rid, add in result["adds"].items():
            cells = [
                f"{pct(add['per_loss'][loss]['before'])} -> {pct(add['per_loss'][loss]['after'])}"
                for loss in LOSSES
            ]
            table.add_row(
                rid,
                *cells,
                f"{pct(add['before'])} -> {pct(add['after'])}",
                points(add["increase"]),
                f"{pct(add['regret_before'])} -> {pct(add['regret_after'])}",
                add["forms_after"],
            )
        console.print(table)
        noise = "; ".join(
            f"{' vs '.join(n['runs'])}: {pct(n['worse'][0])} vs {pct(n['worse'][1])} "
            f"(difference {100 * n['difference']:.2f} points)"
            for n in result["seed_noise"]
        )
        console.print(
            f"worst increase {points(result['worst_increase'])} points; "
            f"seed noise: {noise or 'no seed twins among the candidates'}; "
            f"{result['fits']} fits in {result['fit_seconds']:.0f} s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        action="append",
        help="folder in the cpt-code layout; repeat for several (default: every bundled one)",
    )
    parser.add_argument(
        "--scenario", action="append", help="scenario(s) of protocol.json (default: all)"
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    folders = [Path(d).resolve() for d in args.data] if args.data else bundled_domains()
    results = []
    for data in folders:
        protocol = json.loads((data / "protocol.json").read_text())
        for name in args.scenario or list(protocol["scenarios"]):
            if name in protocol["scenarios"]:
                results.append(run_scenario(data, name))
    if not results:
        print("error: no such scenario in the data folders given", file=sys.stderr)
        return 2
    if args.format == "json":
        single = len(results) == 1
        adds = {
            (rid if single else f"{Path(r['data']).name}/{r['scenario']}/{rid}"): {
                "before": add["before"],
                "after": add["after"],
            }
            for r in results
            for rid, add in r["adds"].items()
        }
        payload = {
            "worst_increase": max(r["worst_increase"] for r in results),
            "adds": adds,
            "domains": results,
        }
        json.dump(payload, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
