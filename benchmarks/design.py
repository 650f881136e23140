"""The whole workflow as a user runs it: design the first pilots, fit, next-pilot, score.

For each data folder (default: the bundled ``cpt-code`` and ``cpt-cyr``), scenario
``unannealed`` of its ``protocol.json``: the **pool** is every run of the pilots' length in
the folder that starts from the scenario's checkpoint(s). Five pilots are chosen from it by

- ``cptopt``: ``cptopt.design_pilots`` (default settings; the bundled priors without the
  domain's own, fitted to its protocol pilots (``--own-prior`` keeps it); the space is the
  decision grid's peak-LR and replay ranges, its steps and WSD shape; the candidates are
  the pool's runs inside that space, the weights the protocol's);
- ``protocol``: the protocol's fixed five;
- ``random``: five drawn uniformly from the pool, the mean of every figure over
  ``--draws`` draws (seeded);
- ``d_optimal``: ``design_pilots(criterion="d_optimal")``, the Bayesian D-optimal design on
  the same prior (information only: no reach rule, no decision);
- ``cptopt+2``: ``cptopt``'s five, then two rounds of ``cptopt.next_pilot`` choosing from
  the pool's runs left inside the space (options = the decision grid), one path per weight
  pair; the figures are the mean (errors, coverage) or the worst (worst error, regret) over
  the paths.

Each design is fitted with ``cptopt.fit`` (default settings) and scored on **every other
run** from the scenario's checkpoint(s) (targets and extrapolation targets, all lengths):
``final_mean``: mean |relative error| of the final loss, the worse of the two losses;
``final_worst``: the largest over the runs and both losses; ``regret_max``: the largest
regret over the weight pairs on the decision grid (``benchmarks/accuracy.py``'s
``decision_scores``, a fraction of the real best); ``coverage``: the share of final losses
(both losses) inside the 90 % interval; ``coverage_by_region``: the same per region of
the pilot set's hull (``benchmarks/accuracy.py``'s regions: inside the hull, LR outside,
replay outside, length beyond), ``{"coverage": share or None, "targets": runs}``, None
("too few (n)" in the tables) below 10 target runs. Refits are cached by the pilot set's
content hash and cptopt's source (``--cache DIR`` keeps them across runs; a code change
refits).

    python benchmarks/design.py                          # both bundled domains, rich tables
    python benchmarks/design.py --data DIR --format json
    python benchmarks/design.py --make-priors cptopt/design/priors   # the bundled priors
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from accuracy import (
    REGIONS,
    decision_scores,
    pilot_hull,
    read_manifest,
    read_run,
    regions_of,
    score_run,
    write_pilot_manifest,
)
from accuracy import (
    region_cell as accuracy_region_cell,
)
from next_pilot import source_digest

import cptopt
from cptopt.design.prior import DEFAULT_PRIORS
from cptopt.search import Candidate, SearchSpace

ROOT = Path(__file__).resolve().parent.parent
DATA = [ROOT / "examples" / "data" / "cpt-code", ROOT / "examples" / "data" / "cpt-cyr"]
DESIGNS = ("cptopt", "protocol", "random", "d_optimal", "cptopt+2")
LOSSES = ("general", "domain")
N_PILOTS = 5
#: A region with fewer target runs than this (per pilot set) prints "too few (n)".
MIN_REGION_TARGETS = 10


class Domain:
    """One data folder: the pool, the scenario, refits cached by pilot-set content."""

    def __init__(self, data: Path, scenario: str, cache: Path, reach: bool = False) -> None:
        self.data = data.resolve()
        protocol = json.loads((self.data / "protocol.json").read_text())
        self.spec = protocol["scenarios"][scenario]
        self.weights = [tuple(w) for w in protocol["weights"]]
        self.manifest = read_manifest(self.data)
        self.runs = {rid: read_run(self.data, row) for rid, row in self.manifest.items()}
        self.protocol = list(self.spec["pilots"])
        checkpoints = {self.manifest[p]["start_checkpoint"] for p in self.protocol}
        self.length = int(self.manifest[self.protocol[0]]["total_steps"])
        self.scope = [
            r for r, row in self.manifest.items() if row["start_checkpoint"] in checkpoints
        ]
        self.pool = [r for r in self.scope if int(self.manifest[r]["total_steps"]) == self.length]
        self.grid = self.spec["decision_grid"]
        space = self.space()
        assert space.peak_lr is not None and space.replay_ratio is not None
        low, high = space.peak_lr
        self.in_lr = {r for r in self.scope if low <= float(self.manifest[r]["peak_lr"]) <= high}
        # --reach: the pool's peak-LR and replay ranges (3x included) are the reach
        self.reach = (
            (
                tuple(f(float(self.manifest[r]["peak_lr"]) for r in self.pool) for f in (min, max)),
                tuple(
                    f(float(self.manifest[r]["replay_ratio"]) for r in self.pool)
                    for f in (min, max)
                ),
            )
            if reach
            else None
        )
        (low, high), (r_low, r_high) = self.reach or (space.peak_lr, space.replay_ratio)
        self.inside = [
            r
            for r in self.pool
            if low <= float(self.manifest[r]["peak_lr"]) <= high
            and r_low <= float(self.manifest[r]["replay_ratio"]) <= r_high
        ]
        self.cache = cache
        self.source = source_digest()  # a cached refit is reused only by the code that made it
        self.fits, self.fit_seconds = 0, 0.0
        self._laws: dict[frozenset, tuple] = {}
        self._scores: dict[frozenset, dict] = {}

    def candidate(self, rid: str) -> Candidate:
        row = self.manifest[rid]
        return Candidate(
            name=rid,
            schedule=cptopt.Schedule(family="custom", lr=tuple(self.runs[rid]["lr"].tolist())),
            replay_ratio=float(row["replay_ratio"]),
            checkpoint=row["start_checkpoint"],
        )

    def space(self) -> SearchSpace:
        """The decision grid's space: its peak-LR and replay ranges, steps and WSD shape."""
        rows = [self.manifest[r] for r in self.grid]
        peaks = [float(r["peak_lr"]) for r in rows]
        replays = [float(r["replay_ratio"]) for r in rows]
        steps = int(rows[0]["total_steps"])
        decay = 1 - int(rows[0]["decay_start_step"]) / steps
        warmup = int(rows[0]["warmup_steps"]) / steps
        return SearchSpace(
            peak_lr=(min(peaks), max(peaks)),
            replay_ratio=(min(replays), max(replays)),
            steps=(steps, steps),
            families=["wsd"],
            warmup_fraction=(warmup, warmup),
            decay_fraction=(decay, decay),
        )

    def law(self, names: frozenset) -> tuple:
        """The law fitted to ``names`` (cached on disk by the logs' content), its pilots."""
        if names not in self._laws:
            digest = hashlib.sha256()
            for rid in sorted(names):
                digest.update(rid.encode() + (self.data / self.manifest[rid]["csv"]).read_bytes())
            digest.update(self.source.encode())
            folder = self.cache / digest.hexdigest()[:16]
            folder.mkdir(parents=True, exist_ok=True)
            manifest_path = write_pilot_manifest(self.data, self.manifest, sorted(names), folder)
            law_path = folder / "law.json"
            if not law_path.is_file():
                started = time.perf_counter()
                cptopt.fit(manifest_path).save(law_path)
                self.fit_seconds += time.perf_counter() - started
                self.fits += 1
            self._laws[names] = (cptopt.load_law(law_path), cptopt.load_manifest(manifest_path))
        return self._laws[names]

    def score(self, names: frozenset) -> dict:
        """The four figures of one pilot set, and the regret per weight pair."""
        if names not in self._scores:
            law, _ = self.law(names)
            targets = [r for r in self.scope if r not in names]
            errors = [score_run(law, self.runs[r], self.manifest[r])[0] for r in targets]
            finals = np.array([[abs(e[loss]["final"]) for loss in LOSSES] for e in errors])
            inside = np.array([[e[loss]["inside_90"] for loss in LOSSES] for e in errors])
            in_lr = np.array([r in self.in_lr for r in targets])
            rows = decision_scores(law, self.grid, self.manifest, self.runs, self.weights)
            hull = pilot_hull(self.manifest, sorted(names))
            regions = [regions_of(self.manifest[r], hull) for r in targets]
            regrets = [row.get("regret_rel", 1.0) for row in rows]
            self._scores[names] = {
                "final_mean": float(finals.mean(axis=0).max()),
                "final_worst": float(finals.max()),
                "regret_max": float(max(regrets)),
                "coverage": float(inside.mean()),
                "regrets": regrets,
                "n_targets": len(targets),
                # the runs inside the space's peak-LR range only (no 3x runs), all lengths
                "in_range": {
                    "final_mean": float(finals[in_lr].mean(axis=0).max()),
                    "final_worst": float(finals[in_lr].max()),
                    "coverage": float(inside[in_lr].mean()),
                },
                # per region of the pilots' hull: final losses inside the 90 % interval,
                # final losses, target runs (summed over pilot sets by region_coverage)
                "regions": {
                    region: {
                        "inside": int(inside[np.array([region in r for r in regions])].sum()),
                        "losses": 2 * sum(region in r for r in regions),
                        "targets": sum(region in r for r in regions),
                    }
                    for region in REGIONS
                },
            }
        return self._scores[names]


# -- designs -----------------------------------------------------------------------------


def priors_for(domain: Domain, own: bool) -> list[str] | None:
    """The bundled priors, without the domain's own (fitted to its protocol pilots: the
    design would know the domain) unless ``own``."""
    if own or domain.data.name not in DEFAULT_PRIORS:
        return None
    return [name for name in DEFAULT_PRIORS if name != domain.data.name]


def designed(domain: Domain, criterion: str, own: bool) -> tuple[list[str], float]:
    started = time.perf_counter()
    result = cptopt.design_pilots(
        domain.space(),
        pilot_steps=domain.length,
        n_pilots=N_PILOTS,
        weights=domain.weights,
        candidate_pilots=[domain.candidate(r) for r in domain.pool],  # those inside the space
        criterion=criterion,
        prior=priors_for(domain, own),
        # the reach is cptopt's (the feature scored); d_optimal stays the baseline
        reach_peak_lr=domain.reach[0] if domain.reach and criterion == "decision" else None,
        reach_replay=domain.reach[1] if domain.reach and criterion == "decision" else None,
    )
    return [p.name for p in result.pilots], time.perf_counter() - started


def plus_two(domain: Domain, start: list[str]) -> tuple[dict, list, dict, dict]:
    """Two rounds of next-pilot from ``start``, a path per weight pair."""
    paths, path_scores = [], []
    for w_index, weights in enumerate(domain.weights):
        names = list(start)
        for _ in range(2):
            law, pilots = domain.law(frozenset(names))
            answer = cptopt.next_pilot(
                law,
                weights,
                pilots=pilots,
                candidate_pilots=[domain.candidate(r) for r in domain.inside if r not in names],
                options=[domain.candidate(r) for r in domain.grid],
                top_k=1,
            )
            names.append(answer.best.name)
        score = domain.score(frozenset(names))
        path_scores.append({**score, "regret_here": score["regrets"][w_index]})
        paths.append(names[len(start) :])
    combined = {
        "final_mean": float(np.mean([f["final_mean"] for f in path_scores])),
        "final_worst": float(max(f["final_worst"] for f in path_scores)),
        "regret_max": float(max(f["regret_here"] for f in path_scores)),
        "coverage": float(np.mean([f["coverage"] for f in path_scores])),
    }
    in_range = {
        "final_mean": float(np.mean([f["in_range"]["final_mean"] for f in path_scores])),
        "final_worst": float(max(f["in_range"]["final_worst"] for f in path_scores)),
        "coverage": float(np.mean([f["in_range"]["coverage"] for f in path_scores])),
    }
    return combined, paths, in_range, region_coverage(path_scores)


def random_sets(domain: Domain, draws: int, seed: int) -> list[frozenset]:
    rng = np.random.default_rng(seed)
    return [
        frozenset(rng.choice(domain.pool, size=N_PILOTS, replace=False).tolist())
        for _ in range(draws)
    ]


def region_coverage(scores: list[dict]) -> dict:
    """Per region: the share of the final losses (both losses) inside the 90 % interval,
    pooled over the pilot sets (one, or the random draws, or the next-pilot paths), and
    the target runs per set (their mean); coverage None below :data:`MIN_REGION_TARGETS`."""
    out = {}
    for region in REGIONS:
        cells = [s["regions"][region] for s in scores]
        losses = sum(c["losses"] for c in cells)
        targets = float(np.mean([c["targets"] for c in cells]))
        enough = targets >= MIN_REGION_TARGETS and losses > 0
        out[region] = {
            "coverage": sum(c["inside"] for c in cells) / losses if enough else None,
            "targets": int(targets) if targets.is_integer() else round(targets, 2),
        }
    return out


def figures(score: dict) -> dict:
    return {k: score[k] for k in ("final_mean", "final_worst", "regret_max", "coverage")}


def score_domain(data: Path, args: argparse.Namespace, cache: Path) -> dict:
    domain = Domain(data, args.scenario, cache, args.reach)
    started = time.perf_counter()
    cptopt_set, design_seconds = designed(domain, "decision", args.own_prior)
    d_optimal_set, _ = designed(domain, "d_optimal", args.own_prior)
    sets = {"cptopt": cptopt_set, "protocol": domain.protocol, "d_optimal": d_optimal_set}
    results = {name: figures(domain.score(frozenset(s))) for name, s in sets.items()}
    in_range = {name: domain.score(frozenset(s))["in_range"] for name, s in sets.items()}
    drawn = random_sets(domain, args.draws, args.seed)
    scored = [domain.score(s) for s in drawn]
    results["random"] = {
        k: float(np.mean([s[k] for s in scored]))
        for k in ("final_mean", "final_worst", "regret_max", "coverage")
    }
    in_range["random"] = {
        k: float(np.mean([s["in_range"][k] for s in scored])) for k in in_range["cptopt"]
    }
    by_region = {name: region_coverage([domain.score(frozenset(s))]) for name, s in sets.items()}
    by_region["random"] = region_coverage(scored)
    results["cptopt+2"], added, in_range["cptopt+2"], by_region["cptopt+2"] = plus_two(
        domain, cptopt_set
    )
    return {
        "data": str(domain.data),
        "scenario": args.scenario,
        "pool": domain.pool,
        "reach": domain.reach,
        "priors": priors_for(domain, args.own_prior) or list(DEFAULT_PRIORS),
        "pilot_steps": domain.length,
        "designs": {name: results[name] for name in DESIGNS},
        "designs_in_lr_range": {name: in_range[name] for name in DESIGNS},
        "coverage_by_region": {name: by_region[name] for name in DESIGNS},
        "pilots": {**sets, "cptopt+2 added": added, "random": [sorted(s) for s in drawn]},
        "n_targets": {name: domain.score(frozenset(s))["n_targets"] for name, s in sets.items()},
        "design_seconds": design_seconds,
        "refits": domain.fits,
        "refit_seconds": domain.fit_seconds,
        "seconds": time.perf_counter() - started,
    }


# -- the bundled priors ------------------------------------------------------------------


def make_priors(folder: Path) -> None:
    """The bundled priors: each bundled domain's law, fitted (default settings) to its
    protocol's pilots, with the inputs' paths made relative to the repository."""
    folder.mkdir(parents=True, exist_ok=True)
    for data in DATA:
        pilots = json.loads((data / "protocol.json").read_text())["scenarios"]["unannealed"]
        with tempfile.TemporaryDirectory() as temporary:
            manifest = write_pilot_manifest(
                data, read_manifest(data), pilots["pilots"], Path(temporary)
            )
            law = json.loads(cptopt.fit(manifest).model_dump_json())
        for item in law["inputs"]:
            item["source"] = Path(item["source"]).resolve().relative_to(ROOT).as_posix()
        (folder / f"{data.name}.json").write_text(json.dumps(law, separators=(",", ":")) + "\n")


# -- output ------------------------------------------------------------------------------


def rows(results: list[dict]) -> list[list[str]]:
    out = []
    for result in results:
        for name in DESIGNS:
            f, g = result["designs"][name], result["designs_in_lr_range"][name]
            out.append(
                [
                    Path(result["data"]).name,
                    name,
                    f"{100 * f['final_mean']:.2f}%",
                    f"{100 * f['final_worst']:.2f}%",
                    f"{100 * f['regret_max']:.2f}%",
                    f"{100 * f['coverage']:.0f}%",
                    f"{100 * g['final_mean']:.2f}% / {100 * g['final_worst']:.2f}%",
                ]
            )
    return out


def region_cell(cell: dict) -> str:
    """A region's coverage and its targets, rendered as accuracy.py renders its regions."""
    return accuracy_region_cell({"coverage_90": cell["coverage"], "n": cell["targets"]})


def region_rows(results: list[dict]) -> list[list[str]]:
    return [
        [
            Path(result["data"]).name,
            name,
            *(region_cell(result["coverage_by_region"][name][r]) for r in REGIONS),
        ]
        for result in results
        for name in DESIGNS
    ]


REGION_HEADER = ["domain", "design", *REGIONS]
REGION_NOTE = (
    "90 % coverage per region of the pilots' hull: share of the final losses (both losses) "
    "inside the interval (target runs); random and cptopt+2 pooled over their pilot sets, "
    f"targets per set; too few below {MIN_REGION_TARGETS} runs; * outside 80-95 %"
)


HEADER = [
    "domain", "design", "final mean", "final worst", "regret max", "90% coverage",
    "in LR range: mean / worst",
]  # fmt: skip


def footer(results: list[dict], draws: int) -> str:
    parts = [
        f"{Path(r['data']).name}: prior {', '.join(r['priors'])}, "
        f"pool {len(r['pool'])} runs of {r['pilot_steps']} steps, "
        f"cptopt design {r['design_seconds']:.1f} s, {r['refits']} refits "
        f"({r['refit_seconds']:.0f} s), total {r['seconds']:.0f} s"
        for r in results
    ]
    return f"errors: the worse of the two losses; random: mean over {draws} draws. " + "; ".join(
        parts
    )


def print_markdown(header: list[str], table: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    print()


def print_tables(results: list[dict], draws: int, markdown: bool) -> None:
    table = rows(results)
    if markdown:
        print_markdown(HEADER, table)
        print_markdown(REGION_HEADER, region_rows(results))
        print(REGION_NOTE)
        print()
        print(footer(results, draws))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    rich_table = Table(title="first pilots: five from the pool, then fit", title_justify="left")
    for column in HEADER:
        rich_table.add_column(column)
    for row in table:
        rich_table.add_row(*row)
    console.print(rich_table)
    region_table = Table(title="90 % coverage per region", title_justify="left")
    for column in REGION_HEADER:
        region_table.add_column(column)
    for row in region_rows(results):
        region_table.add_row(*row)
    console.print(region_table)
    console.print(REGION_NOTE)
    for result in results:
        picks = result["pilots"]
        console.print(f"{Path(result['data']).name}: cptopt chose {', '.join(picks['cptopt'])}")
        console.print(f"  then next-pilot per weight pair: {picks['cptopt+2 added']}")
        console.print(f"  d_optimal chose {', '.join(picks['d_optimal'])}")
    console.print(footer(results, draws))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, action="append", help="folder(s) in the cpt-code layout"
    )
    parser.add_argument("--scenario", default="unannealed")
    parser.add_argument("--draws", type=int, default=12, help="random: designs drawn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, help="keep the refits here (default: temporary)")
    parser.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    parser.add_argument(
        "--own-prior",
        action="store_true",
        help="keep a bundled domain's own prior (default: left out, the design must not know "
        "the domain it is scored on)",
    )
    parser.add_argument(
        "--reach",
        action="store_true",
        help="cptopt's design (and its next-pilot rounds) with the pool's peak-LR and replay "
        "ranges as the reach (design_pilots reach_peak_lr / reach_replay): pilots may go to 3x",
    )
    parser.add_argument("--make-priors", type=Path, help="write the bundled priors here, exit")
    args = parser.parse_args(argv)
    if args.make_priors is not None:
        make_priors(args.make_priors)
        return 0
    with tempfile.TemporaryDirectory() as temporary:
        cache = args.cache or Path(temporary)
        results = [score_domain(data, args, cache) for data in args.data or DATA]
    if args.format == "json":
        top = results[0] if len(results) == 1 else {"domains": results}
        json.dump(top, sys.stdout, indent=1)
        print()
    else:
        print_tables(results, args.draws, args.format == "markdown")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
