"""One run is one pilot: entries whose curves coincide are refused, whatever files they read.

A Hugging Face run lives in ``out/trainer_state.json``, ``out/checkpoint-N/`` and
``out/runs/*/events...``; listing two of them would fit the run twice and let it leak into
its own leave-one-pilot-out CV. ``replicate: true`` declares a separate run whose numbers
happen to coincide (deterministic replicates).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from cptopt.exceptions import InputError
from cptopt.pilots.logs import LogData, Series
from cptopt.pilots.manifest import load_manifest
from cptopt.pilots.runs import shared_curve

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "tests" / "fixtures" / "real-logs"
CODE = ROOT / "examples" / "data" / "cpt-code"


def manifest(tmp_path: Path, *runs: str) -> Path:
    """A manifest of the real HF pilots' PT history and ``runs`` (YAML flow mappings)."""
    path = tmp_path / "pilots.yaml"
    lines = "".join(f"  - {run}\n" for run in runs)
    path.write_text(
        f"version: 1\npretrain: {{log: {REAL / 'hf-pt'}, checkpoints: {{unannealed: 400}}}}\n"
        f"runs:\n{lines}"
    )
    return path


def refused(path: Path) -> str:
    with pytest.raises(InputError) as error:
        load_manifest(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: runs ")
    return message


@pytest.mark.parametrize("other", ["hf-B/runs", "hf-B/checkpoint-200"])
def test_one_hf_run_read_from_two_places_is_refused_naming_both(tmp_path, other):
    # trainer_state.json holds float64 losses, the event files float32: the same run
    message = refused(
        manifest(
            tmp_path,
            f"{{log: {REAL / 'hf-B'}, replay_ratio: 0.25}}",
            f"{{log: {REAL / other}, replay_ratio: 0.25}}",
        )
    )
    assert re.search(
        rf"runs 'hf-B' \(.*hf-B\) and '{other}' \(.*{other}\) hold the same curves \(steps and "
        r"losses\), one run read from two places: list each pilot once \(a separate run with "
        r"identical numbers: 'replicate: true'\)$",
        message,
    )


def _checkpoint(tmp_path: Path, step: int) -> Path:
    """An HF output dir holding hf-B's final state and its state at ``step``."""
    out = tmp_path / "out"
    (out / f"checkpoint-{step}").mkdir(parents=True)
    shutil.copy(REAL / "hf-B" / "trainer_state.json", out / "trainer_state.json")
    state = json.loads((out / "trainer_state.json").read_text())
    state["log_history"] = [entry for entry in state["log_history"] if entry["step"] <= step]
    state["global_step"] = step
    (out / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(state))
    return out


def test_a_checkpoint_of_a_listed_run_is_that_run(tmp_path):
    out = _checkpoint(tmp_path, 100)
    message = refused(
        manifest(
            tmp_path,
            f"{{log: {out / 'checkpoint-100'}, replay_ratio: 0.25, name: early}}",
            f"{{log: {out}, replay_ratio: 0.25, name: final}}",
        )
    )
    assert "runs 'early' (" in message and "and 'final' (" in message
    assert "one is the start of the other, a checkpoint of one run: list each pilot" in message


def test_replicate_declares_a_separate_run_with_identical_numbers(tmp_path):
    for flagged in (0, 1):
        runs = [f"{{log: {REAL / 'hf-B'}, replay_ratio: 0.25", f"{{log: {REAL / 'hf-B/runs'}, "]
        runs[1] += "replay_ratio: 0.25"
        runs[flagged] += ", replicate: true"
        pilots = load_manifest(manifest(tmp_path, *(run + "}" for run in runs)))
        first, second = pilots.runs
        np.testing.assert_allclose(first.general.values, second.general.values, rtol=1e-7)


def test_identical_files_are_one_run_unless_declared_replicates(tmp_path):
    for name in ("a.csv", "b.csv"):
        shutil.copy(CODE / "runs" / "code_U_lr1x_r25_wsd_1000.csv", tmp_path / name)
    pretrain = f"{{log: {CODE / 'pretrain.csv'}, warmup_steps: 80, checkpoints: {{u: 3200}}}}"
    path = tmp_path / "pilots.yaml"
    runs = "  - {log: a.csv, replay_ratio: 0.25}\n  - {log: b.csv, replay_ratio: 0.25"
    path.write_text(f"version: 1\npretrain: {pretrain}\nruns:\n{runs}}}\n")
    assert "runs 'a' (a.csv) and 'b' (b.csv) read identical files (same SHA-256)" in refused(path)
    path.write_text(f"version: 1\npretrain: {pretrain}\nruns:\n{runs}, replicate: true}}\n")
    assert [run.name for run in load_manifest(path).runs] == ["a", "b"]


def test_pretraining_pilots_are_checked_too(tmp_path):
    for name in ("a.csv", "b.csv"):
        shutil.copy(ROOT / "examples" / "data" / "pt-mpl25" / "cosine_24000.csv", tmp_path / name)
    path = tmp_path / "pilots.yaml"
    schedule = "{family: cosine, peak_lr: 3.0e-4, steps: 24000, warmup_steps: 2160, min_lr: 3.0e-5}"
    path.write_text(
        "version: 1\nkind: pretrain\nruns:\n"
        + "".join(f"  - {{log: {name}, schedule: {schedule}}}\n" for name in ("a.csv", "b.csv"))
    )
    assert "read identical files" in refused(path)


def _log(general: list[tuple[int, float]], domain: list[tuple[int, float]] | None = None):
    def series(points: list[tuple[int, float]]) -> Series:
        steps, values = zip(*points, strict=True)
        return Series(np.array(steps), np.array(values, dtype=float))

    return LogData("x.csv", "", None, series(general), series(domain) if domain else None)


def test_curves_coincide_only_beyond_the_shared_start():
    start = [(0, 3.0), (10, 2.9)]
    assert shared_curve(_log(start), _log([*start, (20, 2.8)])) == "prefix"
    assert shared_curve(_log([*start, (20, 2.8)]), _log([*start, (20, 2.8)])) == "same"
    # float32 agreement is the same value (TensorBoard's precision); more is another run
    assert shared_curve(_log([(0, 3.0), (10, 2.9 + 1e-9)]), _log(start)) == "same"
    assert shared_curve(_log([(0, 3.0), (10, 2.9 + 1e-6)]), _log(start)) == ""
    # every run from one checkpoint starts at its loss: step 0 alone says nothing
    assert shared_curve(_log([(0, 3.0)]), _log(start)) == ""
    # runs that part after a shared warmup, or log other steps, are different runs
    assert shared_curve(_log([*start, (20, 2.8)]), _log([*start, (20, 2.7)])) == ""
    assert shared_curve(_log([(0, 3.0), (20, 2.9)]), _log(start)) == ""
    # every loss both log must coincide
    assert shared_curve(_log(start, start), _log(start, [(0, 3.0), (10, 2.5)])) == ""
    assert shared_curve(_log(start, start), _log(start)) == "same"


def test_bundled_pilots_that_share_their_warmup_are_different_runs():
    pilots = load_manifest(ROOT / "examples" / "pilots" / "unannealed.yaml")
    runs = {run.name: run for run in pilots.runs}
    const, cosine = runs["code_U_lr1x_r25_const_1000"], runs["code_U_lr1x_r25_cos_1000"]
    # deterministic training: the same first points (step 0 and the warmup), then apart
    np.testing.assert_array_equal(const.general.values[:3], cosine.general.values[:3])
    assert len(pilots.runs) == 5
