"""Speed of ``cptopt.fit`` against a plain scipy baseline, measured in the same run.

Fits the same law (same form, annealing memory, data and Huber objective on log residuals)
two ways, for each memory (S2 with lambda 0.995, and the multi-power memory):
- cptopt: ``LawFitter`` (variable-projection screening, TRF with the analytic Jacobian);
- baseline: ``scipy.optimize.minimize(method="L-BFGS-B")`` with numerical gradients from
  the same number of random starts (uniform in the bounds; log-uniform for scale
  parameters), keeping the best, as App. C of the paper describes.
Both fit the general and the domain law without jackknife, then cptopt's complete default
fit (``--form auto``: variant selection by leave-one-pilot-out CV, jackknife; its work
spread over the usable cores) is timed too, in this process and as the ``cptopt fit``
command in a fresh one (imports included). Data: the unannealed scenario's 5 pilots, and
all 38 bundled runs. Prints seconds, the ratio cptopt / baseline and the Huber cost each
reached (lower is better), the targets of issue 25, the cores and the load. Each default
fit also gives its CPU seconds (this process and its workers): on a shared machine the wall
moves with the load, the CPU much less, so rounds compare by it. The command is timed as a
user's Python runs it, with the bytecode cache Python keeps by default (here in a temporary
folder, never beside the sources), and as this environment runs it: where
``PYTHONDONTWRITEBYTECODE`` is set and no cache sits beside the sources (a fresh clone
here), every process compiles cptopt's modules first.

cptopt's times are the best (named forms) or the median (default fit, command) of
``--repeat``; the baseline, deterministic and up to a minute long on 38 runs, is timed
once (``--baseline-repeat`` for more).

    python benchmarks/speed.py [--repeat 3] [--baseline-repeat 1] [--format json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scale import command_env  # the sibling benchmark, imported as a script
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

import cptopt
from cptopt.fitting import LawFitter
from cptopt.fitting.optimise import Problem
from cptopt.fitting.workers import default_jobs
from cptopt.law.forms import make_law
from cptopt.law.scenario import InputNeeds, scenario_of

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "data" / "cpt-code"
FORM, STARTS = "exp", 3
#: The law both fit: cptopt's defaults for a named form (frozen domain power law, only the
#: checkpoints' PT-phase points), so that both solve the same problem.
DOMAIN_FORWARD, PT_POINTS = "frozen", "checkpoint"
#: The memories compared: (label, LawFitter settings).
MEMORIES = (("S2 lambda 0.995", {"lam": 0.995}), ("multi-power", {"annealing": "mpl"}))


def all_runs_manifest(folder: Path) -> Path:
    with (DATA / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    lines = [
        "version: 1",
        "tokens_per_step: 1024",
        "pretrain:",
        f"  log: {json.dumps(str(DATA / 'pretrain.csv'))}",
        "  warmup_steps: 80",
        "  checkpoints: {unannealed: 3200, annealed: 4000}",
        "runs:",
    ]
    for row in rows:
        lines.append(
            f"  - {{log: {json.dumps(str(DATA / row['csv']))}, name: {row['run_id']}, "
            f"replay_ratio: {row['replay_ratio']}, checkpoint: {row['start_checkpoint']}}}"
        )
    path = folder / "all.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def baseline_fit(pilots, memory: dict, seed: int = 0) -> tuple[float, float]:
    """Plain multi-start L-BFGS-B with numerical gradients; returns (seconds, total cost)."""
    started = time.perf_counter()
    total = 0.0
    annealing = memory.get("annealing", "s2")
    for offset, validation_set in enumerate(("general", "domain")):
        law = make_law(
            FORM,
            validation_set,
            True,
            pilots.pretrain.known,
            annealing,
            domain_forward=DOMAIN_FORWARD,
        )
        data = scenario_of(pilots).fit_data(
            validation_set, InputNeeds(memory.get("lam"), history=law.needs_history), PT_POINTS
        )
        problem = Problem(law, data, 1e-3, level_scales=False)
        rng = np.random.default_rng([seed, offset])
        best = np.inf
        for _ in range(STARTS):
            x0 = rng.uniform(problem.lower, problem.upper)
            result = minimize(
                problem.cost,
                x0,
                method="L-BFGS-B",
                bounds=list(zip(problem.lower, problem.upper, strict=True)),
            )
            best = min(best, float(result.fun))
        total += best
    return time.perf_counter() - started, total


def cpu_seconds() -> float:
    """User + system seconds of this process and of its ended children (the fit's workers,
    which end with each fit)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cptopt_fit(pilots, **settings) -> tuple[float, float, object, float]:
    """(wall seconds, the two sets' Huber cost, the law, CPU seconds) of one fit. The CPU
    figure moves less with the machine's load than the wall: on a shared machine it is the
    one to compare between rounds."""
    started, cpu_started = time.perf_counter(), cpu_seconds()
    law = LawFitter(**settings).fit(pilots).law_
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_started
    return seconds, law.general.huber_cost + law.domain.huber_cost, law, cpu


def best_of(repeat: int, function, *args, **kwargs):
    results = [function(*args, **kwargs) for _ in range(repeat)]
    return min(results, key=lambda item: item[0])


def median_of(repeat: int, function, *args, **kwargs):
    results = sorted((function(*args, **kwargs) for _ in range(repeat)), key=lambda r: r[0])
    return results[len(results) // 2]


#: The interpreter's own start, the floor under every command's wall time.
PYTHON_START = "pass"


def command_wall(manifest: Path, repeat: int) -> dict[str, float]:
    """Median wall seconds, alternated in each repeat, of ``cptopt fit`` in a fresh process
    as a user's Python runs it (``command``: with the bytecode cache Python keeps by default,
    filled by one run first) and as this machine's environment runs it (``command_as_is``:
    with ``PYTHONDONTWRITEBYTECODE`` set and no cache beside the sources, as on a fresh
    clone here, every process compiles cptopt's modules: about 0.15 s), of ``import
    cptopt.cli`` and of :data:`PYTHON_START` (both as a user's)."""
    with tempfile.TemporaryDirectory() as folder:
        cached = command_env(Path(folder) / "pycache")
        as_is = command_env(None)
        fit = [sys.executable, "-c", "from cptopt.cli import main; main()", "fit", str(manifest)]
        fit += ["-o", str(Path(folder) / "law.json"), "--format", "json"]
        subprocess.run(fit, check=True, capture_output=True, env=cached)  # fills the cache
        commands = {
            "command": (fit, cached),
            "command_as_is": (fit, as_is),
            "import_cli": ([sys.executable, "-c", "import cptopt.cli"], cached),
            "python_start": ([sys.executable, "-c", PYTHON_START], cached),
        }
        walls: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(repeat):
            for name, (command, env) in commands.items():
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=env)
                walls[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) for name, seconds in walls.items()}


#: Issue 25's targets: (what, key of the measured seconds, seconds).
TARGETS = (
    ("default fit, 5 pilots, in-process", "fit_5", 0.5),
    ("cptopt fit, 5 pilots, wall (fresh process, bytecode cache)", "command_5", 1.0),
    ("default fit, all 38 runs, in-process", "fit_38", 1.5),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-repeat", type=int, default=1)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    rows, measured = [], {}
    with tempfile.TemporaryDirectory() as folder:
        unannealed = ROOT / "examples" / "pilots" / "unannealed.yaml"
        cases = {
            "unannealed pilots (5 runs)": (unannealed, "5"),
            "all runs (38)": (all_runs_manifest(Path(folder)), "38"),
        }
        for label, (manifest, key) in cases.items():
            pilots = cptopt.load_manifest(manifest)
            full_seconds, _, law, full_cpu = median_of(args.repeat, cptopt_fit, pilots)
            measured[f"fit_{key}"] = full_seconds
            measured[f"cpu_{key}"] = full_cpu
            for memory_label, memory in MEMORIES:
                with threadpool_limits(limits=1):
                    base_seconds, base_cost = best_of(
                        args.baseline_repeat, baseline_fit, pilots, memory
                    )
                ours_seconds, ours_cost, _, _ = best_of(
                    args.repeat,
                    cptopt_fit,
                    pilots,
                    form=FORM,
                    n_starts=STARTS,
                    jackknife=False,
                    domain_forward=DOMAIN_FORWARD,
                    pt_points=PT_POINTS,
                    **memory,
                )
                rows.append(
                    {
                        "case": label,
                        "memory": memory_label,
                        "baseline_s": base_seconds,
                        "cptopt_s": ours_seconds,
                        "ratio": ours_seconds / base_seconds,
                        "baseline_cost": base_cost,
                        "cptopt_cost": ours_cost,
                        "default_fit_s": full_seconds,
                        "default_fit_variant": (
                            f"{law.forms_description}, {law.annealing_description}"
                        ),
                    }
                )
        walls = command_wall(unannealed, args.repeat)
        measured["command_5"] = walls["command"]
        measured["command_5_as_is"] = walls["command_as_is"]
        measured["import_cli"] = walls["import_cli"]
        measured["python_start"] = walls["python_start"]
    meta = {
        "cores": os.cpu_count(),
        "workers": default_jobs(),
        "load": os.getloadavg()[0],
        "repeat": args.repeat,
        "baseline_repeat": args.baseline_repeat,
    }
    targets = [
        {
            "what": what,
            "seconds": measured[key],
            "target": limit,
            "met": measured[key] < limit,
            # the command's CPU is not measured (its workers are another process's children)
            "cpu_seconds": measured.get(f"cpu_{key[4:]}") if key.startswith("fit_") else None,
        }
        for what, key, limit in TARGETS
    ]
    if args.format == "json":
        payload = {
            **meta,
            "rows": rows,
            "targets": targets,
            "command_as_is_s": measured["command_5_as_is"],
            "import_cli_s": measured["import_cli"],
            "python_start_s": measured["python_start"],
        }
        json.dump(payload, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"fit time ({os.cpu_count()} cores, {meta['workers']} workers, load "
        f"{meta['load']:.1f}); law {FORM}, {STARTS} starts, both validation sets; cptopt best "
        f"of {args.repeat}, baseline of {args.baseline_repeat}, default fit median of "
        f"{args.repeat}",
        title_justify="left",
    )
    for column in (
        "case",
        "memory",
        "scipy L-BFGS-B",
        "cptopt",
        "ratio",
        "cost scipy",
        "cost cptopt",
        "default fit (auto, CV, jackknife)",
    ):
        table.add_column(column, justify="left" if column == "case" else "right")
    for row in rows:
        table.add_row(
            row["case"],
            row["memory"],
            f"{row['baseline_s']:.2f} s",
            f"{row['cptopt_s']:.2f} s",
            f"{row['ratio']:.2f}",
            f"{row['baseline_cost']:.5f}",
            f"{row['cptopt_cost']:.5f}",
            f"{row['default_fit_s']:.2f} s ({row['default_fit_variant']})",
        )
    console = Console(width=150)
    console.print(table)
    for target in targets:
        verdict = (
            "met" if target["met"] else f"missed by {target['seconds'] - target['target']:.2f} s"
        )
        cpu = target["cpu_seconds"]
        cpu_note = "" if cpu is None else f"; CPU {cpu:.2f} s, workers included"
        console.print(
            f"{target['what']}: {target['seconds']:.2f} s (target < {target['target']:g} s: "
            f"{verdict}{cpu_note})",
            highlight=False,
        )
    console.print(
        f"(fresh processes, with Python's bytecode cache as a user's Python keeps it: "
        f"'import cptopt.cli' {measured['import_cli']:.2f} s, of which the interpreter's own "
        f"start {measured['python_start']:.2f} s; the fit loads nothing heavier, SciPy "
        f"included; the command without a bytecode cache, as this environment runs it"
        f"{' (PYTHONDONTWRITEBYTECODE set)' if os.environ.get('PYTHONDONTWRITEBYTECODE') else ''}"
        f": {measured['command_5_as_is']:.2f} s)",
        highlight=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
