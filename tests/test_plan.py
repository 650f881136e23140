"""Training configs: the native schema, Hugging Face trainer keys, and one-line errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cptopt.exceptions import InputError
from cptopt.plan import TrainingConfig, config_from_mapping, load_config
from cptopt.schedules import Schedule

CONFIGS = Path(__file__).resolve().parent.parent / "examples" / "configs"
EXAMPLES = [
    "wsd-replay25.yaml",
    "hf-cosine-replay25.yaml",
    "wsd-lr1e-3-replay25.yaml",
    "const-noreplay.yaml",
    "wsd-3x-lr.yaml",
]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_configs_load(name: str) -> None:
    config = load_config(CONFIGS / name)
    assert isinstance(config, TrainingConfig)
    assert config.name == Path(name).stem
    assert 0 <= config.replay_ratio <= 1
    assert config.schedule.lr_array().size == config.schedule.n_steps


def test_law_key_is_relative_to_the_config(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    path = folder / "run.yaml"
    path.write_text(
        "schedule: {family: constant, peak_lr: 1.0e-3, steps: 100}\n"
        "replay_ratio: 0.1\nlaw: ../laws/law.json\n"
    )
    config = load_config(path)
    assert Path(config.law) == folder / "../laws/law.json"
    assert config.name == "run"


def _trainer(**keys: object) -> Schedule:
    return config_from_mapping({"replay_ratio": 0.2, **keys}, "t.yaml").schedule


def test_hf_cosine_maps_to_cosine_with_hf_warmup_rounding() -> None:
    schedule = _trainer(
        learning_rate=1e-3, max_steps=1000, lr_scheduler_type="cosine", warmup_ratio=0.015
    )
    expected = Schedule(family="cosine", peak_lr=1e-3, steps=1000, warmup_steps=15)
    assert schedule.n_warmup == math.ceil(0.015 * 1000) == 15
    np.testing.assert_allclose(schedule.lr_array(), expected.lr_array())


def test_hf_default_scheduler_is_linear() -> None:
    schedule = _trainer(learning_rate=2e-3, max_steps=500, warmup_steps=10)
    assert schedule.family == "linear"
    assert schedule.n_warmup == 10
    assert schedule.lr_array()[-1] == pytest.approx(0.0)


def test_hf_warmup_steps_below_one_is_a_ratio() -> None:
    schedule = _trainer(learning_rate=2e-3, max_steps=500, warmup_steps=0.05)
    assert schedule.n_warmup == 25


def test_hf_constant_with_warmup() -> None:
    schedule = _trainer(
        learning_rate=2e-3, max_steps=200, lr_scheduler_type="constant_with_warmup", warmup_steps=4
    )
    lr = schedule.lr_array()
    assert schedule.family == "constant"
    np.testing.assert_allclose(lr[:4], [5e-4, 1e-3, 1.5e-3, 2e-3])
    np.testing.assert_allclose(lr[4:], 2e-3)


def test_hf_cosine_with_min_lr_rate() -> None:
    schedule = _trainer(
        learning_rate=2e-3,
        max_steps=100,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": 0.1},
    )
    assert schedule.family == "cosine"
    assert schedule.lr_array()[-1] == pytest.approx(2e-4)


def test_hf_warmup_stable_decay() -> None:
    schedule = _trainer(
        learning_rate=2e-3,
        max_steps=1000,
        lr_scheduler_type="warmup_stable_decay",
        warmup_steps=20,
        lr_scheduler_kwargs={"num_decay_steps": 200, "decay_type": "linear"},
    )
    native = Schedule(family="wsd", peak_lr=2e-3, steps=1000, warmup_steps=20, decay_fraction=0.2)
    np.testing.assert_allclose(schedule.lr_array(), native.lr_array())


def test_hf_wsd_decay_defaults_to_cosine_as_in_transformers() -> None:
    schedule = _trainer(
        learning_rate=2e-3,
        max_steps=100,
        lr_scheduler_type="warmup_stable_decay",
        lr_scheduler_kwargs={"num_decay_steps": 20},
    )
    assert schedule.decay_shape == "cosine"
    assert schedule.decay_start == 80


BAD = [
    # (yaml text, key named in the message)
    ("schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100}\nreplay_ratio: high\n", "replay_ratio"),
    ("schedule: {family: wsd, peak_lr: 2.0e-3, steps: [1]}\nreplay_ratio: 0.2\n", "schedule.steps"),
    (
        "schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100}\nreplay_ratio: 0.2\nepochs: 3\n",
        "epochs",
    ),
    (
        "schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100, decay: 0.2}\nreplay_ratio: 0.2\n",
        "schedule.decay",
    ),
    ("schedule: {family: wsd, peak_lr: -2.0e-3, steps: 100}\nreplay_ratio: 0.2\n", "peak_lr"),
    ("learning_rate: -1.0e-3\nmax_steps: 100\nreplay_ratio: 0.2\n", "learning_rate"),
    ("schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100}\nreplay_ratio: 1.5\n", "replay_ratio"),
    ("schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100}\nreplay_ratio: -0.1\n", "replay_ratio"),
    ("schedule: {family: wsd, peak_lr: 2.0e-3, steps: 0}\nreplay_ratio: 0.2\n", "schedule.steps"),
    ("learning_rate: 1.0e-3\nmax_steps: 0\nreplay_ratio: 0.2\n", "max_steps"),
    ("learning_rate: 1.0e-3\nmax_steps: -1\nreplay_ratio: 0.2\n", "max_steps"),
    ("learning_rate: 1.0e-3\nreplay_ratio: 0.2\n", "max_steps"),
    ("schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100}\n", "replay_ratio"),
    (
        "schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100, warmup_steps: 100}\n"
        "replay_ratio: 0.2\n",
        "schedule",
    ),
    (
        "learning_rate: 1.0e-3\nmax_steps: 100\nlr_scheduler_type: polynomial\nreplay_ratio: 0\n",
        "lr_scheduler_type",
    ),
    (
        "learning_rate: 1.0e-3\nmax_steps: 100\nlr_scheduler_type: constant\nwarmup_steps: 5\n"
        "replay_ratio: 0\n",
        "lr_scheduler_type",
    ),
    (
        "learning_rate: 1.0e-3\nmax_steps: 100\nwarmup_steps: 5\nwarmup_ratio: 0.1\n"
        "replay_ratio: 0\n",
        "warmup_steps",
    ),
    (
        "learning_rate: 1.0e-3\nmax_steps: 100\nwarmup_steps: 500\nreplay_ratio: 0\n",
        "warmup_steps",
    ),
    (
        "learning_rate: 1.0e-3\nmax_steps: 100\nlr_scheduler_type: warmup_stable_decay\n"
        "lr_scheduler_kwargs: {num_decay_steps: 200}\nreplay_ratio: 0\n",
        "lr_scheduler_kwargs.num_decay_steps",
    ),
    (
        "learning_rate: 1.0e-3\nmax_steps: 100\nlr_scheduler_type: warmup_stable_decay\n"
        "replay_ratio: 0\n",
        "lr_scheduler_kwargs.num_decay_steps",
    ),
    (
        "learning_rate: 1.0e-3\nmax_steps: 100\nschedule: {family: constant}\nreplay_ratio: 0\n",
        "learning_rate",
    ),
    (
        "learning_rate: 1.0e-3\nmax_steps: 100\nlr_scheduler_kwargs: {power: 2}\nreplay_ratio: 0\n",
        "lr_scheduler_kwargs",
    ),
    (
        "schedule: {family: wsd, peak_lr: 2.0e-3, steps: 100}\nreplay_ratio: 0.2\n"
        "tokens_per_step: 0\n",
        "tokens_per_step",
    ),
]


@pytest.mark.parametrize(("text", "key"), BAD, ids=[key for _, key in BAD])
def test_bad_configs_give_one_line_naming_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad-config.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert f": {key}" in message or f"{key}:" in message, message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "empty"), ("- a\n- b\n", "mapping"), ("schedule: {family: [\n", "line")],
)
def test_unreadable_yaml_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=expected) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
