"""Local refinement and the dense search: vectorised, deterministic cross-checks.

:func:`refine` walks each starting setting downhill on a small grid around it (a pattern
search over the continuous dimensions, all incumbents in one vectorised call per round).
:func:`dense_search` grids the whole space (about ``DENSE_POINTS`` settings), then refines
the best grid points: the reference the Optuna study is compared with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cptopt.exceptions import InfeasibleError
from cptopt.search.evaluate import Evaluator, feasible_mask
from cptopt.search.models import SEARCH_FAMILIES
from cptopt.search.shapes import Batch, make_batch
from cptopt.search.space import ResolvedSpace

#: Points of the dense grid (before refinement) the resolution aims at.
DENSE_POINTS = 150_000


def refine(
    evaluator: Evaluator,
    space: ResolvedSpace,
    start: Batch,
    rounds: int = 40,
    points: int = 5,
    initial_share: float = 0.25,
    keep: int = 4,
    tolerance: float = 1e-5,
) -> tuple[Batch, float]:
    """Vectorised pattern search around each setting of ``start`` (family fixed).

    Each round evaluates, for every incumbent, a ``points``-per-dimension grid centred on it
    over the varying continuous dimensions (log peak LR, replay, steps, warmup, decay), all
    incumbents in one vectorised call. An incumbent that improves keeps its step (so it can
    walk along a constraint boundary); one that does not halves it. After three rounds only
    the ``keep`` best incumbents go on. Infeasible points count as +inf. Stops when every
    step is below ``tolerance`` (a share of each range) or after ``rounds``.
    """
    vary = space.varying()
    dims = []
    if vary["peak_lr"]:
        dims.append(("peak_lr", np.log(space.peak_lr[0]), np.log(space.peak_lr[1]), True))
    for name in ("replay_ratio", "steps", "warmup_fraction", "decay_fraction"):
        if vary[name]:
            low, high = getattr(space, name)
            dims.append((name, float(low), float(high), False))
    best_batch = start
    _, _, objective, violations = evaluator.evaluate(start)
    best_value = np.where(feasible_mask(violations, len(start)), objective, np.inf)
    if not dims:
        i = int(np.argmin(best_value))
        return start.take(np.array([i])), float(best_value[i])
    spans = np.array([high - low for _, low, high, _ in dims])
    share = np.full(len(start), initial_share)
    offsets = np.linspace(-1.0, 1.0, points)
    mesh = np.stack(np.meshgrid(*([offsets] * len(dims)), indexing="ij"), axis=-1).reshape(
        -1, len(dims)
    )
    for round_ in range(rounds):
        if round_ == 3 and len(best_batch) > keep:
            order = np.argsort(best_value)[:keep]
            best_batch, best_value, share = best_batch.take(order), best_value[order], share[order]
        if (share < tolerance).all():
            break
        parts = []
        for i in range(len(best_batch)):
            row = best_batch.row(i)
            columns: dict[str, Any] = dict(row)
            for d, (name, low, high, log) in enumerate(dims):
                centre = np.log(row["peak_lr"]) if log else float(row[name])
                values = np.clip(centre + mesh[:, d] * share[i] * spans[d], low, high)
                if name == "peak_lr":
                    values = np.clip(np.exp(values), *space.peak_lr)
                elif name == "steps":
                    g = space.granularity
                    values = space.steps[0] + g * np.round((values - space.steps[0]) / g)
                    values = np.clip(values, space.steps[0], space.steps[1]).astype(int)
                columns[name] = values
            if SEARCH_FAMILIES[int(row["family"])] != "wsd":
                columns["decay_fraction"] = row["decay_fraction"]
            parts.append(make_batch(**columns))
        everything = Batch.concatenate(parts)
        _, _, objective, violations = evaluator.evaluate(everything)
        objective = np.where(feasible_mask(violations, len(everything)), objective, np.inf)
        objective = objective.reshape(len(parts), -1)
        for i in range(len(parts)):
            j = int(np.argmin(objective[i]))
            if objective[i, j] < best_value[i]:
                best_value[i] = objective[i, j]
                best_batch = _replace_row(best_batch, i, parts[i].row(j))
            else:
                share[i] /= 2.0
    i = int(np.argmin(best_value))
    return best_batch.take(np.array([i])), float(best_value[i])


def _replace_row(batch: Batch, index: int, row: dict[str, Any]) -> Batch:
    columns = {name: np.array(getattr(batch, name)) for name in row}
    for name, value in row.items():
        columns[name][index] = value
    return Batch(**columns)


def dense_search(
    evaluator: Evaluator, space: ResolvedSpace, starts_per_family: int = 2
) -> tuple[Batch, float, int]:
    """Grid over the whole space, then local refinement of the best grid points.

    Returns the best setting, its objective and the number of grid points.
    """
    resolution = _dense_resolution(space)
    grid = space.grid(resolution)
    _, _, objective, violations = evaluator.evaluate(grid)
    feasible = feasible_mask(violations, len(grid))
    if not feasible.any():
        raise InfeasibleError(_infeasible_message(violations))
    masked = np.where(feasible, objective, np.inf)
    starts = []
    keys = grid.checkpoint * len(SEARCH_FAMILIES) + grid.family
    for key in np.unique(keys):
        members = np.flatnonzero((keys == key) & feasible)
        if members.size:
            order = members[np.argsort(masked[members])[:starts_per_family]]
            starts.extend(order.tolist())
    best, value = refine(evaluator, space, grid.take(np.array(starts)))
    return best, value, len(grid)


def _dense_resolution(space: ResolvedSpace) -> dict[str, int]:
    """Points per dimension so that the full-factorial grid has about ``DENSE_POINTS``."""
    vary = space.varying()
    resolution = {"steps": 21, "warmup_fraction": 5, "decay_fraction": 9}
    n_steps = min(resolution["steps"], (space.steps[1] - space.steps[0]) // space.granularity + 1)
    shapes = len(space.checkpoints) * (
        len(space.families) - 1 + (resolution["decay_fraction"] if vary["decay_fraction"] else 1)
        if "wsd" in space.families
        else len(space.families)
    )
    shapes *= n_steps * (resolution["warmup_fraction"] if vary["warmup_fraction"] else 1)
    continuous = int(vary["peak_lr"]) + int(vary["replay_ratio"])
    per_dim = 41
    if continuous:
        per_dim = int((DENSE_POINTS / max(shapes, 1)) ** (1 / continuous))
        per_dim = int(np.clip(per_dim, 9, 101))
    resolution.update({"peak_lr": per_dim, "replay_ratio": per_dim})
    return resolution


def _infeasible_message(violations: dict[str, np.ndarray]) -> str:
    parts = []
    for name, values in violations.items():
        smallest = float(values.min())
        if smallest > 0:
            parts.append(f"{name} (missed by at least {smallest:.4g})")
        else:
            parts.append(f"{name} (satisfiable alone)")
    return (
        "no setting in the search space satisfies the constraints: "
        + ", ".join(parts)
        + "; loosen them or widen the space"
    )
