"""Render what ``cptopt inspect`` found in a log (series, roles, LR coverage) as a table."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from cptopt.report.layout import PathLine, add_columns, plain_table

#: The longest series name that never wraps at 80 columns (the other columns need the rest).
NAME_ROOM = 32


def inspect_table(summary: dict) -> RenderableType:
    """One log's series, the role cptopt gives each, and its LR coverage (the title and
    the LR line wrap at the terminal's width, not the table's)."""
    coverage = summary["lr_coverage"]
    if summary["error"]:
        lr_text = "nothing read: the mapping failed (the error says why)"
    elif coverage is None:
        lr_text = "no LR series: the run needs a schedule"
    elif coverage["per_step"]:
        lr_text = f"LR at every step 1..{coverage['steps']}"
    else:
        lr_text = (
            f"LR at {coverage['points']} of {coverage['steps']} steps (largest gap "
            f"{coverage['largest_gap']})"
        )
        if summary.get("lr_source") == "matched":
            matched = summary["lr_description"].split("they pin down ", 1)[-1]
            lr_text += f": they pin down {matched}"
        elif summary.get("lr_source") == "interpolated":
            bound = summary.get("lr_s1_bound")
            size = f"up to {100 * bound:.2g} %" if bound is not None else "unbounded"
            lr_text += f": interpolated, S1 error {size}; describe the schedule (schedule:)"
    step = f"step = '{summary['step']}'"
    if summary.get("step_offset"):
        step += f" + {summary['step_offset']} (0-based in the file)"
    table = add_columns(
        plain_table(),
        [("series", "left"), ("role", "left"), ("steps", "right"), ("points", "right")],
    )
    table.add_column("problems", overflow="fold")
    # names up to NAME_ROOM characters never wrap (the problems do); longer ones fold
    longest = max((len(row["name"]) for row in summary["series"]), default=0)
    table.columns[0].no_wrap = longest <= NAME_ROOM
    for row in summary["series"]:
        span = f"{row['first_step']}..{row['last_step']}" if row["points"] else "-"
        table.add_row(
            row["name"],
            "loss"
            if row["role"] == "general" and summary.get("kind") == "pretrain"
            else row["role"] or "",
            span,
            str(row["points"]),
            "; ".join(row["problems"]),
        )
    # the path stays whole, even wider than the terminal (it is copied into manifests)
    title = PathLine(summary["source"], f"({summary['format']}, {step})")
    return Group(title, table, Text(lr_text))
