"""The line ``recommend`` prints after its answer: which pilot to run next, when it matters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cptopt.cli._common import OutputFormat, stdout

if TYPE_CHECKING:
    from cptopt.law import CptLaw
    from cptopt.search import Candidate, SearchConfig


def print_next_pilot_hint(
    law: CptLaw,
    weights: tuple[float, float],
    config: SearchConfig,
    output_format: OutputFormat,
    options: Sequence[Candidate] | None = None,
) -> None:
    """In table output, one line pointing to the best next pilot when the decision is not
    settled (``cptopt next-pilot`` gives the full ranking); nothing otherwise."""
    if output_format is not OutputFormat.table:
        return
    from cptopt.design import next_pilot_hint
    from cptopt.report import next_pilot_line

    result = next_pilot_hint(
        law,
        weights,
        space=config.space,
        constraints=config.constraints,
        allow_extrapolation=config.allow_extrapolation,
        options=options,
    )
    line = next_pilot_line(result)
    if line is not None:
        stdout.print(line, highlight=False)
