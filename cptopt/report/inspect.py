"""Render what ``cptopt inspect`` found in a log (series, roles, LR coverage) as a table."""

from __future__ import annotations

from rich.table import Table


def inspect_table(summary: dict) -> Table:
    """One log's series, the role cptopt gives each, and its LR coverage."""
    coverage = summary["lr_coverage"]
    if coverage is None:
        lr_text = "no LR series: the run needs a schedule"
    elif coverage["per_step"]:
        lr_text = f"LR at every step 1..{coverage['steps']}"
    else:
        lr_text = (
            f"LR at {coverage['points']} of {coverage['steps']} steps (largest gap "
            f"{coverage['largest_gap']}): interpolated unless a schedule is given"
        )
    table = Table(
        title=f"{summary['source']} ({summary['format']}, step = '{summary['step']}')",
        caption=lr_text,
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("series")
    table.add_column("role")
    table.add_column("steps", justify="right")
    table.add_column("points", justify="right")
    table.add_column("problems")
    for row in summary["series"]:
        span = f"{row['first_step']}..{row['last_step']}" if row["points"] else "-"
        table.add_row(
            row["name"],
            row["role"] or "",
            span,
            str(row["points"]),
            "; ".join(row["problems"]),
        )
    return table
