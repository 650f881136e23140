"""The averaged law's members' disagreement in the intervals, measured (issue 21, item 2).

For every bundled domain (or ``--data DIR``) and scenario of its ``protocol.json``, the law
is fitted to the pilots (``form="auto"``: each set's law an average of forms) and scored:

1. ``regions``: per region of the settings (as ``benchmarks/accuracy.py`` places the
   targets and extrapolation targets), the coverage of the 90 % interval of the final loss
   and its mean width ((upper - lower) / prediction), with the between-member term and
   without it. The interval without it is the same interval with ``between`` taken out of
   its variance (the variances add: :mod:`cptopt.prediction`), so both come from one fit.
2. ``nested``: where the term goes, judged on the pilots alone. For each set and each pilot
   left out, each of its points' |log error| under the refit without it, the calibrated
   spread's parts there (eval noise and jackknife spread) and the members' disagreement
   under that refit; the scale is then calibrated on the other pilots only (as
   :func:`cptopt.fitting.assemble.interval_scale` does: each pilot weighted equally, the
   90 % quantile over z) and the left-out pilot's points are scored: without the term,
   with it unscaled (what cptopt does), and inside a scale recalibrated with it.
3. ``forms`` (``--forms``): the final-loss error of every single form (each with and
   without an LR power) on the LR-outside targets: whether any form disagrees with the
   average where the intervals miss.

Uses cptopt's internals (the calibration hook of item 2); run on demand, not in CI.

    python benchmarks/interval_members.py [--data DIR] [--forms] [--format json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

import cptopt
import cptopt.fitting.assemble as assemble
from cptopt.fitting.crossval import SetResult, cv_folds
from cptopt.law.averaged import AveragedLaw
from cptopt.law.uncertainty import between_member_variance, jackknife_variance, z_value
from cptopt.prediction import member_variance

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402  (the sibling benchmark: data layout, regions)

Z = z_value(0.9)
SINGLE_FORMS = ("paper", "exp", "share", "mix", "odds", "relax")


def fit_scenario(data: Path, manifest: dict, spec: dict, **settings):
    with tempfile.TemporaryDirectory() as folder:
        path = accuracy.write_pilot_manifest(data, manifest, spec["pilots"], Path(folder))
        return cptopt.fit(path, **settings)


def final_parts(law, run: dict, row: dict) -> dict[str, tuple[float, float, float, float]]:
    """Per loss: (prediction, real final loss, interval variance, between-member variance)
    at the run's last step."""
    prediction = accuracy.predict_run(law, run, row)
    schedule = cptopt.Schedule(family="custom", lr=tuple(run["lr"].tolist()))
    planned = law.scenario.planned(
        schedule, float(row["replay_ratio"]), checkpoint=row["start_checkpoint"]
    )
    areas = law.scenario.inputs(planned, np.array([0, planned.steps]), law.needs)
    out = {}
    for loss in accuracy.LOSSES:
        forecast = getattr(prediction, loss)
        fit = law.set_fit(loss)
        between = float(np.atleast_1d(member_variance(law.form_for(loss), fit.values, areas))[-1])
        variance = (np.log(forecast.final_upper / forecast.final) / Z) ** 2
        out[loss] = (forecast.final, float(run["curves"][loss][1][-1]), variance, between)
    return out


def region_scores(rows: list[dict]) -> dict:
    out: dict = {}
    for region in accuracy.REGIONS:
        out[region] = {}
        for loss in accuracy.LOSSES:
            mine = [r for r in rows if region in r["regions"] and r["loss"] == loss]
            cell: dict = {"n": len(mine)}
            for name, key in (("with", "variance"), ("without", "variance_without")):
                halves = [Z * np.sqrt(r[key]) for r in mine]
                inside = [
                    abs(np.log(r["real"] / r["pred"])) <= h
                    for r, h in zip(mine, halves, strict=True)
                ]
                enough = len(mine) >= accuracy.MIN_REGION_RUNS
                cell[name] = {
                    "coverage_90": float(np.mean(inside)) if enough else None,
                    "mean_width": float(np.mean([2 * np.sinh(h) for h in halves]))
                    if mine
                    else None,
                }
            out[region][loss] = cell
    return out


class Recorder:
    """Wraps :func:`cptopt.fitting.assemble.interval_scale` to keep, per set fitted, each
    left-out pilot's points' |log error|, calibrated-spread variance parts and the members'
    disagreement under the refit without it."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict]] = []
        self.original = assemble.interval_scale

    def __enter__(self) -> Recorder:
        def hooked(result: SetResult, noise: float) -> float | None:
            self.records.append(
                (result.law.validation_set, result.law.name, self.parts(result, noise))
            )
            return self.original(result, noise)

        assemble.interval_scale = hooked
        return self

    def __exit__(self, *exc: object) -> None:
        assemble.interval_scale = self.original

    @staticmethod
    def parts(result: SetResult, noise: float) -> dict:
        if not result.held_out or len(result.replicas) < 2:
            return {}
        data, replicas, law = result.data, np.array(result.replicas), result.law
        run_ids = sorted({int(i) for i in data.run_index if i >= 0})
        out = {}
        for index, fold in enumerate(cv_folds(run_ids)):
            for run in fold:
                if run not in result.held_out:
                    continue
                points = data.areas.take((data.run_index == run) & (data.step > 0))
                logs = np.log(np.maximum(law.evaluate(replicas, points), 1e-12))
                within = noise**2 + jackknife_variance(logs)
                between = np.zeros_like(within)
                if isinstance(law, AveragedLaw):
                    between = between_member_variance(
                        *law.member_predictions(replicas[index], points)
                    )
                out[run] = (np.abs(np.log1p(result.held_out[run])), within, between)
        return out


def calibrated(parts: dict, runs: list[int], with_between: bool) -> float:
    ratios, weights = [], []
    for run in runs:
        errors, within, between = parts[run]
        spread = within + between if with_between else within
        ratios.append(errors / np.sqrt(spread + 1e-12))
        weights.append(np.full(errors.size, 1.0 / errors.size))
    quantile = np.quantile(
        np.concatenate(ratios), 0.9, weights=np.concatenate(weights), method="inverted_cdf"
    )
    return float(quantile / Z)


def nested_scores(parts: dict) -> dict:
    """Each pilot's points scored with a scale calibrated on the other pilots."""
    runs = sorted(parts)
    out: dict = {"without": [], "unscaled": [], "recalibrated": []}
    for left in runs:
        others = [run for run in runs if run != left]
        errors, within, between = parts[left]
        plain, joint = calibrated(parts, others, False), calibrated(parts, others, True)
        variances = {
            "without": plain**2 * within,
            "unscaled": plain**2 * within + between,
            "recalibrated": joint**2 * (within + between),
        }
        for name, variance in variances.items():
            half = Z * np.sqrt(variance)
            out[name].append((float(np.mean(errors <= half)), float(np.mean(2 * np.sinh(half)))))
    return {
        name: {
            "coverage_90": float(np.mean([c for c, _ in scores])),
            "mean_width": float(np.mean([w for _, w in scores])),
            "worst_pilot": float(np.min([c for c, _ in scores])),
        }
        for name, scores in out.items()
    }


def form_errors(data: Path, manifest: dict, spec: dict, runs: dict, targets: list[str]) -> dict:
    out = {}
    for form in SINGLE_FORMS:
        for lr_power in (False, True):
            law = fit_scenario(data, manifest, spec, form=form, lr_power=lr_power, annealing="mpl")
            errors = {loss: [] for loss in accuracy.LOSSES}
            for rid in targets:
                for loss, (pred, real, _, _) in final_parts(law, runs[rid], manifest[rid]).items():
                    errors[loss].append(pred / real - 1)
            cv = {loss: law.set_fit(loss).cv_error for loss in accuracy.LOSSES}
            out[form + ("^q" if lr_power else "")] = {"cv_error": cv, "final_error": errors}
    return out


def score_scenario(data: Path, name: str, spec: dict, manifest: dict, runs: dict, forms: bool):
    with Recorder() as recorder:
        law = fit_scenario(data, manifest, spec, form="auto")
    chosen = {loss: law.set_fit(loss).form for loss in accuracy.LOSSES}
    nested = {}
    for validation_set, form, parts in recorder.records:
        if parts and form == chosen[validation_set]:  # the final fit's set, not a candidate's
            nested[validation_set] = nested_scores(parts)
    hull = accuracy.pilot_hull(manifest, spec["pilots"])
    rows = []
    targets = spec["targets"] + spec.get("extrapolation_targets", [])
    for rid in targets:
        for loss, (pred, real, variance, between) in final_parts(
            law, runs[rid], manifest[rid]
        ).items():
            rows.append(
                {
                    "run": rid,
                    "loss": loss,
                    "regions": accuracy.regions_of(manifest[rid], hull),
                    "pred": pred,
                    "real": real,
                    "variance": variance,
                    "variance_without": max(variance - between, 0.0),
                    "between_sd": float(np.sqrt(between)),
                }
            )
    result = {
        "scenario": f"{data.name}/{name}",
        "forms": chosen,
        "regions": region_scores(rows),
        "nested": nested,
        "runs": rows,
    }
    if forms:
        outside = [
            rid for rid in targets if "LR outside" in accuracy.regions_of(manifest[rid], hull)
        ]
        result["single_forms_lr_outside"] = form_errors(data, manifest, spec, runs, outside)
    return result


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_text(results: list[dict]) -> None:
    for result in results:
        print(
            f"== {result['scenario']} ({result['forms']['general']}, {result['forms']['domain']})"
        )
        for region, cells in result["regions"].items():
            for loss, cell in cells.items():
                w, wo = cell["with"], cell["without"]
                print(
                    f"  {region:15s} {loss:7s} n={cell['n']:2d}  coverage "
                    f"{pct(wo['coverage_90'])} -> {pct(w['coverage_90'])}  mean width "
                    f"{pct(wo['mean_width'])} -> {pct(w['mean_width'])}"
                )
        for validation_set, scores in result["nested"].items():
            line = ", ".join(
                f"{name} {pct(s['coverage_90'])} (worst pilot {pct(s['worst_pilot'])}, width "
                f"{pct(s['mean_width'])})"
                for name, s in scores.items()
            )
            print(f"  nested LOPO {validation_set}: {line}")
        for form, scores in result.get("single_forms_lr_outside", {}).items():
            errors = {
                loss: np.round(100 * np.array(e), 1).tolist()
                for loss, e in scores["final_error"].items()
            }
            cv = pct(scores["cv_error"]["domain"])
            print(f"  {form:8s} cv {cv} domain; LR-outside final errors (pred/real - 1) {errors}")
    pooled = {
        name: [s[name]["coverage_90"] for r in results for s in r["nested"].values()]
        for name in ("without", "unscaled", "recalibrated")
    }
    print(
        "nested LOPO, mean over sets: "
        + ", ".join(
            f"{k} {pct(float(np.mean(v)))} (worst set {pct(min(v))})" for k, v in pooled.items()
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", action="append", help="folder(s); default every bundled one")
    parser.add_argument("--forms", action="store_true", help="also fit every single form")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    folders = [Path(d).resolve() for d in args.data] if args.data else accuracy.bundled_domains()
    results = []
    for data in folders:
        manifest = accuracy.read_manifest(data)
        runs = {rid: accuracy.read_run(data, row) for rid, row in manifest.items()}
        protocol = json.loads((data / "protocol.json").read_text())
        for name, spec in protocol["scenarios"].items():
            results.append(score_scenario(data, name, spec, manifest, runs, args.forms))
    if args.format == "json":
        json.dump(results, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_text(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
