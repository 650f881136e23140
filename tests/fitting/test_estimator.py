"""The estimator: parameter recovery on law-generated curves, settings, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from cptopt import InputError, NotFittedError, fit, predict
from cptopt.fitting.estimator import LawFitter
from cptopt.law.scenario import scenario_of
from cptopt.schedules import Schedule
from cptopt.testing import REFERENCE_MPL, REFERENCE_S2, REFERENCE_TIED, synthetic_pilots


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_pilots("exp", REFERENCE_S2, lam=0.99)


@pytest.mark.parametrize("seed", [0, 7])
def test_recovers_the_generating_law_from_two_starts(synthetic, seed):
    law = (
        LawFitter(form="exp", lam=0.99, seed=seed, jackknife=False, domain_forward="advance")
        .fit(synthetic)
        .law_
    )
    for validation_set in ("general", "domain"):
        fitted = law.set_fit(validation_set)
        assert fitted.mean_abs_error < 1e-5
        recovered = dict(zip(fitted.parameter_names, fitted.values, strict=True))
        # Well-identified coefficients to >= 3 significant digits. With one checkpoint and
        # no PT-phase points, C1*S2pt is a constant: only L0 - C1*S2pt is identified.
        for name in ("A", "alpha", "C2"):
            truth = REFERENCE_S2[validation_set][name]
            assert recovered[name] == pytest.approx(truth, rel=1e-3), name
        s2_pt = scenario_of(synthetic).checkpoint_state("ckpt", 0.99).s2_pt
        offset = REFERENCE_S2[validation_set]["L0"] - REFERENCE_S2[validation_set]["C1"] * s2_pt
        assert recovered["L0"] - recovered["C1"] * s2_pt == pytest.approx(offset, rel=1e-4)
    # And it predicts a schedule none of the pilots used.
    unseen = Schedule(family="wsd", peak_lr=1.2e-3, steps=800, warmup_steps=16, decay_fraction=0.3)
    truth = synthetic_pilots("exp", REFERENCE_S2, lam=0.99, configs=[(unseen, 0.1), (unseen, 0.2)])
    prediction = predict(law, unseen, 0.1, steps=truth.runs[0].general.steps)
    np.testing.assert_allclose(prediction.general.mean, truth.runs[0].general.values, rtol=1e-4)
    np.testing.assert_allclose(prediction.domain.mean, truth.runs[0].domain.values, rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 7])
def test_recovers_a_multi_power_law_from_two_starts(seed):
    """Checkpoint in the PT decay, so the PT credit (C1) is identified too."""
    pilots = synthetic_pilots("exp", REFERENCE_MPL, annealing="mpl", checkpoint_step=3600)
    law = (
        LawFitter(form="exp", annealing="mpl", seed=seed, jackknife=False, domain_forward="advance")
        .fit(pilots)
        .law_
    )
    assert law.annealing == "mpl" and law.lam is None
    for validation_set in ("general", "domain"):
        fitted = law.set_fit(validation_set)
        recovered = dict(zip(fitted.parameter_names, fitted.values, strict=True))
        assert set(recovered) == set(REFERENCE_MPL[validation_set])
        for name, truth in REFERENCE_MPL[validation_set].items():
            assert recovered[name] == pytest.approx(truth, rel=1e-4), name


def test_same_seed_same_law(synthetic):
    noisy = synthetic_pilots("exp", REFERENCE_S2, lam=0.99, noise=0.004, seed=1)
    first = LawFitter(form="exp", lam=0.99, seed=3).fit(noisy).law_
    second = LawFitter(form="exp", lam=0.99, seed=3).fit(noisy).law_
    assert first.general.values == second.general.values
    assert first.domain.jackknife == second.domain.jackknife


def test_noisy_fit_reports_noise_and_errorbars(synthetic):
    noisy = synthetic_pilots("exp", REFERENCE_S2, lam=0.99, noise=0.005, seed=2)
    law = LawFitter(form="exp", lam=0.99).fit(noisy).law_
    for fitted in (law.general, law.domain):
        assert 0.002 < fitted.noise < 0.01  # the robust SD sees the 0.5 % we added
        assert len(fitted.jackknife) == len(noisy.runs)
        assert all(p.stderr is not None for p in fitted.parameters)
        assert fitted.cv_error is not None and fitted.cv_error >= fitted.mean_abs_error * 0.5


def test_single_replay_ratio_fixes_replay_and_says_so():
    schedules = [
        (Schedule(family="constant", peak_lr=2e-3, steps=600, warmup_steps=10), 0.25),
        (Schedule(family="cosine", peak_lr=2e-3, steps=600, warmup_steps=10), 0.25),
        (Schedule(family="wsd", peak_lr=1e-3, steps=600, warmup_steps=10), 0.25),
    ]
    values = {
        k: {n: v for n, v in REFERENCE_S2[k].items() if n not in ("a1", "a2")} for k in REFERENCE_S2
    }
    pilots = synthetic_pilots("paper", values, lam=0.99, configs=schedules)
    law = LawFitter(form="paper", lam=0.99).fit(pilots).law_
    assert law.replay_terms is False
    assert "a1" not in law.general.parameter_names
    assert any("replay" in note and "fixed" in note for note in law.notes)


def test_too_few_points_is_an_input_error():
    schedule = Schedule(family="constant", peak_lr=2e-3, steps=20, warmup_steps=2)
    pilots = synthetic_pilots(
        "exp", REFERENCE_S2, lam=0.99, configs=[(schedule, 0.0), (schedule, 0.5)]
    )
    with pytest.raises(InputError, match="points for"):
        LawFitter(form="exp", lam=0.99).fit(pilots)


def test_invalid_settings_are_input_errors(synthetic):
    with pytest.raises(InputError, match="lam"):
        LawFitter(form="exp", lam=1.5).fit(synthetic)
    with pytest.raises(InputError, match="unknown law form"):
        LawFitter(form="nonsense", lam=0.99).fit(synthetic)
    with pytest.raises(InputError, match="annealing"):
        LawFitter(annealing="s3").check_settings()
    with pytest.raises(InputError, match="cannot be set with annealing mpl"):
        LawFitter(lam=0.99, annealing="mpl").check_settings()


def test_the_paper_law_defaults_to_the_papers_lambda():
    variants, _ = LawFitter(form="paper")._variants()
    assert [(v.form, v.lam, v.annealing) for v in variants] == [("paper", 0.999, "s2")]
    variants, _ = LawFitter(form="paper", annealing="mpl")._variants()
    assert [(v.lam, v.annealing) for v in variants] == [(None, "mpl")]


@pytest.mark.parametrize(
    ("setting", "value"),
    [("n_starts", 0), ("n_starts", 10**9), ("seed", -1), ("seed", 2**70), ("huber_delta", 0.0)],
)
def test_effort_out_of_bounds_is_refused_before_any_work(setting, value):
    with pytest.raises(InputError, match=setting):
        LawFitter(**{setting: value}).check_settings()


def test_reading_the_law_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError, match="call fit"):
        _ = LawFitter().law_


def test_fit_accepts_a_manifest_path(unannealed_manifest):
    law = fit(unannealed_manifest, form="exp", lam=0.995, jackknife=False)
    assert law.coverage.replay_ratios == [0.0, 0.25, 0.5]
    assert law.coverage.peak_lr_min == pytest.approx(6e-4)
    assert law.coverage.steps_max == 1000 and law.coverage.tokens_per_step == [1024]
    assert len(law.inputs) == 6 and all(len(i.sha256) == 64 for i in law.inputs)


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"form": "exp", "lam": 0.99}, id="fixed"),
        pytest.param({}, id="auto"),
        pytest.param({"tie": "auto"}, id="tie", marks=pytest.mark.slow),
    ],
)
def test_the_law_does_not_depend_on_the_number_of_workers(unannealed_manifest, settings):
    """The same computation whatever runs it: every fit, refit and random start is the same
    task in one process or spread over workers (exactness is the contract, the law file
    is compared whole)."""
    from cptopt import load_manifest

    pilots = load_manifest(unannealed_manifest)
    one = LawFitter(n_jobs=1, **settings).fit(pilots).law_
    for jobs in (2, 3):
        other = LawFitter(n_jobs=jobs, **settings).fit(pilots).law_
        assert other.model_dump() == one.model_dump()


def test_recovers_a_tied_law_and_stores_it_tied():
    pilots = synthetic_pilots("exp", REFERENCE_TIED, annealing="mpl", checkpoint_step=3600)
    law = (
        LawFitter(form="exp", annealing="mpl", tie=True, jackknife=False, domain_forward="advance")
        .fit(pilots)
        .law_
    )
    assert law.tied == ["rate", "gamma", "zeta"] and "(tied)" in law.annealing_description
    for validation_set in ("general", "domain"):
        fitted = law.set_fit(validation_set)
        recovered = dict(zip(fitted.parameter_names, fitted.values, strict=True))
        for name, truth in REFERENCE_TIED[validation_set].items():
            assert recovered[name] == pytest.approx(truth, rel=1e-4), name
    shared = [law.general.parameter_names.index(n) for n in law.tied]
    domain_shared = [law.domain.parameter_names.index(n) for n in law.tied]
    assert [law.general.values[i] for i in shared] == [law.domain.values[i] for i in domain_shared]


def test_invalid_tie_settings_are_input_errors(synthetic):
    with pytest.raises(InputError, match="tie"):
        LawFitter(tie="sometimes").fit(synthetic)
    with pytest.raises(InputError, match="multi-power"):
        LawFitter(form="exp", annealing="s2", tie=True).fit(synthetic)
    with pytest.raises(InputError, match="multi-power"):
        LawFitter(form="exp", lam=0.99, tie=True).fit(synthetic)
    assert LawFitter(form="exp", annealing="mpl", tie="yes")._variants()[1] is True


@pytest.mark.slow
def test_lr_power_forced_on_every_candidate_fits_and_predicts():
    """With LR power on every candidate (the shift driven by sum eta^q) the selection's
    replay-form comparison and the prediction both get the per-step LRs they need."""
    from pathlib import Path

    manifest = Path(__file__).resolve().parents[2] / "examples" / "pilots" / "cyr.yaml"
    law = fit(manifest, lr_power=True)
    assert law.general.lr_power and law.domain.lr_power
    schedule = Schedule(family="wsd", peak_lr=1e-3, steps=1000, warmup_steps=20)
    prediction = predict(law, schedule, 0.1)
    assert np.isfinite(prediction.general.mean).all() and prediction.domain.final > 0


def test_progress_names_each_stage_with_its_count(unannealed_manifest):
    """The fit reports through the callback it is given (the library prints nothing): the
    logs read k of n, the PT history, and each set's candidates k of n with the final fit
    last; counts only grow, from 0 to their total."""
    import threading

    from cptopt import load_manifest

    calls: list[tuple[str, int, int]] = []
    lock = threading.Lock()

    def progress(stage: str, done: int, total: int) -> None:
        with lock:
            calls.append((stage, done, total))

    pilots = load_manifest(unannealed_manifest, progress=progress)
    LawFitter(n_jobs=2).fit(pilots, progress=progress)
    stages = list(dict.fromkeys(stage for stage, _, _ in calls))
    assert stages[:2] == ["reading the pre-training history", "reading logs"]
    assert set(stages[2:]) == {"selecting the general law", "selecting the domain law"}
    for stage in stages:
        counts = [(done, total) for name, done, total in calls if name == stage]
        totals = {total for _, total in counts}
        assert len(totals) == 1, stage
        done = [d for d, _ in counts]
        assert done == sorted(done) and done[0] == 0 and done[-1] == totals.pop(), stage
    assert ("reading logs", 5, 5) in calls
    # general: 2 PT-point policies + the averaged law's fit; domain: the averaged law's fit
    assert ("selecting the general law", 3, 3) in calls
    assert ("selecting the domain law", 1, 1) in calls


def test_progress_of_a_fixed_variant_is_its_final_fit(unannealed_manifest):
    calls: list[tuple[str, int, int]] = []
    fit(unannealed_manifest, form="exp", lam=0.99, progress=lambda *a: calls.append(a))
    assert [c for c in calls if c[0] == "final fit"][-1] == ("final fit", 2, 2)
