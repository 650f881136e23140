"""The reach of a first-pilots design: the ranges the user expects to recommend in, wider
than the space searched now. Default None is today's design exactly; a reach lets the pilots
go there and spread over it; bad reaches are refused in one line (library and CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cptopt.cli import app
from cptopt.design import PilotDesign, design_pilots
from cptopt.exceptions import InputError
from cptopt.schedules import Schedule
from cptopt.search import Candidate, SearchSpace

SPACE = SearchSpace(peak_lr=(3e-4, 1e-3), replay_ratio=(0.0, 0.4), families=["wsd", "constant"])
runner = CliRunner()


def _pilots(design: PilotDesign) -> list[tuple[str, float, float]]:
    return [(p.name, p.peak_lr, p.replay_ratio) for p in design.pilots]


@pytest.fixture(scope="module")
def plain() -> PilotDesign:
    return design_pilots(SPACE, pilot_steps=600, n_pilots=5)


@pytest.fixture(scope="module")
def wide() -> PilotDesign:
    return design_pilots(
        SPACE, pilot_steps=600, n_pilots=5, reach_peak_lr=(3e-4, 3e-3), reach_replay="0,0.8"
    )


def test_no_reach_is_todays_design(plain) -> None:
    again = design_pilots(SPACE, pilot_steps=600, n_pilots=5, reach_peak_lr=None)
    assert _pilots(again) == _pilots(plain)
    assert again.reach_peak_lr is None and again.reach_replay is None
    # the expected regrets are the same numbers (same draws, same candidates)
    assert again.expected_regret_after == pytest.approx(plain.expected_regret_after, abs=1e-12)


def test_a_reach_inside_the_space_changes_no_pilot(plain) -> None:
    inner = design_pilots(
        SPACE, pilot_steps=600, n_pilots=5, reach_peak_lr="4e-4,8e-4", reach_replay=(0.0, 0.4)
    )
    assert _pilots(inner) == _pilots(plain)
    assert inner.reach_peak_lr == pytest.approx((3e-4, 1e-3), rel=1e-12)  # the union
    assert any("reach lies inside the space" in note for note in inner.notes)


def test_a_wider_reach_sends_pilots_to_both_its_ends(wide) -> None:
    assert wide.reach_peak_lr == pytest.approx((3e-4, 3e-3), rel=1e-12)
    assert wide.reach_replay == pytest.approx((0.0, 0.8), abs=1e-12)
    assert wide.peak_lr == (3e-4, 1e-3)  # the space searched now is reported as given
    peaks = np.array([p.peak_lr for p in wide.pilots])
    replays = np.array([p.replay_ratio for p in wide.pilots])
    assert peaks.max() == pytest.approx(3e-3, rel=1e-6)  # beyond the space's 1e-3
    assert peaks.min() == pytest.approx(3e-4, rel=1e-6)
    assert replays.max() == pytest.approx(0.8, abs=1e-9)  # beyond the space's 0.4
    assert replays.min() == pytest.approx(0.0, abs=1e-9)
    assert np.all(peaks <= 3e-3 * (1 + 1e-9)) and np.all(replays <= 0.8 + 1e-9)
    covered = {end for p in wide.pilots for end in p.covers}
    assert covered == {"lowest peak LR", "highest peak LR", "lowest replay", "highest replay"}
    assert "of the space and reach" in wide.pilots[0].reason


def test_listed_candidates_inside_the_reach_are_kept() -> None:
    candidates = [
        Candidate(
            name=f"lr{lr:g}_r{r:g}",
            schedule=Schedule(family="wsd", peak_lr=lr, steps=600, warmup_steps=12),
            replay_ratio=r,
        )
        for lr in (3e-4, 1e-3, 3e-3)
        for r in (0.0, 0.25)
    ]
    plain = design_pilots(SPACE, pilot_steps=600, n_pilots=6, candidate_pilots=candidates)
    assert plain.n_candidate_pilots == 4  # the 3e-3 runs are outside the space
    reached = design_pilots(
        SPACE, pilot_steps=600, n_pilots=6, candidate_pilots=candidates, reach_peak_lr="3e-4,3e-3"
    )
    assert reached.n_candidate_pilots == 6
    assert max(p.peak_lr for p in reached.pilots) == pytest.approx(3e-3, rel=1e-9)


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("reach_peak_lr", "3e-3,3e-4", r"low 0\.003 > high 0\.0003"),
        ("reach_peak_lr", (-1e-3, 1e-3), "must be > 0"),
        ("reach_peak_lr", "0,1e-3", "must be > 0"),
        ("reach_peak_lr", "nan,1e-3", "finite"),
        ("reach_peak_lr", "a,b", "not a number"),
        ("reach_peak_lr", (1e-3, 2e-3, 3e-3), "two numbers"),
        ("reach_replay", "0,1.5", r"lie in \[0, 1\]"),
        ("reach_replay", (-0.1, 0.5), r"lie in \[0, 1\]"),
    ],
)
def test_bad_reaches_are_refused_in_one_line(keyword, value, message) -> None:
    with pytest.raises(InputError, match=message) as caught:
        design_pilots(SPACE, pilot_steps=600, n_pilots=2, **{keyword: value})
    assert keyword in str(caught.value) and "\n" not in str(caught.value)


def test_cli_reach_json_report_line_help_and_bad_input() -> None:
    args = ["design", "--pilot-steps", "600", "--peak-lr", "3e-4,1e-3", "--pilots", "3"]
    data = runner.invoke(app, [*args, "--reach-peak-lr", "3e-4,3e-3", "--format", "json"])
    assert data.exit_code == 0, data.stderr
    parsed = PilotDesign.model_validate(json.loads(data.stdout))
    assert parsed.reach_peak_lr == pytest.approx((3e-4, 3e-3), rel=1e-12)
    table = runner.invoke(app, [*args, "--reach-replay", "0,0.8"])
    assert table.exit_code == 0, table.stderr
    assert "reach: peak LR 0.0003..0.001, replay 0..0.8" in " ".join(table.stdout.split())
    bad = runner.invoke(app, [*args, "--reach-replay", "0.5,0.2"])
    assert bad.exit_code == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "--reach-replay: low 0.5 > high 0.2" in lines[0]
    help_text = " ".join(runner.invoke(app, ["design", "--help"]).stdout.split())
    assert "--reach-peak-lr" in help_text and "RECOMMEND" in help_text
