"""Which pilot to run next: the linear-Gaussian maths against hand-computed answers, and the
law plumbing against what its parts must do (repeats add nothing, the stopping rule)."""

from __future__ import annotations

from math import erf, exp, pi, sqrt

import numpy as np
import pytest

from cptopt import Schedule, load_manifest
from cptopt.design import next_pilot
from cptopt.design.pilot_model import LatentModel, eval_steps
from cptopt.design.pilot_value import (
    Decision,
    Draws,
    Outlook,
    information,
    posterior_covariance,
    sqrt_psd,
)
from cptopt.exceptions import InputError
from cptopt.law.uncertainty import jackknife_variance
from cptopt.search import Candidate, load_candidates

# -- the maths -------------------------------------------------------------------------


def _phi(x: float) -> float:
    return exp(-x * x / 2) / sqrt(2 * pi)


def _cdf(x: float) -> float:
    return 0.5 * (1 + erf(x / sqrt(2)))


def _gap(a: float, sigma: float) -> float:
    """E[max(0, X)] for X ~ N(-a, sigma^2)."""
    return sigma * _phi(a / sigma) - a * (1 - _cdf(a / sigma))


def test_information_matches_the_explicit_inverse() -> None:
    rng = np.random.default_rng(0)
    sensitivity = rng.normal(size=(7, 3))
    noise, offset = 0.02, 0.05
    covariance = noise**2 * np.eye(7) + offset**2 * np.ones((7, 7))
    expected = sensitivity.T @ np.linalg.solve(covariance, sensitivity)
    np.testing.assert_allclose(information(sensitivity, noise, offset), expected, rtol=1e-10)


def test_posterior_covariance_is_the_kalman_update_and_keeps_certain_directions() -> None:
    rng = np.random.default_rng(1)
    root = rng.normal(size=(3, 3))
    prior = root @ root.T
    h = rng.normal(size=(4, 3))
    info = h.T @ h / 0.1**2
    kalman = prior - prior @ h.T @ np.linalg.solve(h @ prior @ h.T + 0.1**2 * np.eye(4), h @ prior)
    np.testing.assert_allclose(posterior_covariance(prior, info), kalman, atol=1e-12)
    singular = np.diag([1.0, 0.0])  # the second direction is known exactly
    posterior = posterior_covariance(singular, np.eye(2))
    np.testing.assert_allclose(posterior, np.diag([0.5, 0.0]), atol=1e-12)


def test_one_dimensional_toy_against_the_closed_form() -> None:
    """Options f1 = z, f2 = a - z with z ~ N(0, 1): the regret now is E[max(0, f1 - f2)],
    after a pilot of variance ratio v it is that gap at sigma minus the gap at sigma sqrt(v)."""
    a, h, noise, tolerance = 0.4, 1.5, 1.0, 0.05
    decision = Decision(np.array([0.0, a]), np.array([[1.0], [-1.0]]), tolerance)
    draws = Draws.standard(1, 400_000, seed=2)
    result = Outlook(decision, np.eye(1), draws)
    sigma = 2.0
    assert result.regret == pytest.approx(_gap(a, sigma), rel=0.01)
    assert result.p_best == pytest.approx(_cdf((a + tolerance) / sigma), abs=0.005)
    info = information(np.array([[h]]), noise)  # h^2 / noise^2
    posterior = posterior_covariance(np.eye(1), info)
    assert posterior[0, 0] == pytest.approx(1 / (1 + h**2 / noise**2))
    shrink = sqrt(1 - posterior[0, 0])
    after = result.regret_after(posterior[None])[0]
    assert after == pytest.approx(_gap(a, sigma) - _gap(a, sigma * shrink), rel=0.02)


def test_no_information_changes_nothing_and_full_information_removes_all_regret() -> None:
    rng = np.random.default_rng(3)
    decision = Decision(rng.normal(0, 0.1, 30), rng.normal(size=(30, 4)), 1e-3)
    prior = np.eye(4)
    result = Outlook(decision, prior, Draws.standard(4, 2048, seed=0))
    zero = posterior_covariance(prior, information(np.zeros((12, 4)), 0.01, 0.02)[None])
    both = np.stack([zero[0], np.zeros((4, 4))])
    regret_after = result.regret_after(both)
    # the same draws through another summation order: equal up to rounding, not bit for bit
    assert regret_after[0] == pytest.approx(result.regret, rel=1e-9, abs=1e-12)
    assert regret_after[1] == pytest.approx(0.0, abs=1e-12)
    p_best_after = result.p_best_after(both)
    # a share of the 2,048 draws: a draw at the tolerance's edge may round either way
    assert p_best_after[0] == pytest.approx(result.p_best, abs=2 / 2048)
    assert p_best_after[1] == 1.0  # every draw picks the best: a count, exact
    assert result.regret > 0 and result.p_best < 1


def test_sqrt_psd_squares_back() -> None:
    rng = np.random.default_rng(4)
    root = rng.normal(size=(5, 3))
    matrix = root @ root.T  # rank 3
    np.testing.assert_allclose(sqrt_psd(matrix) @ sqrt_psd(matrix), matrix, atol=1e-10)


def test_eval_steps_end_at_the_last_step() -> None:
    np.testing.assert_array_equal(eval_steps(100, 40), [40, 80, 100])


# -- the law plumbing --------------------------------------------------------------------


def _with_spread(law, factor: float):
    """The law with its refits moved ``factor`` times as far from the fit."""
    sets = {}
    for vs in ("general", "domain"):
        fit = law.set_fit(vs)
        values = np.array(fit.values)
        replicas = values + factor * (np.array(fit.jackknife) - values)
        sets[vs] = fit.model_copy(update={"jackknife": replicas.tolist()})
    return law.model_copy(update=sets)


def _candidate(run, name: str) -> Candidate:
    schedule = Schedule(family="custom", lr=tuple(run.cpt_lr.tolist()))
    return Candidate(
        name=name, schedule=schedule, replay_ratio=run.replay_ratio, checkpoint=run.checkpoint
    )


def test_the_latent_space_has_exactly_the_jackknife_variance(fitted_law) -> None:
    model = LatentModel(fitted_law, "ensemble")
    variance = model.parameter_variance(np.eye(model.dimension))
    for vs in ("general", "domain"):
        expected = jackknife_variance(np.array(fitted_law.set_fit(vs).jackknife))
        np.testing.assert_allclose(variance[vs], expected, rtol=1e-10)


def test_ensemble_and_jacobian_agree_when_the_refits_are_close(fitted_law) -> None:
    # close enough for the law to be linear across them: the refits' E spans decades
    law = _with_spread(fitted_law, 1e-7)
    run_lr = Schedule(family="wsd", peak_lr=1e-3, steps=800, warmup_steps=16).lr_array()
    areas = law.run_inputs(law.scenario.run(run_lr, 0.1), eval_steps(800, 50))
    for vs in ("general", "domain"):
        _, secant = LatentModel(law, "ensemble").sensitivity(vs, areas, log=True)
        _, tangent = LatentModel(law, "jacobian").sensitivity(vs, areas, log=True)
        scale = np.abs(tangent).max()
        np.testing.assert_allclose(secant, tangent, atol=1e-3 * scale)


def test_a_repeat_of_a_pilot_adds_nothing(fitted_law, unannealed_manifest) -> None:
    pilots = load_manifest(unannealed_manifest)
    again = _candidate(pilots.runs[3], "again")  # the only r = 0 pilot
    shorter = Candidate(
        name="first half",
        schedule=Schedule(family="custom", lr=tuple(pilots.runs[3].cpt_lr[:500].tolist())),
        replay_ratio=pilots.runs[3].replay_ratio,
        checkpoint=pilots.runs[3].checkpoint,
    )
    moved = Candidate(
        name="other replay",
        schedule=again.schedule,
        replay_ratio=0.1,
        checkpoint=pilots.runs[3].checkpoint,
    )
    result = next_pilot(
        fitted_law, "0.3,0.7", pilots=pilots, candidate_pilots=[again, shorter, moved], top_k=None
    )
    by_name = {c.name: c for c in result.candidate_pilots}
    for name in ("again", "first half"):
        assert by_name[name].duplicate_of == pilots.runs[3].name
        # exact by construction (issue 19): a repeat's value is set, not subtracted
        assert by_name[name].value == 0.0
        assert by_name[name].expected_regret_after == result.expected_regret
        assert by_name[name].pins_down == []
    assert by_name["other replay"].value > 0
    assert result.best is not None and result.best.name == "other replay"
    # without the pilots the repeat is not recognised: the raw jackknife values it
    blind = next_pilot(fitted_law, "0.3,0.7", candidate_pilots=[again], top_k=None)
    assert blind.candidate_pilots[0].value > 0
    assert any("not recognised" in note for note in blind.notes)


def test_ranking_is_by_value_and_never_raises_the_regret(fitted_law) -> None:
    result = next_pilot(fitted_law, "0.5,0.5", top_k=None)
    values = [c.value for c in result.candidate_pilots]
    assert values == sorted(values, reverse=True)
    assert result.n_candidate_pilots == len(result.candidate_pilots)
    for item in result.candidate_pilots[:5]:
        assert 0 <= item.expected_regret_after <= result.expected_regret
        assert item.value == pytest.approx(result.expected_regret - item.expected_regret_after)
        assert 0 <= item.p_best_after <= 1
        assert item.tokens == item.steps * fitted_law.coverage.tokens_per_step[0]


def test_stopping_rule_fires_when_the_law_is_nearly_certain(fitted_law) -> None:
    certain = next_pilot(_with_spread(fitted_law, 1e-6), "0.3,0.7", top_k=1)
    assert certain.settled
    assert certain.expected_regret < certain.tolerance
    assert "below the tolerance" in certain.reason
    assert certain.candidate_pilots[0].value < certain.tolerance
    # the real law: some regret is left, and whether it matters is the tolerance's call
    strict = next_pilot(fitted_law, "0.3,0.7", top_k=1, tolerance=0.0, p_best_threshold=1.0)
    assert not strict.settled and strict.expected_regret > 0
    assert strict.candidate_pilots[0].value > 0
    assert "a pilot can still change the decision" in strict.reason
    lenient = next_pilot(fitted_law, "0.3,0.7", top_k=1, tolerance=1.0)
    assert lenient.settled and lenient.expected_regret == strict.expected_regret


def test_options_file_is_the_decision(fitted_law, tmp_path) -> None:
    from pathlib import Path

    options = load_candidates(Path(__file__).parents[2] / "examples/configs/candidates.csv")
    result = next_pilot(fitted_law, "0.3,0.7", options=options, top_k=2)
    assert result.n_options == len(options)
    assert result.recommendation in {c.name for c in options}
    assert len(result.candidate_pilots) == 2


def test_bad_settings_are_input_errors(fitted_law, unannealed_manifest) -> None:
    pilots = load_manifest(unannealed_manifest)
    candidate = _candidate(pilots.runs[0], "c")
    cases = [
        {"top_k": 0},
        {"tolerance": -1.0},
        {"p_best_threshold": 0.0},
        {"candidate_pilots": [candidate], "pilot_steps": 500},
        {"candidate_pilots": []},
        {"pilot_steps": 5},
    ]
    for kwargs in cases:
        with pytest.raises(InputError):
            next_pilot(fitted_law, "0.5,0.5", **kwargs)
    with pytest.raises(InputError, match="not the ones the law was fitted to"):
        next_pilot(fitted_law, "0.5,0.5", pilots=pilots.subset([pilots.runs[0].name]))
    no_refits = fitted_law.model_copy(
        update={
            vs: fitted_law.set_fit(vs).model_copy(update={"jackknife": []})
            for vs in ("general", "domain")
        }
    )
    with pytest.raises(InputError, match="leave-one-pilot-out"):
        next_pilot(no_refits, "0.5,0.5")


@pytest.mark.slow
def test_a_law_with_lr_power_and_a_corpus_size_is_answered(tmp_path) -> None:
    """The candidates' and options' areas carry what such a law reads (per-step LRs, the
    repetition discount): the answer agrees with predict on the recommended option."""
    from pathlib import Path

    from cptopt import fit, predict

    root = Path(__file__).resolve().parents[2]
    law = fit(root / "examples" / "pilots" / "cyr.yaml", lr_power=True)
    options = load_candidates(root / "examples/configs/candidates.csv")
    result = next_pilot(law, "0.5,0.5", options=options, top_k=2)
    chosen = next(c for c in options if c.name == result.recommendation)
    prediction = predict(law, chosen.schedule, chosen.replay_ratio)
    expected = 0.5 * prediction.general.final + 0.5 * prediction.domain.final
    assert result.objective == pytest.approx(expected, rel=1e-9)
