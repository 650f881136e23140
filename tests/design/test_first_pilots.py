"""The first pilots before any fit: the design spans the space, is distinct, deterministic,
stays in the space, and refuses bad priors and settings in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cptopt import Schedule, load_config
from cptopt.design import PilotDesign, design_pilots, write_pilot_configs
from cptopt.design.prior import DEFAULT_PRIORS, bundled_prior, load_priors, resample
from cptopt.exceptions import InputError
from cptopt.search import Candidate, Constraints, SearchSpace

SPACE = SearchSpace(peak_lr=(3e-4, 1e-3), replay_ratio=(0.0, 0.4), families=["wsd", "constant"])


@pytest.fixture(scope="module")
def design() -> PilotDesign:
    return design_pilots(SPACE, pilot_steps=600, n_pilots=5)


def test_the_bundled_priors_are_packaged_laws_with_refits() -> None:
    for label, law in load_priors(None):
        assert label in DEFAULT_PRIORS
        assert len(law.general.jackknife) >= 3  # the prior's uncertainty: its refits
        text = bundled_prior(label).read_text()
        assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text


def test_n_distinct_pilots_of_the_given_length_inside_the_space(design) -> None:
    assert len(design.pilots) == 5
    keys = {(p.family, round(p.peak_lr, 12), round(p.replay_ratio, 6)) for p in design.pilots}
    assert len(keys) == 5
    for pilot in design.pilots:
        assert pilot.steps == 600
        assert pilot.family in SPACE.families
        # bounds are the space's own numbers, relative slack for the geomspace's rounding
        assert 3e-4 * (1 - 1e-9) <= pilot.peak_lr <= 1e-3 * (1 + 1e-9)
        assert 0.0 <= pilot.replay_ratio <= 0.4 + 1e-9
        assert pilot.reason


def test_the_design_reaches_both_ends_of_lr_and_replay(design) -> None:
    peaks = [p.peak_lr for p in design.pilots]
    replays = [p.replay_ratio for p in design.pilots]
    assert min(peaks) == pytest.approx(3e-4, rel=1e-6)  # geomspace end points: rounding only
    assert max(peaks) == pytest.approx(1e-3, rel=1e-6)
    assert min(replays) == pytest.approx(0.0, abs=1e-9)
    assert max(replays) == pytest.approx(0.4, abs=1e-9)
    covered = {end for p in design.pilots for end in p.covers}
    assert covered == {"lowest peak LR", "highest peak LR", "lowest replay", "highest replay"}
    # the ends come first: reach is the first rule
    assert design.pilots[0].covers


def test_expected_regret_falls_as_pilots_are_added(design) -> None:
    regrets = [p.expected_regret_after for p in design.pilots]
    assert design.expected_regret_before > 0
    assert regrets[-1] <= design.expected_regret_before
    assert design.expected_regret_after == regrets[-1]
    gains = [p.information for p in design.pilots]
    assert all(g >= -1e-9 for g in gains)  # information only grows (log det, rounding)


def test_deterministic_for_a_seed(design) -> None:
    again = design_pilots(SPACE, pilot_steps=600, n_pilots=5)
    assert [p.name for p in again.pilots] == [p.name for p in design.pilots]


def test_d_optimal_is_information_only() -> None:
    result = design_pilots(SPACE, pilot_steps=600, n_pilots=3, criterion="d_optimal")
    assert result.criterion == "d_optimal"
    assert all(not p.covers for p in result.pilots)
    gains = [p.information for p in result.pilots]
    assert gains == sorted(gains, reverse=True)  # greedy: each pick adds less (submodular)


def _candidate(name: str, peak: float, replay: float, family: str = "wsd") -> Candidate:
    schedule = Schedule(family=family, peak_lr=peak, steps=500, warmup_fraction=0.02)
    return Candidate(name=name, schedule=schedule, replay_ratio=replay)


def test_listed_candidates_only_and_a_repeat_counts_once() -> None:
    candidates = [
        _candidate("a", 3e-4, 0.0),
        _candidate("a twin", 3e-4, 0.0),
        _candidate("b", 1e-3, 0.4),
        _candidate("c", 1e-3, 0.0, "constant"),
    ]
    result = design_pilots(
        SearchSpace(replay_ratio=(0.0, 0.4)), pilot_steps=500, n_pilots=4,
        candidate_pilots=candidates,
    )  # fmt: skip
    names = [p.name for p in result.pilots]
    assert set(names) <= {c.name for c in candidates}
    assert not {"a", "a twin"} <= set(names)
    assert len(names) == 3
    assert any("only 3 distinct" in note for note in result.notes)
    assert result.peak_lr == pytest.approx((3e-4, 1e-3), rel=1e-12)  # from the candidates


def test_a_pretrain_lr_maps_the_user_units() -> None:
    # the same design in LR units 10x smaller: the same pilots, LRs 10x smaller
    small = SearchSpace(peak_lr=(3e-5, 1e-4), replay_ratio=(0.0, 0.4), families=["wsd"])
    big = SearchSpace(peak_lr=(3e-4, 1e-3), replay_ratio=(0.0, 0.4), families=["wsd"])
    a = design_pilots(small, pilot_steps=600, n_pilots=3, pretrain_lr=1e-4)
    b = design_pilots(big, pilot_steps=600, n_pilots=3, pretrain_lr=1e-3)
    assert np.allclose([p.peak_lr * 10 for p in a.pilots], [p.peak_lr for p in b.pilots])


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"space": SearchSpace()}, "peak_lr", "is required"),
        ({"n_pilots": 0}, "n_pilots", "must be in 1.."),
        ({"pilot_steps": 5}, "pilot_steps", "must be in 10.."),
        ({"pretrain_lr": float("nan")}, "pretrain_lr", "must be a number > 0"),
        ({"criterion": "mspe"}, "criterion", "decision or d_optimal"),
        ({"candidate_pilots": []}, "candidate_pilots", "no candidate pilots"),
        ({"prior": []}, "prior", "at least one prior"),
        ({"seed": -1}, "seed", "must be in 0.."),
    ],
)
def test_bad_settings_are_one_line_input_errors(kwargs, field, text) -> None:
    settings = {"space": SPACE, "pilot_steps": 600, **kwargs}
    with pytest.raises(InputError) as caught:
        design_pilots(**settings)
    assert field in caught.value.fields
    assert text in str(caught.value) and "\n" not in str(caught.value)


def test_prior_files_that_are_not_cpt_laws(tmp_path, pretrain_law_file) -> None:
    missing, broken = tmp_path / "missing.json", tmp_path / "broken.json"
    broken.write_text(json.dumps({"kind": "cpt"}))
    for path, text in ((missing, "not found"), (broken, "broken.json"),
                       (pretrain_law_file, "needs a CPT law")):  # fmt: skip
        with pytest.raises(InputError) as caught:
            design_pilots(SPACE, pilot_steps=600, prior=[path])
        assert "prior" in caught.value.fields
        assert text in str(caught.value)


def test_a_users_own_prior_law(law_file) -> None:
    result = design_pilots(SPACE, Constraints(), pilot_steps=600, n_pilots=2, prior=[law_file])
    assert result.priors == ["law"]
    assert len(result.pilots) == 2


def test_pilot_length_is_mapped_onto_the_priors_pilots() -> None:
    # steps are multiples of the pilot length: 20x longer pilots, the same design (and the
    # same cost: the priors see runs as long as their own pilots)
    space = SearchSpace(peak_lr=(3e-4, 1e-3), replay_ratio=(0.0, 0.4), families=["wsd"])
    short = design_pilots(space, pilot_steps=1000, n_pilots=3)
    long = design_pilots(space, pilot_steps=20000, n_pilots=3)
    assert [p.name for p in long.pilots] == [p.name for p in short.pilots]
    assert all(p.steps == 20000 for p in long.pilots)


def test_resample_keeps_the_shape() -> None:
    lr = Schedule(family="wsd", peak_lr=1e-3, steps=200, warmup_fraction=0.1).lr_array()
    stretched = resample(lr, 2000)
    assert stretched.size == 2000
    assert stretched.max() == pytest.approx(lr.max(), rel=1e-12)  # interpolation, no overshoot
    # the share of steps at the peak is kept to within one original step at each of the
    # plateau's two ends (interpolation blurs each transition over one original step)
    assert np.mean(stretched >= 0.999e-3) == pytest.approx(np.mean(lr >= 0.999e-3), abs=2 / 200)


def test_written_configs_are_the_pilots(design, tmp_path) -> None:
    paths = write_pilot_configs(design, tmp_path / "pilots")
    assert [p.name.split("-")[0] for p in paths] == ["1", "2", "3", "4", "5"]
    for path, pilot in zip(paths, design.pilots, strict=True):
        config = load_config(path)
        assert config.replay_ratio == pytest.approx(pilot.replay_ratio, abs=1e-12)  # YAML
        assert config.schedule.lr_array().max() == pytest.approx(pilot.peak_lr, rel=1e-12)
        assert config.schedule.lr_array().size == pilot.steps
        assert config.schedule.family == pilot.family
