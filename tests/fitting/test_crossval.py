"""Cross-validation folds: which pilots are left out together, and which folds test what."""

from __future__ import annotations

from cptopt.fitting.crossval import cv_folds
from cptopt.law.scenario import scenario_of
from cptopt.schedules import Schedule
from cptopt.testing import synthetic_pilots

VALUES = {
    name: {
        "L0": 1.0,
        "A": 0.5,
        "alpha": 0.5,
        "C1": 0.2,
        "C2": 0.2,
        "Bbeta": 0.01,
        "E": 30.0,
        "beta": 0.3,
        "a1": 0.0,
        "a2": 1.0,
    }
    for name in ("general", "domain")
}


def test_cv_folds_group_beyond_the_maximum():
    assert cv_folds([0, 1, 2]) == [[0], [1], [2]]
    folds = cv_folds(list(range(25)), max_folds=10)
    assert len(folds) == 10 and sorted(sum(folds, [])) == list(range(25))
    assert folds[0] == [0, 10, 20] and folds[9] == [9, 19]


def test_shared_replay_folds_are_the_pilots_sharing_a_replay_ratio():
    schedule = Schedule(family="constant", peak_lr=1e-3, steps=200, warmup_steps=5)
    ratios = (0.25, 0.25, 0.25, 0.0, 0.5)
    pilots = synthetic_pilots("exp", VALUES, lam=0.99, configs=[(schedule, r) for r in ratios])
    # leaving out the only r = 0 or r = 0.5 pilot is a replay extrapolation
    assert scenario_of(pilots).shared_replay_folds() == [0, 1, 2]
    distinct = pilots.subset([run.name for run in pilots.runs][2:])
    assert scenario_of(distinct).shared_replay_folds() == []  # fewer than 2: every fold counts
