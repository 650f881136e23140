"""The library's defaults and bounds that the commands' option declarations show.

Typer reads every command's options (their defaults and help texts) when the command line
starts. Copied here, they cost no import: ``import cptopt.cli`` loads Typer and rich only,
and each command imports the stages it runs in its body (``cptopt fit`` never loads the
search, the design or the limits; ``cptopt --help`` no stage at all).
tests/cli/test_defaults.py checks that each equals the library's own.
"""

from __future__ import annotations

#: ``cptopt.law.DEFAULT_LAW_PATH``: the law file a command writes or reads by default.
DEFAULT_LAW_PATH = "cptopt-law.json"
#: ``cptopt.fitting.DEFAULT_STARTS``: optimiser starts polished per fit.
DEFAULT_STARTS = 3
#: ``cptopt._validation.MAX_SEED`` and ``MAX_STARTS``: the bounds the library checks.
MAX_SEED = 2**32 - 1
MAX_STARTS = 100
#: ``cptopt.design.DEFAULT_TOLERANCE`` and ``DEFAULT_P_BEST``: when to stop piloting.
DEFAULT_TOLERANCE = 0.001
DEFAULT_P_BEST = 0.95
#: ``cptopt.report.DEFAULT_DPI``: the resolution of ``cptopt plot``.
DEFAULT_DPI = 100
#: ``cptopt.pilots.FORMATS``: the log formats ``--log-format`` takes.
LOG_FORMATS = (
    "auto",
    "csv",
    "jsonl",
    "hf",
    "tensorboard",
    "lightning",
    "wandb",
    "wandb-history",
    "wandb-run",
)
