"""The ``cptopt`` command line: a thin layer over the library (see ``_common`` for exit codes).

Each command lives in its own module and registers itself on ``app`` when imported.
"""

from __future__ import annotations

from cptopt.cli import check as _check  # noqa: F401
from cptopt.cli import fit as _fit  # noqa: F401  (registers the command)
from cptopt.cli import inspect as _inspect  # noqa: F401
from cptopt.cli import next_pilot as _next_pilot  # noqa: F401
from cptopt.cli import plot as _plot  # noqa: F401
from cptopt.cli import predict as _predict  # noqa: F401
from cptopt.cli import recommend as _recommend  # noqa: F401
from cptopt.cli._common import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
