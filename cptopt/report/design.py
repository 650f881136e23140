"""Render ``cptopt design`` results: the first pilots to launch, and why each.

Nothing here prints: the CLI does.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from cptopt.design.first_pilots import PilotDesign
from cptopt.report.layout import add_columns, legend, plain_table


def design_report(result: PilotDesign) -> RenderableType:
    """The space designed for, the pilots (a narrow table), why each, the method."""
    low, high = result.peak_lr
    weights = ", ".join(f"{g:.3g},{d:.3g}" for g, d in result.weights)
    head = [
        f"space: peak LR {low:.3g}..{high:.3g}, replay {result.replay_ratio[0]:g}.."
        f"{result.replay_ratio[1]:g}; pilots of {result.pilot_steps} steps",
        *_reach_lines(result),
        f"decision weights (general,domain): {weights}",
        f"optimises: {result.optimises}",
        f"expected regret of the decision: {result.expected_regret_before:.2%} with no pilot, "
        f"{result.expected_regret_after:.2%} after these (under the priors)",
    ]
    title = f"pilots to launch first ({len(result.pilots)} of {result.n_candidate_pilots})"
    table = add_columns(
        plain_table(title),
        [("", "right"), ("pilot", "left"), ("peak LR", "right"), ("replay", "right"),
         ("steps", "right")],
    )  # fmt: skip
    why: list[tuple[str, ...]] = []
    for pilot in result.pilots:
        table.add_row(
            str(pilot.rank), pilot.name, f"{pilot.peak_lr:.3g}", f"{pilot.replay_ratio:.2f}",
            str(pilot.steps),
        )  # fmt: skip
        schedule = "" if pilot.schedule == pilot.name else f" ({pilot.schedule})"
        why.append((str(pilot.rank), pilot.reason + schedule))
    tail = [f"priors: {', '.join(result.priors)}; {result.seconds:.2f} s"]
    tail.append(f"method: {result.method}")
    tail += [f"note: {note}" for note in result.notes]
    return Group(
        Text("\n".join(head)),
        table,
        legend(why, "why each pilot"),
        Text("\n".join(tail)),
    )


def _reach_lines(result: PilotDesign) -> list[str]:
    """The reach, when one was given: where the pilots spread and the decision is judged."""
    if result.reach_peak_lr is None or result.reach_replay is None:
        return []
    low, high = result.reach_peak_lr
    return [
        f"reach: peak LR {low:.3g}..{high:.3g}, replay {result.reach_replay[0]:g}.."
        f"{result.reach_replay[1]:g} (the space and the reach together: the pilots spread "
        "over it and the decision is judged on it)"
    ]
