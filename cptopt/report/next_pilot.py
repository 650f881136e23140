"""Render ``next-pilot`` results: the ranked candidate pilots and the stopping verdict.

Nothing here prints: the CLI does.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from cptopt.design.next_pilot import NextPilot, PilotScore
from cptopt.report.layout import ByWidth, add_columns, legend, plain_table, two_line


def _share(value: float, objective: float) -> str:
    return f"{value / abs(objective):.2%}"


def _tokens(item: PilotScore) -> str:
    return "-" if item.tokens is None else f"{item.tokens:.3g}"


def _pins(item: PilotScore) -> str:
    if item.duplicate_of is not None:
        return f"(repeats pilot {item.duplicate_of})"
    return ", ".join(f"{g.name} -{g.reduction:.0%}" for g in item.pins_down[:2]) or "-"


def next_pilot_report(result: NextPilot) -> RenderableType:
    """The verdict, the candidates ranked by the expected regret after them, and notes."""
    w_g, w_d = result.weights
    now = _share(result.expected_regret, result.objective)
    head = [
        f"decision: minimise {w_g:.3g}*L_general + {w_d:.3g}*L_domain",
        f"recommended now: {result.recommendation} (objective {result.objective:.4f})",
        f"expected regret now: {result.expected_regret:.4f} ({now}); P(best) {result.p_best:.2f};"
        f" tolerance {result.tolerance:.4f} ({_share(result.tolerance, result.objective)})",
        ("[green]settled:[/] " if result.settled else "[yellow]not settled:[/] ") + result.reason,
    ]
    title = (
        f"candidate pilots, best first ({len(result.candidate_pilots)} of "
        f"{result.n_candidate_pilots})"
    )
    numbers = [("exp. regret now → after", "right"), ("P(best) now → after", "right")]
    sizes = [("steps", "right"), ("tokens", "right")]
    wide = add_columns(
        plain_table(title),
        [("", "right"), ("candidate", "left"), *numbers, ("pins down (variance)", "left"), *sizes],
    )
    # narrow: what each candidate pins down moves under the table, with its schedule
    narrow = add_columns(
        plain_table(title),
        [("", "right"), ("candidate", "left"), *two_line(numbers, " now"), *sizes],
    )
    lines: list[str] = []
    described: list[tuple[str, ...]] = []
    pinned: list[tuple[str, ...]] = []
    for item in result.candidate_pilots:
        mark = " [yellow]![/]" if item.flags else ""
        lines += [f"{item.name}: [yellow]{flag}[/]" for flag in item.flags]
        regret = f"{now} → {_share(item.expected_regret_after, result.objective)}"
        p_best = f"{result.p_best:.2f} → {item.p_best_after:.2f}"
        steps, tokens = str(item.steps), _tokens(item)
        wide.add_row(str(item.rank), item.name + mark, regret, p_best, _pins(item), steps, tokens)
        narrow.add_row(str(item.rank), item.name + mark, regret, p_best, steps, tokens)
        schedule = "" if item.schedule == item.name else item.schedule
        if schedule:
            described.append((f"{item.name}:", schedule))
        pinned.append(
            (str(item.rank), f"{item.name}:", "; ".join(filter(None, (_pins(item), schedule))))
        )
    lines.append(
        f"options: {result.n_options} ({result.n_contenders} can be the best); "
        f"{result.seconds:.2f} s"
    )
    lines.append(f"method: {result.method}")
    lines += [f"note: {note}" for note in result.notes]
    return Group(
        Text.from_markup("\n".join(head)),
        ByWidth(
            (wide, *([legend(described)] if described else [])),
            (narrow, legend(pinned, "candidate: pins down (variance); schedule")),
        ),
        Text.from_markup("\n".join(lines)),
    )


def next_pilot_line(result: NextPilot | None) -> str | None:
    """One line pointing to the best next pilot, or None when the decision is settled."""
    if result is None or result.settled or result.best is None:
        return None
    best, objective = result.best, abs(result.objective)
    return (
        f"next pilot: {best.name}, {best.steps} steps, is expected to cut the regret of this "
        f"decision from {result.expected_regret / objective:.2%} to "
        f"{best.expected_regret_after / objective:.2%} (cptopt next-pilot ranks the candidates)"
    )
