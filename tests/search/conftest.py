"""Helpers shared by the search's tests: random searched settings and their schedules."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from cptopt.schedules import Schedule
from cptopt.search.models import SEARCH_FAMILIES, shape_schedule
from cptopt.search.shapes import Batch, make_batch


def _random_batch(n: int, checkpoints: int = 1, max_steps: int = 2500, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    columns = {
        "family": rng.integers(len(SEARCH_FAMILIES), size=n),
        "warmup_fraction": rng.uniform(0, 0.1, n),
        "decay_fraction": rng.uniform(0.1, 0.5, n),
        "steps": rng.integers(200, max_steps, n),
        "peak_lr": np.exp(rng.uniform(np.log(5e-4), np.log(2e-3), n)),
        "replay_ratio": rng.uniform(0, 0.5, n),
    }
    return make_batch(checkpoint=rng.integers(checkpoints, size=n), **columns)


def _row_schedule(row: dict) -> Schedule:
    return shape_schedule(
        SEARCH_FAMILIES[row["family"]],
        row["steps"],
        row["warmup_fraction"],
        row["decay_fraction"],
        row["peak_lr"],
    )


@pytest.fixture
def random_batch() -> Callable[..., Batch]:
    """``random_batch(n, checkpoints=1, max_steps=2500, seed=0)``: random searched settings
    (every family, warmup, WSD decay, length, peak LR and replay ratio)."""
    return _random_batch


@pytest.fixture
def row_schedule() -> Callable[[dict], Schedule]:
    """The schedule of one setting of a batch (``Batch.row(i)``)."""
    return _row_schedule
