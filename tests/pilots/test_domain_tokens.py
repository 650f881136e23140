"""The manifest's ``domain_tokens``: the domain corpus size behind the repetition discount."""

from __future__ import annotations

from pathlib import Path

import pytest

from cptopt.exceptions import InputError
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
