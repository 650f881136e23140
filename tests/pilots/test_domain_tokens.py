"""The manifest's ``domain_tokens``: the domain corpus size behind the repetition discount."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from cptopt.exceptions import InputError
from cptopt.law.scenario import scenario_of
from cptopt.pilots.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[2]
PRETRAIN = ROOT / "examples" / "data" / "cpt-code" / "pretrain.csv"
RUN = ROOT / "examples" / "data" / "cpt-code" / "runs" / "code_U_lr1x_r25_wsd_1000.csv"


def write(tmp_path: Path, top: str) -> Path:
    path = tmp_path / "pilots.yaml"
    path.write_text(
        f"version: 1\ntokens_per_step: 1024\n{top}"
        f"pretrain: {{log: {PRETRAIN}, warmup_steps: 80, checkpoints: {{unannealed: 3200}}}}\n"
        f"runs:\n  - {{log: {RUN}, replay_ratio: 0.25}}\n"
    )
    return path


def test_domain_tokens_reach_the_pilot_set(tmp_path):
    assert load_manifest(write(tmp_path, "")).domain_tokens is None
    pilots = load_manifest(write(tmp_path, "domain_tokens: 1245822\n"))
    assert pilots.domain_tokens == 1245822
    assert pilots.subset([pilots.runs[0].name]).domain_tokens == 1245822


def test_the_bundled_cyr_manifest_gives_its_corpus_size():
    pilots = load_manifest(ROOT / "examples" / "pilots" / "cyr.yaml")
    assert pilots.domain_tokens == 1245822 and len(pilots.runs) == 5


@pytest.mark.parametrize("value", ["0", "-5", "lots", "[1, 2]"])
def test_bad_domain_tokens_are_one_line_errors(tmp_path, value):
    with pytest.raises(InputError, match="domain_tokens") as error:
        load_manifest(write(tmp_path, f"domain_tokens: {value}\n"))
    assert "\n" not in str(error.value)


def test_domain_tokens_hold_at_least_one_steps_domain_tokens(tmp_path):
    # one run: 1024 tokens per step at replay 0.25, so 768 domain tokens per step
    assert load_manifest(write(tmp_path, "domain_tokens: 768\n")).domain_tokens == 768
    with pytest.raises(InputError) as error:
        load_manifest(write(tmp_path, "domain_tokens: 767\n"))
    assert re.fullmatch(
        r".*pilots\.yaml: domain_tokens == 767, less than one step's domain tokens \(768 in run "
        r"'code_U_lr1x_r25_wsd_1000': tokens_per_step x \(1 - replay_ratio\)\); give the domain "
        r"corpus's size in unique tokens",
        str(error.value),
    )


def test_domain_tokens_without_tokens_per_step_is_an_error_not_a_no_op(tmp_path):
    path = write(tmp_path, "domain_tokens: 1245822\n")
    path.write_text(path.read_text().replace("tokens_per_step: 1024\n", ""))
    with pytest.raises(InputError, match=r"domain_tokens needs tokens_per_step, which run 'code"):
        load_manifest(path)
    # a tokens_per_step of the run's own is enough
    path.write_text(
        path.read_text().replace("replay_ratio: 0.25}", "replay_ratio: 0.25, tokens_per_step: 512}")
    )
    assert load_manifest(path).runs[0].tokens_per_step == 512


def test_pilots_that_repeat_the_corpus_many_times_get_a_warning(tmp_path):
    # 1000 steps x 768 domain tokens = 768,000: 7.68 passes over a 100,000-token corpus
    pilots = load_manifest(write(tmp_path, "domain_tokens: 100000\n"))
    notes = scenario_of(pilots).notes()
    assert any(
        note.startswith(
            "domain_tokens: the pilots already pass over the domain corpus up to "
            "7.68 times (run 'code_U_lr1x_r25_wsd_1000')"
        )
        for note in notes
    ), notes
    few = scenario_of(load_manifest(write(tmp_path, "domain_tokens: 200000\n"))).notes()
    assert not [note for note in few if "pass over the domain corpus" in note]  # 3.84 times


def test_a_planned_run_is_held_to_the_same_bound(fitted_law):
    lr = np.full(100, 1e-3)
    scenario = fitted_law.scenario
    with pytest.raises(InputError, match=r"domain_tokens == 500, less than one step's .*\(768 in"):
        scenario.run(lr, 0.25, tokens_per_step=1024, domain_tokens=500)
    law = fitted_law.model_copy(update={"domain_tokens": 1e6})
    law.scenario.run(lr, 0.25)  # the pilots' 1024 tokens per step
    several = law.coverage.model_copy(update={"tokens_per_step": [512, 1024]})
    unknown = law.model_copy(update={"coverage": several})
    with pytest.raises(InputError, match="domain_tokens needs tokens_per_step, which the run"):
        unknown.scenario.run(lr, 0.25)
