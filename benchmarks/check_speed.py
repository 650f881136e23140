"""How fast is ``cptopt check`` on 100 configs? (target: < 2 s)

Times, in one process on one machine, against baselines measured in the same run:

1. baseline: 100 plain library calls ``load_config`` + ``predict`` (the work check must do);
2. ``cptopt.check(...)`` on the 100 configs (limits, verdicts, report);
3. the ``cptopt check`` command in-process (``CliRunner``, JSON output);
4. ``cptopt check`` as a new process, next to ``cptopt --help`` as a new process (the cost of
   starting Python and importing numpy/scipy, paid once per command whatever it does).

Usage::

    python benchmarks/check_speed.py [--law cptopt-law.json] [--configs 100] [--repeat 3]

Without ``--law`` the bundled unannealed pilots are fitted first (not timed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_configs(folder: Path, count: int) -> list[Path]:
    """``count`` realistic configs spread over the pilots' LR x replay x family range."""
    families = ["wsd", "cosine", "constant", "linear"]
    paths = []
    for index in range(count):
        family = families[index % len(families)]
        peak = 6e-4 + (2e-3 - 6e-4) * ((index * 7) % 10) / 9
        replay = [0.0, 0.1, 0.25, 0.5][(index // 4) % 4]
        decay = "  decay_fraction: 0.2\n" if family == "wsd" else ""
        path = folder / f"config-{index:03d}.yaml"
        path.write_text(
            f"name: run-{index:03d}\nschedule:\n  family: {family}\n  peak_lr: {peak:.6g}\n"
            f"  steps: 1000\n  warmup_steps: 20\n{decay}replay_ratio: {replay}\n"
            "checkpoint: unannealed\ntokens_per_step: 1024\n"
        )
        paths.append(path)
    return paths


def best_of(repeat: int, action) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--law", type=Path, default=None)
    parser.add_argument("--configs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()

    from typer.testing import CliRunner

    from cptopt import check, fit, load_config, load_law
    from cptopt.cli import app
    from cptopt.prediction import predict

    work = Path(tempfile.mkdtemp(prefix="cptopt-check-bench-"))
    try:
        law_path = options.law
        if law_path is None:
            law_path = work / "law.json"
            print("fitting examples/pilots/unannealed.yaml (not timed) ...", flush=True)
            fit(ROOT / "examples" / "pilots" / "unannealed.yaml").save(law_path)
        paths = write_configs(work, options.configs)
        limits = {"max_general_rise": 0.05, "max_final_domain_loss": 1.45, "min_domain_gain": 0.5}

        def baseline() -> None:
            law = load_law(law_path)
            for path in paths:
                config = load_config(path)
                predict(
                    law,
                    config.schedule,
                    config.replay_ratio,
                    checkpoint=config.checkpoint,
                    tokens_per_step=config.tokens_per_step,
                )

        def library() -> None:
            check(paths, law_path, isolated=True, **limits)

        runner = CliRunner()
        cli_args = ["check", *map(str, paths), "--law", str(law_path), "--isolated"]
        cli_args += ["--max-general-rise", "0.05", "--format", "json", "-o", str(work / "r.json")]

        def in_process() -> None:
            result = runner.invoke(app, cli_args)
            assert result.exit_code in (0, 1), result.stderr

        executable = shutil.which("cptopt") or sys.executable
        prefix = [executable] if executable != sys.executable else [sys.executable, "-m", "cptopt"]

        def new_process() -> None:
            done = subprocess.run([*prefix, *cli_args], capture_output=True, text=True)
            assert done.returncode in (0, 1), done.stderr

        def startup_only() -> None:
            subprocess.run([*prefix, "--help"], capture_output=True, check=True)

        repeat = options.repeat
        t_base = best_of(repeat, baseline)
        t_lib = best_of(repeat, library)
        t_cli = best_of(repeat, in_process)
        t_proc = best_of(repeat, new_process)
        t_start = best_of(repeat, startup_only)
        n = len(paths)
        print(f"cptopt check speed: {n} configs, best of {repeat}, {os.cpu_count()} cores")
        print(f"  baseline  {n} x load_config+predict      {t_base:7.3f} s")
        print(
            f"  cptopt.check() (library)              {t_lib:7.3f} s   ratio {t_lib / t_base:5.2f}"
        )
        print(
            f"  cptopt check (CLI, in-process)        {t_cli:7.3f} s   ratio {t_cli / t_base:5.2f}"
        )
        print(f"  process start: cptopt --help          {t_start:7.3f} s")
        print(
            f"  cptopt check (new process)            {t_proc:7.3f} s   "
            f"= start + {t_proc - t_start:.3f} s work"
        )
        verdict = "OK" if t_proc < 2.0 else "over"
        print(f"  target < 2 s for the whole command: {verdict} ({t_proc:.2f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
