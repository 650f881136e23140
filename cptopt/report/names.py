"""Short pilot names for narrow tables (a legend maps them back to the full names)."""

from __future__ import annotations

import re

#: Pilot names longer than this are shortened in tables (legend below the table): the
#: per-pilot fit table has six numeric columns, which leaves about this much at 80 columns.
NAME_WIDTH = 14


def short_names(names: list[str], width: int = NAME_WIDTH) -> tuple[list[str], list[str]]:
    """Unique short forms of run names for narrow tables, and the legend lines.

    Names that all fit in ``width`` are kept. Otherwise the ``_``/``-``-separated parts
    every name shares are dropped (``code_U_lr1x_r25_wsd_1000`` and ``code_U_lr2x_r25_cos_1000``
    become ``lr1x_wsd`` and ``lr2x_cos``); if those are still too long or not unique, the
    pilots are numbered ``P1``, ``P2``, ... The legend maps each short form to the full name
    (empty when nothing was shortened).
    """
    if all(len(name) <= width for name in names):
        return list(names), []
    tokens = [re.split(r"[_\-]", name) for name in names]
    shared = set.intersection(*(set(parts) for parts in tokens)) if len(names) > 1 else set()
    reduced = [
        "_".join(part for part in parts if part not in shared) or name
        for parts, name in zip(tokens, names, strict=True)
    ]
    if len(set(reduced)) != len(reduced) or any(len(short) > width for short in reduced):
        reduced = [f"P{index}" for index in range(1, len(names) + 1)]
    legend = [
        f"{short} = {name}" for short, name in zip(reduced, names, strict=True) if short != name
    ]
    return reduced, legend
