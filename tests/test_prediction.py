"""Predicting a pre-training schedule from a law fitted to pre-training pilots (the one
prediction path: the law's scenario decides what a run is)."""

from __future__ import annotations

import numpy as np
import pytest

import cptopt
from cptopt import Schedule, fit
from cptopt.exceptions import InputError
from cptopt.prediction import predict
from cptopt.testing import REFERENCE_PRETRAIN, pretrain_curve, synthetic_pretrain_pilots

WSD = Schedule(
    family="wsd",
    peak_lr=3e-4,
    steps=9000,
    warmup_steps=500,
    decay_start_step=7000,
    decay_shape="exponential",
    min_lr=3e-5,
)


@pytest.fixture(scope="module")
def synthetic_law():
    return fit(synthetic_pretrain_pilots(REFERENCE_PRETRAIN), annealing="mpl1", seed=1)


def test_a_new_schedule_is_predicted_as_the_law_says(synthetic_law):
    steps = np.array([1000, 5000, 8000, 9000])
    prediction = predict(synthetic_law, WSD, steps=steps)
    np.testing.assert_allclose(
        prediction.loss.mean, pretrain_curve(REFERENCE_PRETRAIN, WSD, steps), rtol=1e-5
    )
    assert prediction.loss.steps == steps.tolist() and prediction.warmup_steps == 500
    assert prediction.loss.final == pytest.approx(prediction.loss.mean[-1])
    assert all(lo <= m <= hi for lo, m, hi in zip(*_band(prediction), strict=True))
    assert prediction.flags == [
        "9000 steps beyond the longest pilot (6000): 1.5x the longest fitted run"
    ]
    assert not prediction.in_range and prediction.kind == "pretrain"


def _band(prediction):
    return prediction.loss.lower, prediction.loss.mean, prediction.loss.upper


def test_default_steps_start_after_the_warmup_and_end_at_the_last(synthetic_law):
    prediction = predict(synthetic_law, WSD)
    assert prediction.loss.steps[0] == 501 and prediction.loss.steps[-1] == 9000
    assert len(prediction.loss.steps) == 11
    assert prediction.loss.initial == pytest.approx(prediction.loss.mean[0])


def test_intervals_widen_beyond_the_longest_pilot(pretrain_law):
    def width(steps: int) -> float:
        schedule = Schedule(family="cosine", peak_lr=3e-4, steps=steps, warmup_steps=2160)
        loss = predict(pretrain_law, schedule).loss
        return np.log(loss.final_upper / loss.final_lower)

    assert width(72000) > 1.5 * width(24000)


def test_flags_name_what_the_pilots_did_not_cover(pretrain_law):
    schedule = Schedule(family="constant", peak_lr=1e-3, steps=72000, warmup_steps=2160)
    prediction = predict(pretrain_law, schedule, tokens_per_step=4096)
    assert prediction.flags == [
        "peak LR 0.001 outside the pilots' 0.0003..0.0003",
        "72000 steps beyond the longest pilot (24000): 3.0x the longest fitted run",
    ]


def test_a_custom_schedule_takes_its_warmup_from_its_peak(synthetic_law):
    lr = WSD.lr_array()
    custom = Schedule(family="custom", lr=tuple(lr.tolist()))
    steps = [600, 9000]
    ours = predict(synthetic_law, custom, steps=steps)
    assert ours.warmup_steps == 499  # the LR first reaches its peak at update 500
    explicit = predict(synthetic_law, custom, steps=steps, warmup_steps=500)
    np.testing.assert_allclose(
        explicit.loss.mean, predict(synthetic_law, WSD, steps=steps).loss.mean
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"steps": [400, 9000]},
            r"steps \(the steps to report\) must lie in 501\.\.9000 \(after the 500-step",
        ),
        ({"steps": [9001]}, r"steps \(the steps to report\) must lie in 501\.\.9000"),
        ({"warmup_steps": 9000}, r"warmup_steps == 9000, must be in 0\.\.8999"),
        ({"level": 1.0}, "level"),
    ],
)
def test_bad_requests_are_one_line_errors(synthetic_law, options, message):
    with pytest.raises(InputError, match=message):
        predict(synthetic_law, WSD, **options)


def test_each_kind_of_law_predicts_its_own_kind_of_run(synthetic_law, fitted_law):
    with pytest.raises(InputError, match="a pre-training schedule has no replay_ratio"):
        predict(synthetic_law, WSD, 0.25)
    with pytest.raises(InputError, match="replay_ratio is required for a CPT run"):
        predict(fitted_law, WSD)
    with pytest.raises(InputError, match="warmup_steps: only for a pre-training run"):
        predict(fitted_law, WSD, 0.25, warmup_steps=10)
    with pytest.raises(InputError, match="a pre-training schedule has no checkpoint"):
        predict(synthetic_law, WSD, checkpoint="final")


def test_the_public_predict_dispatches_on_the_laws_kind(synthetic_law, tmp_path):
    direct = predict(synthetic_law, WSD, steps=[1000, 9000])
    assert cptopt.predict(synthetic_law, WSD, steps=[1000, 9000]) == direct
    config = tmp_path / "pt.yaml"
    config.write_text(f"schedule: {WSD.model_dump_json(exclude_none=True)}\n")
    assert cptopt.predict(synthetic_law, config, steps=[1000, 9000]) == direct
    with pytest.raises(InputError, match="a pre-training schedule has no replay_ratio"):
        cptopt.predict(synthetic_law, WSD, 0.25)
    config.write_text(f"schedule: {WSD.model_dump_json(exclude_none=True)}\nreplay_ratio: 0.2\n")
    with pytest.raises(InputError, match=r"pt\.yaml: replay_ratio: a pre-training run has no"):
        cptopt.predict(synthetic_law, config)


def test_an_lr_drop_deeper_than_any_pilots_is_flagged(pretrain_law):
    """The pilots' lowest LR after their warmup is 3e-5 (the cosine's end)."""
    common = {"peak_lr": 3e-4, "steps": 24000, "warmup_steps": 2160}
    to_zero = predict(pretrain_law, Schedule(family="cosine", **common))
    assert to_zero.flags == [
        "lowest LR 0 below the pilots' lowest after their warmup (3e-05): an LR drop deeper "
        "than any pilot's"
    ]
    as_deep = Schedule(family="wsd", decay_start_step=20000, min_lr=3e-5, **common)
    assert predict(pretrain_law, as_deep).flags == []


def test_intervals_widen_where_a_schedule_anneals_unlike_any_pilot(pretrain_law):
    """A drop to 0.1 x peak at step 8000 (the pilots dropped to 0.3 x there, or decayed
    slowly): 2,000 steps later the nearest pilot at the same forward area, the two-stage
    one, is at depth 0.7 against 0.9, a gap of 0.2, which adds the fit's SD per unit of gap
    to the interval; a pilot's own schedule gets nothing added."""
    drop = Schedule(
        family="step",
        peak_lr=3e-4,
        steps=16000,
        warmup_steps=2160,
        milestones=(8000,),
        step_factor=0.1,
    )
    cosine = Schedule(family="cosine", peak_lr=3e-4, steps=24000, warmup_steps=2160, min_lr=3e-5)
    unmeasured = pretrain_law.model_copy(update={"depth_sd": None})
    z = 1.6448536269514722  # the 90 % interval's normal quantile

    def half(law, schedule, step):
        loss = predict(law, schedule, steps=[step]).loss
        return np.log(loss.upper[0] / loss.mean[0])

    extra = np.sqrt(half(pretrain_law, drop, 10000) ** 2 - half(unmeasured, drop, 10000) ** 2)
    assert extra == pytest.approx(z * pretrain_law.depth_sd * 0.2, rel=1e-3)
    assert half(pretrain_law, cosine, 20000) == pytest.approx(
        half(unmeasured, cosine, 20000), rel=1e-9
    )


def test_the_law_file_keeps_what_the_pilots_annealed(pretrain_law, tmp_path):
    anneal = pretrain_law.anneal
    assert anneal.lowest_lr == pytest.approx(3e-5) and anneal.warmup_steps == [2160] * 3
    assert [max(path.depth) for path in anneal.paths] == pytest.approx([0.9, 0.0, 0.7])
    loaded = cptopt.load_law(pretrain_law.save(tmp_path / "law.json"))
    assert loaded.anneal == pretrain_law.anneal and loaded.depth_sd == pretrain_law.depth_sd


def test_a_law_file_without_the_anneal_record_predicts_without_the_gap_term(pretrain_law):
    """Schema-5 files written before cptopt kept how the pilots annealed: no gap term, no
    deeper-drop flag, the rest unchanged."""
    older = pretrain_law.model_copy(update={"anneal": None, "depth_sd": None})
    cosine = Schedule(family="cosine", peak_lr=3e-4, steps=24000, warmup_steps=2160)
    old, new = predict(older, cosine), predict(pretrain_law, cosine)
    assert old.flags == [] and len(new.flags) == 1
    np.testing.assert_allclose(old.loss.mean, new.loss.mean, rtol=1e-12)
    assert np.all(np.asarray(old.loss.upper) <= np.asarray(new.loss.upper))
