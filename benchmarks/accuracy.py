"""Held-out accuracy of cptopt on folders of real CPT runs (run on demand, not in CI).

For each domain (folder) and each scenario of its ``protocol.json``: fit on the pilots
only, predict every
target run from its own per-step LR, and report per loss (general, domain)
- curve mean / worst: mean over targets, and max over targets, of a target curve's mean
  |relative error| (every evaluation point, step 0 excluded);
- final mean / worst: mean and max over targets of |relative error| of the final loss;
- extrapolation targets (outside the pilots' LR range) separately;
- decision: for each weight pair, regret (real objective of the predicted best minus the
  real best, also relative) and Kendall's tau between predicted and real rankings;
- interval coverage: share of real final losses inside the 90 % prediction interval,
  overall and per region of the settings (issue 21, item 2): ``inside the hull`` (peak LR
  and replay ratio inside the convex hull of the pilots' (log peak LR, replay) points, no
  longer than the longest pilot), ``LR outside`` (peak LR outside the pilots' range),
  ``replay outside`` (LR inside that range but (LR, replay) outside the pilots' hull),
  ``length beyond`` (more steps than the longest pilot); a target outside the hull is in
  every region that applies. Targets and extrapolation targets are pooled; a region with
  fewer than 3 runs says "too few" (JSON: ``coverage_by_region``, null coverage);
- the noise floor: seed-replicate differences found in the folder;
- with several domains or scenarios, a WORST row per law: the worst value of every figure
  over them (largest error and regret, smallest tau, coverage furthest from 80-95 %),
  the number a change is judged by.

Only cptopt's public API is used (``cptopt.fit``, ``cptopt.predict``, ``cptopt.Schedule``),
so the same script scores any folder in the layout of ``examples/data/cpt-code``
(``manifest.csv``, ``runs/``, ``pretrain.csv``, ``pretrain.json``, ``protocol.json``).

    python benchmarks/accuracy.py                       # every bundled domain, --law auto
    python benchmarks/accuracy.py --data DIR --law auto --law paper --format json
    python benchmarks/accuracy.py --format markdown     # the README's tables
    python benchmarks/accuracy.py --jitter 6            # + each WORST cell's last-bit noise

``--jitter K`` refits every scenario K more times with the pilots' logged losses multiplied
by ``1 + k * eps`` (k = 1, -1, 2, -2, ...) and prints the range of every WORST cell. Where
the law is not pinned down by the pilots (a flat valley in (L0, A, alpha) that only
extrapolation sees), the fit's end point there depends on the last bits, and so do the
extrapolated cells: a change whose effect on a cell stays inside that range is noise.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.spatial import Delaunay
from scipy.stats import kendalltau

import cptopt

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "examples" / "data" / "cpt-code"
LAW_SETTINGS = {
    "paper": {"form": "paper", "lam": 0.999},
    "auto": {"form": "auto"},
    "auto-tie": {"form": "auto", "tie": "auto"},
}
LOSSES = ("general", "domain")
#: Regions of the settings a target can be in, relative to the pilots (issue 21, item 2).
REGIONS = ("inside the hull", "LR outside", "replay outside", "length beyond")
#: A region with fewer target runs than this reports "too few" instead of a coverage.
MIN_REGION_RUNS = 3
#: The band the 90 % intervals' coverage should fall in.
COVERAGE_BAND = (0.80, 0.95)


def read_manifest(data: Path) -> dict[str, dict]:
    with (data / "manifest.csv").open(newline="") as handle:
        return {row["run_id"]: row for row in csv.DictReader(handle)}


def read_run(data: Path, row: dict) -> dict:
    """Per-step LR and the evaluation points of one run (read with the csv module)."""
    with (data / row["csv"]).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    lr = np.array([float(r["lr"]) for r in rows if int(r["step"]) >= 1])
    curves = {}
    for loss in LOSSES:
        points = [(int(r["step"]), float(r[f"loss_{loss}"])) for r in rows if r[f"loss_{loss}"]]
        curves[loss] = (np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    return {"lr": lr, "curves": curves}


def jittered_log(log: Path, folder: Path, ulps: int) -> Path:
    """A copy of a run's log with every logged loss times ``1 + ulps * eps``: the same
    curves to the last bit or two, as another machine's arithmetic might leave them."""
    with log.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    factor = 1.0 + ulps * float(np.finfo(float).eps)
    for row in rows:
        for loss in LOSSES:
            if row.get(f"loss_{loss}"):
                row[f"loss_{loss}"] = repr(float(row[f"loss_{loss}"]) * factor)
    path = folder / log.name
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_pilot_manifest(
    data: Path, manifest: dict, pilots: list[str], folder: Path, jitter: int = 0
) -> Path:
    """A cptopt pilot manifest for the given pilot runs, as a user would write it; with
    ``jitter``, the pilots' losses perturbed in their last bits (:func:`jittered_log`)."""
    pretrain = json.loads((data / "pretrain.json").read_text())
    checkpoints = {name: spec["pt_step"] for name, spec in pretrain["checkpoints"].items()}
    protocol = json.loads((data / "protocol.json").read_text())
    lines = [
        "version: 1",
        f"tokens_per_step: {int(pretrain.get('tokens_per_step', 0)) or 1}",
        "pretrain:",
        f"  log: {json.dumps(str(data / 'pretrain.csv'))}",
        f"  warmup_steps: {int(pretrain['warmup_steps'])}",
        f"  checkpoints: {json.dumps(checkpoints)}",
    ]
    if protocol.get("domain_train_tokens"):  # the corpus size, as a user would give it
        lines.append(f"domain_tokens: {int(protocol['domain_train_tokens'])}")
    lines.append("runs:")
    for run_id in pilots:
        row = manifest[run_id]
        log = data / row["csv"]
        if jitter:
            log = jittered_log(log, folder, jitter)
        lines.append(
            f"  - {{log: {json.dumps(str(log))}, name: {run_id}, "
            f"replay_ratio: {float(row['replay_ratio'])}, checkpoint: {row['start_checkpoint']}}}"
        )
    path = folder / "pilots.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def predict_run(law, run: dict, row: dict):
    schedule = cptopt.Schedule(family="custom", lr=tuple(run["lr"].tolist()))
    steps = sorted(set(run["curves"]["general"][0]) | set(run["curves"]["domain"][0]))
    return cptopt.predict(
        law, schedule, float(row["replay_ratio"]), checkpoint=row["start_checkpoint"], steps=steps
    )


def failed_errors() -> dict[str, dict[str, float]]:
    """A prediction cptopt refused (e.g. a non-positive loss) counts as 100 % error."""
    row = {"curve_mean": 1.0, "curve_max": 1.0, "final": 1.0, "inside_90": False, "failed": True}
    return {loss: dict(row) for loss in LOSSES}


def score_run(law, run: dict, row: dict) -> tuple[dict, bool | None]:
    """Errors of one run and whether it was flagged out of range (None if it failed)."""
    try:
        prediction = predict_run(law, run, row)
    except cptopt.CptoptError:
        return failed_errors(), None
    return curve_errors(prediction, run), not prediction.in_range


def curve_errors(prediction, run: dict) -> dict[str, dict[str, float]]:
    out = {}
    for loss in LOSSES:
        steps, observed = run["curves"][loss]
        forecast = getattr(prediction, loss)
        lookup = dict(zip(forecast.steps, forecast.mean, strict=True))
        keep = steps > 0
        predicted = np.array([lookup[int(s)] for s in steps[keep]])
        errors = predicted / observed[keep] - 1.0
        final_observed = observed[-1]
        out[loss] = {
            "curve_mean": float(np.abs(errors).mean()),
            "curve_max": float(np.abs(errors).max()),
            "final": float(forecast.final / final_observed - 1.0),
            "inside_90": bool(forecast.final_lower <= final_observed <= forecast.final_upper),
        }
    return out


def summarise(per_run: dict[str, dict]) -> dict[str, dict[str, float]]:
    summary = {}
    for loss in LOSSES:
        rows = [errors[loss] for errors in per_run.values()]
        if not rows:
            continue
        summary[loss] = {
            "curve_mean": float(np.mean([r["curve_mean"] for r in rows])),
            "curve_worst": float(np.max([r["curve_mean"] for r in rows])),
            "final_mean": float(np.mean([abs(r["final"]) for r in rows])),
            "final_worst": float(np.max([abs(r["final"]) for r in rows])),
            "coverage_90": float(np.mean([r["inside_90"] for r in rows])),
            "n": len(rows),
            "failed": int(sum(r.get("failed", False) for r in rows)),
        }
    return summary


def pilot_hull(manifest: dict, pilots: list[str]) -> dict:
    """What the pilots cover: their peak-LR range, longest run and (log10 LR, replay)
    points."""
    rows = [manifest[rid] for rid in pilots]
    lrs = np.array([float(r["peak_lr"]) for r in rows])
    replay = np.array([float(r["replay_ratio"]) for r in rows])
    return {
        "lr": (float(lrs.min()), float(lrs.max())),
        "steps": max(int(r["total_steps"]) for r in rows),
        "points": np.unique(np.column_stack([np.log10(lrs), replay]), axis=0),
    }


def _in_hull(points: np.ndarray, point: np.ndarray) -> bool:
    """Whether ``point`` is in the convex hull of ``points`` (boundary included)."""
    if len(points) >= 3 and np.linalg.matrix_rank(points[1:] - points[0]) == 2:
        return bool(Delaunay(points).find_simplex(point, tol=1e-9) >= 0)
    # Degenerate (a point or a segment): on the segment between the extremes.
    if len(points) == 1:
        return bool(np.allclose(points[0], point, atol=1e-9))
    a, b = points[np.argmin(points @ (points[-1] - points[0]))], points[-1]
    direction = b - a
    t = float(np.clip((point - a) @ direction / (direction @ direction), 0.0, 1.0))
    return bool(np.linalg.norm(a + t * direction - point) < 1e-9)


def regions_of(row: dict, hull: dict) -> list[str]:
    """The regions (:data:`REGIONS`) a run's settings are in, relative to the pilots."""
    lr, replay = float(row["peak_lr"]), float(row["replay_ratio"])
    out = []
    lr_low, lr_high = hull["lr"]
    lr_outside = not (lr_low * (1 - 1e-9) <= lr <= lr_high * (1 + 1e-9))
    if lr_outside:
        out.append("LR outside")
    elif not _in_hull(hull["points"], np.array([np.log10(lr), replay])):
        out.append("replay outside")
    if int(row["total_steps"]) > hull["steps"]:
        out.append("length beyond")
    return out or ["inside the hull"]


def coverage_by_region(per_run: dict[str, dict], regions: dict[str, list[str]]) -> dict:
    """Per region and loss: runs, and the share of final losses inside the 90 % interval
    (None when fewer than :data:`MIN_REGION_RUNS` runs)."""
    out = {}
    for region in REGIONS:
        members = [rid for rid in per_run if region in regions[rid]]
        out[region] = {}
        for loss in LOSSES:
            inside = [per_run[rid][loss]["inside_90"] for rid in members]
            enough = len(inside) >= MIN_REGION_RUNS
            out[region][loss] = {
                "n": len(inside),
                "coverage_90": float(np.mean(inside)) if enough else None,
                "too_few": not enough,
            }
    return out


def decision_scores(law, grid: list[str], manifest: dict, runs: dict, weights) -> list[dict]:
    """Rank the grid as ``cptopt recommend --candidates`` does, and score the ranking."""
    from cptopt.search import Candidate, rank_candidates

    candidates = [
        Candidate(
            name=rid,
            schedule=cptopt.Schedule(family="custom", lr=tuple(runs[rid]["lr"].tolist())),
            replay_ratio=float(manifest[rid]["replay_ratio"]),
            checkpoint=manifest[rid]["start_checkpoint"] if law.pretrain.known else None,
        )
        for rid in grid
    ]
    real = {rid: {loss: runs[rid]["curves"][loss][1][-1] for loss in LOSSES} for rid in grid}
    scores = []
    for w_general, w_domain in weights:
        try:
            ranking = rank_candidates(law, candidates, (w_general, w_domain))
        except cptopt.CptoptError as exc:
            scores.append({"weights": [w_general, w_domain], "error": str(exc)})
            continue
        by_name = {score.name: score for score in ranking.candidates}
        pred_obj = np.array([by_name[rid].assessment.objective for rid in grid])
        real_obj = np.array(
            [w_general * real[r]["general"] + w_domain * real[r]["domain"] for r in grid]
        )
        chosen = ranking.candidates[0].name
        best = grid[int(np.argmin(real_obj))]
        regret = float(real_obj[grid.index(chosen)] - real_obj.min())
        scores.append(
            {
                "weights": [w_general, w_domain],
                "predicted_best": chosen,
                "real_best": best,
                "regret": regret,
                "regret_rel": regret / float(real_obj.min()),
                "kendall_tau": float(kendalltau(pred_obj, real_obj).statistic),
                "p_best_of_real_best": by_name[best].probability_best,
            }
        )
    return scores


def noise_floor(manifest: dict, runs: dict) -> dict[str, dict[str, float]]:
    """Differences between seed replicates (same configuration, different seed)."""
    keys = ("start_checkpoint", "peak_lr", "replay_ratio", "schedule", "total_steps")
    groups: dict[tuple, list[str]] = {}
    for rid, row in manifest.items():
        groups.setdefault(tuple(row[k] for k in keys), []).append(rid)
    floor: dict[str, dict[str, list[float]]] = {loss: {"curve": [], "final": []} for loss in LOSSES}
    for members in groups.values():
        if len(members) < 2:
            continue
        first, second = runs[members[0]], runs[members[1]]
        for loss in LOSSES:
            steps_a, values_a = first["curves"][loss]
            steps_b, values_b = second["curves"][loss]
            common = np.intersect1d(steps_a[steps_a > 0], steps_b)
            a = values_a[np.isin(steps_a, common)]
            b = values_b[np.isin(steps_b, common)]
            floor[loss]["curve"].append(float(np.abs(a / b - 1).mean()))
            floor[loss]["final"].append(float(abs(values_a[-1] / values_b[-1] - 1)))
    return {
        loss: {kind: float(np.mean(v)) if v else float("nan") for kind, v in parts.items()}
        for loss, parts in floor.items()
    }


def score_scenario(
    data: Path, name: str, spec: dict, law_name: str, manifest, runs, weights, jitter: int = 0
):
    with tempfile.TemporaryDirectory() as folder:
        manifest_path = write_pilot_manifest(data, manifest, spec["pilots"], Path(folder), jitter)
        started = time.perf_counter()
        law = cptopt.fit(manifest_path, **LAW_SETTINGS[law_name])
        fit_seconds = time.perf_counter() - started
    targets = {rid: score_run(law, runs[rid], manifest[rid])[0] for rid in spec["targets"]}
    extrapolation = {}
    flagged = 0
    for rid in spec.get("extrapolation_targets", []):
        extrapolation[rid], out_of_range = score_run(law, runs[rid], manifest[rid])
        flagged += bool(out_of_range)
    hull = pilot_hull(manifest, spec["pilots"])
    pooled = {**targets, **extrapolation}
    regions = {rid: regions_of(manifest[rid], hull) for rid in pooled}
    return {
        "scenario": name,
        "law": law_name,
        "chosen": {
            "form": law.forms_description,
            "annealing": law.annealing,
            "lam": law.lam,
            "tied": law.tied,
        },
        "fit_seconds": fit_seconds,
        "cv_error": {"general": law.general.cv_error, "domain": law.domain.cv_error},
        "targets": summarise(targets),
        "extrapolation": summarise(extrapolation),
        "extrapolation_flagged": f"{flagged}/{len(extrapolation)}",
        "decision": decision_scores(law, spec["decision_grid"], manifest, runs, weights),
        "coverage_by_region": coverage_by_region(pooled, regions),
        "regions": regions,
        "per_target": targets,
    }


def _worst_coverage(values: list[float]) -> float:
    """The coverage furthest outside the 80-95 % band."""
    return max(values, key=lambda c: max(0.80 - c, c - 0.95, 0.0))


def _worst_summary(rows: list[dict]) -> dict:
    worst = {k: max(row[k] for row in rows) for k in rows[0] if k != "coverage_90"}
    worst["coverage_90"] = _worst_coverage([row["coverage_90"] for row in rows])
    return worst


def _worst_regions(rows: list[dict]) -> dict:
    """Per region and loss: the coverage furthest outside the band over the results that
    have a number, and the most runs any of them had there."""
    out = {}
    for region in REGIONS:
        out[region] = {}
        for loss in LOSSES:
            cells = [r["coverage_by_region"][region][loss] for r in rows]
            known = [c["coverage_90"] for c in cells if c["coverage_90"] is not None]
            out[region][loss] = {
                "n": max(c["n"] for c in cells),
                "coverage_90": _worst_coverage(known) if known else None,
                "too_few": not known,
            }
    return out


def worst_rows(results: list[dict]) -> list[dict]:
    """One summary result per law: the worst value of every figure over the domains and
    scenarios (largest error, regret and fit time; smallest tau; coverage furthest from
    80-95 %)."""
    out = []
    for law_name in dict.fromkeys(r["law"] for r in results):
        mine = [r for r in results if r["law"] == law_name]
        summaries = {}
        for part in ("targets", "extrapolation"):
            summaries[part] = {
                loss: _worst_summary([r[part][loss] for r in mine if loss in r[part]])
                for loss in LOSSES
                if any(loss in r[part] for r in mine)
            }
        decisions = []
        for weights in dict.fromkeys(tuple(d["weights"]) for r in mine for d in r["decision"]):
            rows = [
                d
                for r in mine
                for d in r["decision"]
                if tuple(d["weights"]) == weights and "error" not in d
            ]
            if rows:
                worst = max(rows, key=lambda d: d["regret_rel"])
                decisions.append(
                    {
                        **worst,
                        "predicted_best": "(worst regret)",
                        "real_best": "",
                        "kendall_tau": min(d["kendall_tau"] for d in rows),
                    }
                )
        out.append(
            {
                "scenario": "WORST",
                "law": law_name,
                "chosen": {"form": "-"},
                "fit_seconds": max(r["fit_seconds"] for r in mine),
                "targets": summaries["targets"],
                "extrapolation": summaries["extrapolation"],
                "extrapolation_flagged": "-",
                "decision": decisions,
                "coverage_by_region": _worst_regions(mine),
            }
        )
    return out


def _variant(chosen: dict) -> str:
    if chosen["form"] == "-":
        return "-"
    memory = "mpl" if chosen["annealing"] == "mpl" else f"λ={chosen['lam']:g}"
    if chosen.get("tied"):
        memory += " tied"
    return f"{chosen['form']} {memory}"


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


ERROR_COLUMNS = (
    "scenario",
    "law",
    "chosen",
    "loss",
    "curve mean",
    "curve worst",
    "final mean",
    "final worst",
    "90% cover",
    "extrap. final mean",
    "extrap. final worst",
)
REGION_COLUMNS = ("scenario", "law", "loss", *REGIONS)
DECISION_COLUMNS = ("scenario", "law", "weights", "predicted best", "real best", "regret", "tau")
#: Columns holding names (left-aligned); the others hold numbers.
REGION_TITLE = (
    "90% interval coverage of the final loss per region (runs; * outside 80-95%; targets and "
    "extrapolation targets pooled)"
)
TEXT_COLUMNS = {"scenario", "law", "chosen", "loss", "weights", "predicted best", "real best"}


def error_rows(results: list[dict]) -> list[list[str]]:
    """One row of :data:`ERROR_COLUMNS` per scenario, law and loss."""
    rows = []
    for result in results:
        for loss in LOSSES:
            t, e = result["targets"][loss], result["extrapolation"].get(loss)
            rows.append(
                [
                    result["scenario"],
                    result["law"],
                    _variant(result["chosen"]),
                    loss,
                    *(pct(t[key]) for key in ("curve_mean", "curve_worst", "final_mean")),
                    *(pct(t[key]) for key in ("final_worst", "coverage_90")),
                    pct(e["final_mean"]) if e else "-",
                    pct(e["final_worst"]) if e else "-",
                ]
            )
    return rows


def region_cell(cell: dict) -> str:
    """A region's coverage and its runs, "too few" below :data:`MIN_REGION_RUNS`."""
    if cell["coverage_90"] is None:
        return f"too few ({cell['n']})"
    low, high = COVERAGE_BAND
    mark = "" if low <= cell["coverage_90"] <= high else " *"
    return f"{100 * cell['coverage_90']:.0f}% ({cell['n']}){mark}"


def region_rows(results: list[dict]) -> list[list[str]]:
    """One row of :data:`REGION_COLUMNS` per scenario, law and loss."""
    return [
        [
            result["scenario"],
            result["law"],
            loss,
            *(region_cell(result["coverage_by_region"][region][loss]) for region in REGIONS),
        ]
        for result in results
        for loss in LOSSES
    ]


def decision_rows(results: list[dict]) -> list[list[str]]:
    """One row of :data:`DECISION_COLUMNS` per scenario, law and weight pair."""
    rows = []
    for result in results:
        for row in result["decision"]:
            head = [result["scenario"], result["law"], ",".join(f"{w:g}" for w in row["weights"])]
            if "error" in row:
                rows.append([*head, "prediction failed", "", "", ""])
                continue
            rows.append(
                [
                    *head,
                    row["predicted_best"],
                    row["real_best"],
                    f"{row['regret']:.4f} ({pct(row['regret_rel'])})",
                    f"{row['kendall_tau']:.3f}",
                ]
            )
    return rows


def footer(results: list[dict], floor: dict) -> str:
    return (
        "noise floor (seed replicate; the largest over the domains): "
        + "; ".join(
            f"{loss} curve {pct(floor[loss]['curve'])}, final {pct(floor[loss]['final'])}"
            for loss in LOSSES
        )
        + ". Fit time: "
        + ", ".join(f"{r['scenario']}/{r['law']} {r['fit_seconds']:.1f}s" for r in results)
        + ". Extrapolation targets flagged out of range: "
        + ", ".join(f"{r['scenario']}/{r['law']} {r['extrapolation_flagged']}" for r in results)
        + "."
    )


def print_table(results: list[dict], floor: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    for title, columns, rows in (
        ("held-out error (fit on pilots only)", ERROR_COLUMNS, error_rows(results)),
        ("decision grid: regret and Kendall tau", DECISION_COLUMNS, decision_rows(results)),
        (REGION_TITLE, REGION_COLUMNS, region_rows(results)),
    ):
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, justify="left" if column in TEXT_COLUMNS else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    console.print(footer(results, floor))


def print_markdown(results: list[dict], floor: dict) -> None:
    """The same numbers as :func:`print_table`, as Markdown tables (for the README)."""
    for columns, rows in (
        (ERROR_COLUMNS, error_rows(results)),
        (DECISION_COLUMNS, decision_rows(results)),
        (REGION_COLUMNS, region_rows(results)),
    ):
        print("| " + " | ".join(columns) + " |")
        print("|" + "|".join("---" if c in TEXT_COLUMNS else "---:" for c in columns) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print()
    print(footer(results, floor))


def bundled_domains() -> list[Path]:
    """Every CPT folder under examples/data: a protocol.json and a manifest.csv (the
    pre-training curves in the same folder are scored by ``benchmarks/pretrain.py``)."""
    return sorted(
        path.parent
        for path in (ROOT / "examples" / "data").glob("*/protocol.json")
        if (path.parent / "manifest.csv").is_file()
    )


def score_domain(
    data: Path, laws: list[str], scenarios: list[str] | None, label: bool, jitter: int = 0
):
    """Results of every law and scenario on one folder, and its noise floor."""
    protocol = json.loads((data / "protocol.json").read_text())
    manifest = read_manifest(data)
    runs = {rid: read_run(data, row) for rid, row in manifest.items()}
    weights = [tuple(w) for w in protocol["weights"]]
    results = []
    for law_name in laws:
        for name in scenarios or list(protocol["scenarios"]):
            if name not in protocol["scenarios"]:
                continue
            result = score_scenario(
                data, name, protocol["scenarios"][name], law_name, manifest, runs, weights, jitter
            )
            if label:
                result["scenario"] = f"{data.name}/{name}"
            results.append(result)
    return results, noise_floor(manifest, runs)


def score_all(folders: list[Path], laws: list[str], scenarios: list[str] | None, jitter: int = 0):
    """Every folder's results (with the WORST rows when there are several) and noise floors."""
    results, floors = [], {}
    for data in folders:
        found, floors[data.name] = score_domain(
            data, laws, scenarios, label=len(folders) > 1, jitter=jitter
        )
        results += found
    if len(results) > 1:
        results += worst_rows(results)
    return results, floors


def jitter_sequence(count: int) -> list[int]:
    """The last-bit perturbations of ``--jitter``: 1, -1, 2, -2, ... ``count`` of them."""
    return [(k // 2 + 1) * (1 if k % 2 == 0 else -1) for k in range(count)]


def worst_cells(results: list[dict]) -> dict[str, float]:
    """The WORST rows' errors and regrets by name, e.g. ``auto extrapolation domain
    final_mean``."""
    cells = {}
    for row in (r for r in results if r["scenario"] == "WORST"):
        for part in ("targets", "extrapolation"):
            for loss, summary in row[part].items():
                for key in ("curve_mean", "curve_worst", "final_mean", "final_worst"):
                    cells[f"{row['law']} {part} {loss} {key}"] = summary[key]
        for decision in row["decision"]:
            weights = ",".join(f"{w:g}" for w in decision["weights"])
            cells[f"{row['law']} regret {weights}"] = decision["regret_rel"]
    return cells


def jitter_spread(results: list[dict], jittered: list[list[dict]], ulps: list[int]) -> dict:
    """Each WORST cell unperturbed and its range over the jittered refits ({} without)."""
    if not jittered:
        return {}
    base, others = worst_cells(results), [worst_cells(r) for r in jittered]
    return {
        "ulps": ulps,
        "cells": {
            name: {
                "value": value,
                "min": min([value, *(o[name] for o in others)]),
                "max": max([value, *(o[name] for o in others)]),
                "jittered": [o[name] for o in others],
            }
            for name, value in base.items()
        },
    }


def print_jitter(spread: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"WORST cells under last-bit jitter of the pilots' losses (k = {spread['ulps']})",
        title_justify="left",
    )
    for column, justify in (("cell", "left"), ("unperturbed", "right"), ("range", "right")):
        table.add_column(column, justify=justify)
    for name, cell in spread["cells"].items():
        table.add_row(name, pct(cell["value"]), f"{pct(cell['min'])} - {pct(cell['max'])}")
    Console(width=160).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        action="append",
        help="folder in the cpt-code layout; repeat for several domains, 'all' (default): "
        "every bundled folder under examples/data",
    )
    parser.add_argument(
        "--law",
        action="append",
        choices=sorted(LAW_SETTINGS),
        help="law(s) to score (default: auto)",
    )
    parser.add_argument(
        "--scenario", action="append", help="scenario(s) of protocol.json (default: all)"
    )
    parser.add_argument(
        "--jitter",
        type=int,
        default=0,
        metavar="K",
        help="also refit every scenario K more times with the pilots' losses perturbed in "
        "their last bits (1 + k*eps, k = 1, -1, 2, -2, ...) and print the range of each WORST "
        "cell: the noise floor a change's effect on that cell must clear",
    )
    parser.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    args = parser.parse_args(argv)
    requested = args.data or ["all"]
    folders = bundled_domains() if "all" in requested else [Path(d).resolve() for d in requested]
    results, floors = score_all(folders, args.law or ["auto"], args.scenario)
    jittered = [
        score_all(folders, args.law or ["auto"], args.scenario, ulps)[0]
        for ulps in jitter_sequence(args.jitter)
    ]
    floor = {
        loss: {
            kind: float(np.nanmax([f[loss][kind] for f in floors.values()]))
            for kind in ("curve", "final")
        }
        for loss in LOSSES
    }
    spread = jitter_spread(results, jittered, jitter_sequence(args.jitter))
    if args.format == "json":
        payload = {"data": [str(f) for f in folders], "results": results, "noise_floor": floor}
        if spread:
            payload["jitter"] = spread
        json.dump(payload, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif args.format == "markdown":
        print_markdown(results, floor)
    else:
        print_table(results, floor)
        if spread:
            print_jitter(spread)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
