"""The search library: vectorised evaluation, the study, the dense cross-check, rankings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cptopt import predict
from cptopt.exceptions import InfeasibleError, InputError
from cptopt.search import (
    Candidate,
    Constraints,
    SearchConfig,
    SearchSettings,
    SearchSpace,
    dense_optimum,
    load_candidates,
    load_search_config,
    rank_candidates,
    recommend,
)
from cptopt.search.evaluate import CheckpointChoice, Evaluator
from cptopt.search.models import SEARCH_FAMILIES, shape_schedule
from cptopt.search.shapes import unit_shape

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "examples" / "configs"
DATA = ROOT / "examples" / "data" / "cpt-code"

WEIGHTS = [(0.3, 0.7), (0.5, 0.5), (0.7, 0.3)]


def _objective(law, setting, w_general: float, w_domain: float) -> float:
    """The objective of a setting recomputed independently through ``predict``."""
    prediction = predict(
        law,
        setting.schedule(),
        replay_ratio=setting.replay_ratio,
        checkpoint=setting.checkpoint if law.pretrain.known else None,
    )
    return w_general * prediction.general.final + w_domain * prediction.domain.final


def test_unit_shape_is_exactly_the_schedule_array() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        family = int(rng.integers(len(SEARCH_FAMILIES)))
        steps = int(rng.integers(20, 3000))
        warmup = float(rng.uniform(0, 0.2))
        decay = float(rng.uniform(0.01, 0.6))
        schedule = shape_schedule(SEARCH_FAMILIES[family], steps, warmup, decay)
        n_warmup = int(round(warmup * steps))
        decay_start = steps - int(round(decay * steps)) if SEARCH_FAMILIES[family] == "wsd" else 0
        np.testing.assert_allclose(
            unit_shape(family, steps, n_warmup, decay_start), schedule.lr_array(), atol=1e-15
        )


@pytest.fixture(scope="module", params=["s2", "mpl", "mpl-power-repeats"])
def law_per_memory(request, unannealed_manifest):
    """The real pilots under each annealing memory (the two search paths), and with the
    shift driven by LR^q and a domain corpus small enough for long runs to repeat it."""
    from cptopt import fit

    annealing, *extra = request.param.split("-", 1)
    law = fit(
        unannealed_manifest, form="exp", annealing=annealing, n_starts=2, lr_power=bool(extra)
    )
    assert law.annealing == annealing
    if extra:
        assert law.needs_steps
        law = law.model_copy(update={"domain_tokens": 5e5})
    return law


def test_vectorised_final_losses_match_predict(law_per_memory, random_batch, row_schedule):
    """Both search paths (S2 closed form, scaled multi-power history) equal ``predict``."""
    fitted_law = law_per_memory
    name = fitted_law.scenario.checkpoint_name(None)
    state = fitted_law.scenario.checkpoint_state(name, fitted_law.lam)
    evaluator = Evaluator(fitted_law, [CheckpointChoice(name, state, None, None, True)], 0.4, 0.6)
    n = 24
    batch = random_batch(n)
    general, domain, objective = evaluator.losses(batch)
    for i in range(n):
        row = batch.row(i)
        schedule = row_schedule(row)
        reference = predict(fitted_law, schedule, replay_ratio=row["replay_ratio"])
        assert general[i] == pytest.approx(reference.general.final, rel=1e-10)
        assert domain[i] == pytest.approx(reference.domain.final, rel=1e-10)
        expected = 0.4 * reference.general.final + 0.6 * reference.domain.final
        assert objective[i] == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("weights", WEIGHTS)
def test_recommendation_within_1e4_of_the_dense_optimum(fitted_law, weights) -> None:
    result = recommend(fitted_law, weights)
    assert result.search.recommendation_source.startswith("study")
    setting = result.recommended.setting
    # the objective shown is the law's objective of the setting shown
    assert _objective(fitted_law, setting, *weights) == pytest.approx(
        result.recommended.objective, rel=1e-9
    )
    # an independent dense search of the same space
    dense_setting, dense_value, points = dense_optimum(fitted_law, weights)
    assert points > 10_000
    assert _objective(fitted_law, dense_setting, *weights) == pytest.approx(dense_value, rel=1e-9)
    gap = (result.recommended.objective - dense_value) / abs(dense_value)
    assert gap <= 1e-4
    assert result.search.dense_gap <= 1e-4
    assert result.search.polished_gap is not None and result.search.polished_gap <= 1e-4
    # and nothing in a random sample of the space beats it by more than that
    space = result.space
    rng = np.random.default_rng(1)
    for _ in range(20):
        probe = setting.model_copy(
            update={
                "peak_lr": float(np.exp(rng.uniform(*np.log(space.peak_lr)))),
                "replay_ratio": float(rng.uniform(*space.replay_ratio)),
            }
        )
        assert _objective(fitted_law, probe, *weights) >= result.recommended.objective * (1 - 1e-4)


def test_default_space_comes_from_the_pilots_and_is_reproducible(fitted_law) -> None:
    first = recommend(fitted_law, "0.3,0.7", settings=SearchSettings(trials=80, seed=7))
    second = recommend(fitted_law, "0.3,0.7", settings=SearchSettings(trials=80, seed=7))
    cov = fitted_law.coverage
    assert first.space.peak_lr == (cov.peak_lr_min, cov.peak_lr_max)
    assert first.space.steps[1] == cov.steps_max
    assert cov.peak_lr_min <= first.recommended.setting.peak_lr <= cov.peak_lr_max
    assert first.recommended.setting == second.recommended.setting
    assert first.search.study_best_objective == second.search.study_best_objective
    assert first.search.trials_complete == 80
    assert first.recommended.in_range == (not first.recommended.flags)


def test_extrapolation_is_opt_in_and_flagged(fitted_law) -> None:
    cov = fitted_law.coverage
    wide = recommend(
        fitted_law,
        "0.3,0.7",
        allow_extrapolation=True,
        settings=SearchSettings(trials=40),
        top_k=10,
    )
    assert wide.space.peak_lr[0] < cov.peak_lr_min and wide.space.peak_lr[1] > cov.peak_lr_max
    assert any("beyond the pilots' range" in note for note in wide.notes)
    for item in [wide.recommended, *wide.alternatives]:
        outside = not cov.peak_lr_min * 0.99 <= item.setting.peak_lr <= cov.peak_lr_max * 1.01
        assert outside == any("peak LR" in flag for flag in item.flags)
    explicit = recommend(
        fitted_law,
        "0.3,0.7",
        space=SearchSpace(peak_lr=(1e-4, 5e-3)),
        settings=SearchSettings(trials=40),
    )
    assert explicit.space.peak_lr == (1e-4, 5e-3)
    assert any("extrapolation" in note for note in explicit.notes)


def test_replay_is_fixed_with_a_reason_when_not_identifiable(fitted_law) -> None:
    ratios = sorted(fitted_law.coverage.replay_ratios)
    single = fitted_law.model_copy(
        update={
            "replay_terms": False,
            "coverage": fitted_law.coverage.model_copy(update={"replay_ratios": [ratios[1]]}),
        }
    )
    from cptopt.search.space import resolve_space

    space = resolve_space(single, SearchSpace(), Constraints(), False)
    assert space.replay_ratio == (ratios[1], ratios[1])
    assert "replay_ratio" not in space.distributions()
    assert any("single replay ratio" in note for note in space.notes)
    with pytest.raises(InputError, match="not identifiable"):
        resolve_space(single, SearchSpace(replay_ratio=(0.0, 0.5)), Constraints(), False)


def test_general_rise_and_epoch_constraints_hold(fitted_law) -> None:
    free = recommend(
        fitted_law,
        "0.2,0.8",
        constraints=Constraints(max_steps=2000),
        settings=SearchSettings(trials=60),
    )
    limit = free.recommended.general_rise - 0.02
    constrained = recommend(
        fitted_law,
        "0.2,0.8",
        constraints=Constraints(
            max_general_rise=limit, domain_tokens=2.0e6, max_epochs=0.4, max_steps=2000
        ),
        settings=SearchSettings(trials=60),
    )
    rec = constrained.recommended
    assert rec.feasible and not rec.violations
    assert rec.general_rise <= limit + 1e-9
    assert rec.domain_epochs is not None and rec.domain_epochs <= 0.4 + 1e-9
    assert rec.setting.steps <= 2000
    assert constrained.search.dense_gap <= 1e-4
    # a constraint that costs something: the objective cannot be better than unconstrained
    assert rec.objective >= free.recommended.objective * (1 - 1e-4)


def test_nothing_feasible_raises(fitted_law) -> None:
    with pytest.raises(InfeasibleError, match="max_general_rise"):
        recommend(
            fitted_law,
            "0.5,0.5",
            constraints=Constraints(max_general_rise=-5.0),
            settings=SearchSettings(trials=20),
        )


def test_budget_tokens_per_step_and_long_runs_are_flagged(fitted_law) -> None:
    result = recommend(
        fitted_law,
        "0.3,0.7",
        constraints=Constraints(max_tokens=3.0e6, tokens_per_step=2048),
        settings=SearchSettings(trials=40),
    )
    assert result.space.steps[1] == int(3.0e6 // 2048)
    rec = result.recommended
    assert rec.setting.steps * 2048 <= 3.0e6
    assert any("tokens per step 2048" in flag for flag in rec.flags)
    if rec.setting.steps > fitted_law.coverage.steps_max:
        assert any("beyond the longest pilot" in flag for flag in rec.flags)
    assert not rec.in_range
    thumbs = [b for b in result.baselines if b.label.startswith("thumb")]
    assert [round(b.setting.replay_ratio, 2) for b in thumbs] == [0.05, 0.1]
    assert all(b.setting.steps == result.space.steps[1] for b in thumbs)
    assert all(b.setting.peak_lr == fitted_law.coverage.peak_lr_max for b in thumbs)


def test_checkpoints_by_name_and_pt_step(fitted_law) -> None:
    if not fitted_law.pretrain.known:
        pytest.skip("needs the PT history")
    result = recommend(
        fitted_law,
        "0.3,0.7",
        space=SearchSpace(checkpoints=["unannealed", 4000]),
        settings=SearchSettings(trials=40),
    )
    assert result.space.checkpoints == ["unannealed", "pt4000"]
    assert result.recommended.setting.checkpoint in result.space.checkpoints
    for item in [result.recommended, *result.alternatives]:
        if item.setting.checkpoint == "pt4000":
            assert any("has no pilot run" in flag for flag in item.flags)
    with pytest.raises(InputError, match="PT step"):
        recommend(fitted_law, "0.3,0.7", space=SearchSpace(checkpoints=[10**7]))
    with pytest.raises(InputError, match="neither"):
        recommend(fitted_law, "0.3,0.7", space=SearchSpace(checkpoints=["nope"]))


def test_pareto_front_is_not_dominated(fitted_law) -> None:
    result = recommend(fitted_law, "0.5,0.5", pareto=True, settings=SearchSettings(trials=30))
    front = result.pareto
    assert front and len(front) >= 2
    for a in front:
        for b in front:
            dominated = b.general < a.general - 1e-9 and b.domain < a.domain - 1e-9
            assert not dominated
    # more weight on the general loss never raises the general loss of the optimum
    ordered = sorted(front, key=lambda p: p.w_general)
    assert all(x.general >= y.general - 1e-9 for x, y in zip(ordered, ordered[1:], strict=False))


def test_rank_candidates_decision_grid(fitted_law) -> None:
    candidates = load_candidates(CONFIGS / "candidates.csv")
    assert len(candidates) == 8
    ranking = rank_candidates(fitted_law, candidates, "0.3,0.7")
    objectives = [c.assessment.objective for c in ranking.candidates]
    assert objectives == sorted(objectives)
    assert [c.rank for c in ranking.candidates] == list(range(1, 9))
    total = sum(c.probability_best for c in ranking.candidates)
    assert total == pytest.approx(1.0)
    for item in ranking.candidates:
        a = item.assessment
        assert a.objective_lower <= a.objective <= a.objective_upper
        by_name = next(c for c in candidates if c.name == item.name)
        expected = predict(fitted_law, by_name.schedule, replay_ratio=by_name.replay_ratio)
        assert a.objective == pytest.approx(
            0.3 * expected.general.final + 0.7 * expected.domain.final, rel=1e-9
        )
    again = rank_candidates(fitted_law, candidates, "0.3,0.7")
    assert [c.probability_best for c in again.candidates] == [
        c.probability_best for c in ranking.candidates
    ]
    yaml_candidates = load_candidates(CONFIGS / "candidates.yaml")
    assert rank_candidates(fitted_law, yaml_candidates, (1, 1)).weights == (0.5, 0.5)


def test_candidates_violating_constraints_are_marked(fitted_law) -> None:
    short = Candidate(
        name="short",
        schedule=shape_schedule("wsd", 500, 0.02, 0.2, 1e-3),
        replay_ratio=0.25,
    )
    long = Candidate(
        name="long",
        schedule=shape_schedule("wsd", 3000, 0.02, 0.2, 1e-3),
        replay_ratio=0.25,
    )
    ranking = rank_candidates(
        fitted_law, [short, long], "0.5,0.5", constraints=Constraints(max_steps=1000)
    )
    marks = {c.name: c.assessment.violations for c in ranking.candidates}
    assert marks["short"] == []
    assert marks["long"] and "max_steps" in marks["long"][0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("candidates: []", "non-empty"),
        ("other: 1", "unknown key"),
        ("candidates:\n  - {schedule: {family: wsd}, replay_ratio: 0.1}", "peak_lr"),
        (
            "candidates:\n  - {schedule: {family: wsd, peak_lr: 1e-3, steps: 100},"
            " replay_ratio: 2}",
            "replay_ratio",
        ),
    ],
)
def test_bad_candidate_files(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_candidates(path)


def test_bad_candidate_csv(tmp_path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("name,family,peak_lr,steps,replay_ratio,colour\na,wsd,1e-3,100,0.1,red\n")
    with pytest.raises(InputError, match="unknown column"):
        load_candidates(path)
    path.write_text("name,family,peak_lr\na,wsd,1e-3\n")
    with pytest.raises(InputError, match="missing column"):
        load_candidates(path)


def test_search_config_example_and_validation(tmp_path) -> None:
    config = load_search_config(CONFIGS / "search.yaml")
    assert isinstance(config, SearchConfig)
    assert config.constraints.max_steps == 2000
    assert config.space.steps == (500, 2000)
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: {peak_lr: [2e-3, 1e-3]}\n")
    with pytest.raises(InputError, match="peak_lr"):
        load_search_config(bad)
    bad.write_text("spaces: {}\n")
    with pytest.raises(InputError, match="unknown key"):
        load_search_config(bad)


def test_bad_weights_are_input_errors(fitted_law) -> None:
    for weights in ("0.3", "a,b", "-1,2", "0,0", "0.2,0.3,0.5"):
        with pytest.raises(InputError):
            recommend(fitted_law, weights, settings=SearchSettings(trials=5))
    result = recommend(fitted_law, "3,7", settings=SearchSettings(trials=20))
    assert result.weights == pytest.approx((0.3, 0.7))
    assert any("normalised" in note for note in result.notes)


@pytest.mark.parametrize("sampler", ["cmaes", "qmc"])
def test_other_samplers_also_reach_the_optimum(fitted_law, sampler: str) -> None:
    result = recommend(fitted_law, "0.5,0.5", settings=SearchSettings(sampler=sampler, trials=96))
    assert result.search.sampler == sampler
    assert result.search.trials_complete == 96
    assert result.search.polished_gap is not None and result.search.polished_gap <= 1e-4


def test_gp_sampler_needs_torch_or_runs(fitted_law) -> None:
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(InputError, match="PyTorch"):
            recommend(fitted_law, "0.5,0.5", settings=SearchSettings(sampler="gp", trials=20))
        return
    result = recommend(fitted_law, "0.5,0.5", settings=SearchSettings(sampler="gp", trials=30))
    assert result.search.trials_complete == 30
