"""Logs at user scale: time and peak memory of cptopt against a plain read of the same files.

Generates its inputs in a temporary folder (synthetic curves: a plausible LR schedule and
smooth loss curves with noise; they are only there to be read and fitted, so these numbers
say nothing about accuracy, only about speed and memory):

- ``pilot-2m.csv``: one pilot log of 2,000,001 rows (steps 0..2,000,000; LR every step,
  the two validation losses every 1,000 steps), about 45 MB;
- ``pretrain-1m.csv``: a 1,000,000-step cosine pre-training history (LR and training loss
  every step, validation losses every 1,000 steps), about 30 MB, and 5 pilots of 20,000
  steps from its last checkpoint (LR every step, losses every ``--eval-every`` steps,
  default 100) with a manifest.

Cases, each measured in a new process (time: wall clock; memory: peak RSS of the largest
single process, ``fit``'s two forked workers included, read with
``getrusage(RUSAGE_CHILDREN)``):

- ``read 2M-row pilot``: ``cptopt.pilots.logs.read_log`` (time of the call);
- ``inspect 2M-row pilot``: the ``cptopt inspect`` command (the whole process);
- ``read 1M-step PT``: ``read_log`` of the PT history (time of the call);
- ``fit 1M-step PT + 5 pilots``: the ``cptopt fit`` command with the default law (whole
  process).

Each is set against a plain read of the same file(s) in the same run: Python's ``csv``
module, every cell to a float (empty cells NaN), nothing validated; for the command cases
the plain read runs in a new process too, import of numpy included. When pyarrow is
installed, ``pyarrow.csv.read_csv`` (C, multi-threaded) is shown for reference.

cptopt runs as a user's Python runs it, with the bytecode cache Python keeps by default
(here in the inputs' folder, filled by a first run of each command, never beside the
sources); the commands are also timed as this environment runs them (``as is``): where
``PYTHONDONTWRITEBYTECODE`` is set and no cache sits beside the sources (a fresh clone
here), every process compiles cptopt's modules first (about 0.1-0.15 s). With
``--repeat N`` each case's runs (cptopt, the plain read, cptopt as is) take turns, N
rounds, and the median of each is shown: the load of a shared machine drifts, and in turn
a drift moves every column alike.

Peak memory is ``ru_maxrss`` (Linux: KiB, shown in MB). The fit's time is mostly the law's
own work (``cptopt.fitting``), reading its logs takes about a second of it.

    python benchmarks/scale.py [--format json] [--cases read-2m,inspect-2m,read-pt,fit]
                               [--eval-every 100] [--keep DIR] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PILOT_ROWS = 2_000_001
PT_STEPS = 1_000_000
PILOT_STEPS = 20_000
#: Issue 25's target for the fit case: the whole ``cptopt fit`` command, its largest process.
FIT_CASE, FIT_SECONDS, FIT_PEAK_MB = "fit 1M-step PT + 5 pilots", 5.0, 500
#: (peak LR, replay ratio, schedule family) of the five 20k-step pilots.
PILOTS = (
    (3e-4, 0.25, "constant"),
    (3e-4, 0.25, "cosine"),
    (1e-4, 0.25, "wsd"),
    (3e-4, 0.0, "wsd"),
    (3e-4, 0.5, "wsd"),
)


# --------------------------------------------------------------------------- inputs


def _cosine(steps: int, peak: float, warmup: int, floor: float) -> np.ndarray:
    """LR at steps 0..steps: linear warmup, cosine decay to ``floor``."""
    s = np.arange(steps + 1, dtype=float)
    progress = np.clip((s - warmup) / max(steps - warmup, 1), 0.0, 1.0)
    decay = floor + (peak - floor) * 0.5 * (1 + np.cos(np.pi * progress))
    return np.where(s < warmup, peak * s / max(warmup, 1), decay)


def _schedule(family: str, steps: int, peak: float) -> np.ndarray:
    warmup = steps // 100
    if family == "cosine":
        return _cosine(steps, peak, warmup, 0.0)
    s = np.arange(steps + 1, dtype=float)
    lr = np.where(s < warmup, peak * s / warmup, peak)
    if family == "wsd":
        start = int(steps * 0.8)
        lr = np.where(s > start, peak * (steps - s) / (steps - start), lr)
    return lr


def _losses(lr: np.ndarray, base: float, drop: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth decreasing curve of the LR area with an annealing bonus and 0.2 % noise."""
    area = np.cumsum(lr) / lr.max()
    anneal = np.maximum.accumulate(lr) - lr
    loss = base + drop * (1 + area / 50) ** -0.4 - 0.3 * anneal / lr.max() * drop * 0.2
    return loss * np.exp(rng.normal(0, 0.002, loss.size))


def _write_csv(path: Path, columns: dict[str, tuple[np.ndarray, str]], every: dict[str, int]):
    """A sparse CSV: ``columns`` name -> (values per step, printf format); a column in
    ``every`` is written at multiples of that interval only (empty cells elsewhere)."""
    steps = next(iter(columns.values()))[0].size
    parts = [np.arange(steps).astype(str)]
    for name, (values, fmt) in columns.items():
        cells = np.char.mod(fmt, values)
        if name in every:
            keep = (np.arange(steps) % every[name] == 0) | (np.arange(steps) == steps - 1)
            cells = np.where(keep, cells, "")
        parts.append(cells.astype(str))
    with path.open("w") as handle:
        handle.write(",".join(["step", *columns]) + "\n")
        for start in range(0, steps, 200_000):
            block = [p[start : start + 200_000] for p in parts]
            handle.write("\n".join(",".join(row) for row in zip(*block, strict=True)) + "\n")


def make_inputs(folder: Path, eval_every: int = 100) -> dict[str, Path]:
    """Write the synthetic logs and the manifest; returns their paths."""
    rng = np.random.default_rng(0)
    pilot = folder / "pilot-2m.csv"
    lr = _cosine(PILOT_ROWS - 1, 3e-4, 2_000, 3e-5)
    _write_csv(
        pilot,
        {
            "lr": (lr, "%.6g"),
            "loss_general": (_losses(lr, 2.0, 1.0, rng), "%.5f"),
            "loss_domain": (_losses(lr, 1.5, 1.2, rng), "%.5f"),
        },
        {"loss_general": 1_000, "loss_domain": 1_000},
    )
    pretrain = folder / "pretrain-1m.csv"
    pt_lr = _cosine(PT_STEPS, 3e-4, 2_000, 3e-5)
    _write_csv(
        pretrain,
        {
            "lr": (pt_lr, "%.6g"),
            "train_loss": (_losses(pt_lr, 2.0, 2.5, rng), "%.5f"),
            "loss_general": (_losses(pt_lr, 2.0, 2.5, rng), "%.5f"),
            "loss_domain": (_losses(pt_lr, 2.6, 2.5, rng), "%.5f"),
        },
        {"loss_general": 1_000, "loss_domain": 1_000},
    )
    lines = [
        "version: 1",
        "columns: {step: step, lr: lr, general: loss_general, domain: loss_domain}",
        "pretrain:",
        f"  log: {pretrain.name}",
        f"  checkpoints: {{final: {PT_STEPS}}}",
        "runs:",
    ]
    for index, (peak, replay, family) in enumerate(PILOTS):
        run_lr = _schedule(family, PILOT_STEPS, peak)
        general = _losses(run_lr, 2.1 + 0.2 * (0.5 - replay), 0.1, rng)
        domain = _losses(run_lr, 1.4, 0.8, rng)
        path = folder / f"pilot-{index}.csv"
        _write_csv(
            path,
            {
                "lr": (run_lr, "%.6g"),
                "loss_general": (general, "%.5f"),
                "loss_domain": (domain, "%.5f"),
            },
            {"loss_general": eval_every, "loss_domain": eval_every},
        )
        lines.append(f"  - {{log: {path.name}, replay_ratio: {replay}, checkpoint: final}}")
    manifest = folder / "pilots.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    return {"pilot": pilot, "pretrain": pretrain, "manifest": manifest, "folder": folder}


# --------------------------------------------------------------------------- probes

#: Code a probe process runs: each prints {"seconds": ...} for the work it times.
_READ = """
import sys, time
from cptopt.pilots.logs import read_log
start = time.perf_counter()
log = read_log(sys.argv[1])
print(time.perf_counter() - start)
"""
_PLAIN = """
import csv, math, sys, time
start = time.perf_counter()
for path in sys.argv[1:]:
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [[float(cell) if cell else math.nan for cell in row] for row in reader]
print(time.perf_counter() - start)
"""
_ARROW = """
import sys, time
import pyarrow.csv as pc
start = time.perf_counter()
for path in sys.argv[1:]:
    pc.read_csv(path)
print(time.perf_counter() - start)
"""
_CLI = "from cptopt.cli import main; main()"


def command_env(bytecode_cache: Path | None) -> dict[str, str]:
    """The environment of a timed command (here and in ``speed.py``): this checkout's cptopt
    first on the path; with ``bytecode_cache``, Python's bytecode cache kept there
    (``PYTHONPYCACHEPREFIX``, so the checkout is never written to) whatever
    ``PYTHONDONTWRITEBYTECODE`` says."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    if bytecode_cache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache)
    return env


def _measure(
    args: list[str], inner: bool, cwd: Path, bytecode_cache: Path | None = None
) -> dict[str, float]:
    """Run ``python args`` in a new process: seconds (the probe's own timing when
    ``inner``, else the whole process) and the peak RSS in MB of its largest process. With
    ``bytecode_cache``, Python keeps its bytecode cache there (``PYTHONPYCACHEPREFIX``, so
    the checkout is never written to), as a user's Python keeps one by default."""
    code = (
        "import json, resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - start\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'wall': wall, 'peak_kb': peak, 'code': done.returncode,"
        " 'out': done.stdout[-2000:], 'err': done.stderr[-2000:]}))\n"
    )
    env = command_env(bytecode_cache)
    probe = subprocess.run(
        [sys.executable, "-c", code, sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=True,
    )
    result = json.loads(probe.stdout)
    if result["code"] != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed ({result['code']}): {result['err']}")
    seconds = float(result["out"].split()[-1]) if inner else result["wall"]
    return {"seconds": seconds, "peak_mb": result["peak_kb"] / 1024}


def _arrow_available() -> bool:
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return False
    return True


def _medians(
    measurements: dict[str, tuple[list[str], bool, Path, Path | None]], repeat: int
) -> dict[str, dict[str, float]]:
    """Each of ``measurements`` (name -> :func:`_measure`'s arguments) ``repeat`` times, in
    turn (A B C A B C ...: a shared machine's load drifts, and a drift then moves every
    column alike): per name, the median seconds and the largest peak."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in measurements}
    for _ in range(repeat):
        for name, arguments in measurements.items():
            runs[name].append(_measure(*arguments))
    return {
        name: {
            "seconds": statistics.median(run["seconds"] for run in done),
            "peak_mb": max(run["peak_mb"] for run in done),
        }
        for name, done in runs.items()
    }


def run_cases(inputs: dict[str, Path], cases: list[str], repeat: int = 1) -> list[dict]:
    folder = inputs["folder"]
    pilot, pretrain = str(inputs["pilot"]), str(inputs["pretrain"])
    every_csv = sorted(str(p) for p in folder.glob("*.csv"))
    pilot_csvs = [p for p in every_csv if Path(p).name.startswith("pilot-")]
    fit_inputs = [pretrain, *[p for p in pilot_csvs if p != pilot]]
    table = {
        "read-2m": ("read 2M-row pilot", ["-c", _READ, pilot], True, [pilot]),
        "inspect-2m": ("inspect 2M-row pilot", ["-c", _CLI, "inspect", pilot], False, [pilot]),
        "read-pt": ("read 1M-step PT", ["-c", _READ, pretrain], True, [pretrain]),
        "fit": (
            "fit 1M-step PT + 5 pilots",
            ["-c", _CLI, "fit", str(inputs["manifest"]), "-o", str(folder / "law.json")],
            False,
            fit_inputs,
        ),
    }
    cache = folder / "pycache"
    rows = []
    for key in cases:
        label, args, inner, files = table[key]
        if not inner:  # a first run fills the cache, as a user's first command would
            _measure(args, inner, folder, cache)
        measurements = {
            "ours": (args, inner, folder, cache),
            "plain": (["-c", _PLAIN, *files], inner, folder, None),
        }
        if not inner:
            measurements["as_is"] = (args, inner, folder, None)
        measured = _medians(measurements, repeat)
        ours, plain = measured["ours"], measured["plain"]
        row = {
            "case": label,
            "mb_on_disk": sum(Path(f).stat().st_size for f in files) / 1e6,
            "cptopt_s": ours["seconds"],
            # Where PYTHONDONTWRITEBYTECODE is set and no cache sits beside the sources (a
            # fresh clone here), every process compiles cptopt's modules first.
            "cptopt_as_is_s": measured.get("as_is", ours)["seconds"],
            "cptopt_peak_mb": ours["peak_mb"],
            "plain_s": plain["seconds"],
            "plain_peak_mb": plain["peak_mb"],
            "time_ratio": ours["seconds"] / plain["seconds"],
            "memory_ratio": ours["peak_mb"] / plain["peak_mb"],
            "timing": "the call" if inner else "whole process",
        }
        if _arrow_available():
            row["pyarrow_s"] = _measure(["-c", _ARROW, *files], inner, folder)["seconds"]
        rows.append(row)
    return rows


def _table(rows: list[dict]) -> str:
    head = (
        f"{'case':<28} {'MB':>5} {'cptopt s':>9} {'as is s':>8} {'peak MB':>8} {'plain s':>8} "
        f"{'peak MB':>8} {'t ratio':>8} {'m ratio':>8} {'pyarrow s':>9}  timing"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        arrow = f"{row['pyarrow_s']:9.2f}" if "pyarrow_s" in row else f"{'-':>9}"
        lines.append(
            f"{row['case']:<28} {row['mb_on_disk']:5.0f} {row['cptopt_s']:9.2f} "
            f"{row['cptopt_as_is_s']:8.2f} "
            f"{row['cptopt_peak_mb']:8.0f} {row['plain_s']:8.2f} {row['plain_peak_mb']:8.0f} "
            f"{row['time_ratio']:8.2f} {row['memory_ratio']:8.2f} {arrow}  {row['timing']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--cases", default="read-2m,inspect-2m,read-pt,fit")
    parser.add_argument("--eval-every", type=int, default=100, help="Pilots' eval interval.")
    parser.add_argument("--keep", type=Path, default=None, help="Write the inputs here.")
    parser.add_argument(
        "--repeat", type=int, default=1, help="Runs per case and mode (the median time)."
    )
    args = parser.parse_args(argv)
    cases = [case.strip() for case in args.cases.split(",") if case.strip()]
    with tempfile.TemporaryDirectory(prefix="cptopt-scale-") as temp:
        folder = args.keep or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        inputs = make_inputs(folder, args.eval_every)
        generated = time.perf_counter() - started
        rows = run_cases(inputs, cases, max(args.repeat, 1))
    meta = {
        "cores": os.cpu_count(),
        "load": os.getloadavg()[0],
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "inputs_seconds": generated,
        "pilot_eval_every": args.eval_every,
        "repeat": max(args.repeat, 1),
        "peak_rss": "max RSS of the largest single process (getrusage RUSAGE_CHILDREN)",
    }
    targets = [
        {
            "case": row["case"],
            "seconds": row["cptopt_s"],
            "as_is_seconds": row["cptopt_as_is_s"],
            "peak_mb": row["cptopt_peak_mb"],
            "met": row["cptopt_s"] < FIT_SECONDS and row["cptopt_peak_mb"] < FIT_PEAK_MB,
        }
        for row in rows
        if row["case"] == FIT_CASE
    ]
    if args.format == "json":
        print(json.dumps({"meta": meta, "cases": rows, "targets": targets}, indent=2))
    else:
        print(_table(rows))
        for target in targets:
            print(
                f"\n{target['case']}: {target['seconds']:.1f} s, {target['peak_mb']:.0f} MB "
                f"(with the bytecode cache; target < {FIT_SECONDS:g} s and < {FIT_PEAK_MB} MB: "
                f"{'met' if target['met'] else 'missed'}); {target['as_is_seconds']:.1f} s "
                "as this environment runs it"
            )
        print(
            f"\n{meta['cores']} cores (load {meta['load']:.1f}), Python {meta['python']}, numpy "
            f"{meta['numpy']}; pilots evaluated every {args.eval_every} steps; median of "
            f"{meta['repeat']}; synthetic curves "
            "(speed and memory only)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
