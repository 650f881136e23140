"""Scenarios: one per kind of pilot, decided once (from the pilots or from a law file), the
one owner of a run's inputs, the fit data, what the pilots covered and the report steps."""

from __future__ import annotations

import numpy as np
import pytest

from cptopt import Schedule, load_manifest
from cptopt.exceptions import InputError
from cptopt.law.scenario import (
    CptScenario,
    InputNeeds,
    PretrainScenario,
    scenario_of,
    scenario_type,
)

WSD = Schedule(family="wsd", peak_lr=1e-3, steps=1000, warmup_steps=20)


def test_the_kind_decides_the_scenario(unannealed_manifest, pretrain_manifest):
    cpt = scenario_of(load_manifest(unannealed_manifest))
    pretrain = scenario_of(load_manifest(pretrain_manifest))
    assert isinstance(cpt, CptScenario) and cpt.validation_sets == ("general", "domain")
    assert isinstance(pretrain, PretrainScenario) and pretrain.validation_sets == ("loss",)
    assert scenario_type("cpt") is CptScenario and scenario_type("pretrain") is PretrainScenario
    with pytest.raises(InputError, match="kind == 'mid', must be one of cpt, pretrain"):
        scenario_type("mid")
    assert cpt.replay_terms and not pretrain.replay_terms
    assert cpt.coverage.replay_ratios == [0.0, 0.25, 0.5] and pretrain.coverage.checkpoints == []


def test_a_law_files_scenario_builds_the_inputs_its_pilots_did(fitted_law, unannealed_manifest):
    """Decided from the pilots at fit time or from the law file later: the same scenario,
    so a prediction of a pilot's own run sees the inputs the fit saw."""
    pilots = load_manifest(unannealed_manifest)
    at_fit, from_file = scenario_of(pilots), fitted_law.scenario
    assert from_file.coverage == at_fit.coverage and from_file.lr_reference == at_fit.lr_reference
    assert from_file.domain_tokens == at_fit.domain_tokens
    np.testing.assert_array_equal(from_file.history.lr, at_fit.history.lr)
    needs = InputNeeds(None, history=True, steps=True)
    for run in pilots.runs:
        steps = run.general.steps
        fit_side = at_fit.inputs(at_fit.pilot_run(run), steps, needs)
        planned = from_file.run(run.cpt_lr, run.replay_ratio, run.checkpoint)
        law_side = from_file.inputs(planned, steps, needs)
        for name in ("s1_pt", "s2_pt", "s1_cpt", "s2_cpt", "s1_shift"):
            np.testing.assert_array_equal(getattr(law_side, name), getattr(fit_side, name))
        np.testing.assert_array_equal(law_side.history.area, fit_side.history.area)


def test_cpt_fit_data_pools_each_pilot_and_the_pt_points(unannealed_manifest):
    scenario = scenario_of(load_manifest(unannealed_manifest))
    pilots = scenario.pilots
    data = scenario.fit_data("general", InputNeeds(0.99), "all")
    on_curves = sum(len(run.general) for run in pilots.runs)
    assert (data.run_index >= 0).sum() == on_curves and (data.run_index < 0).any()
    only_checkpoint = scenario.fit_data("general", InputNeeds(0.99), "checkpoint")
    assert (only_checkpoint.step[only_checkpoint.run_index < 0] == 3200).all()
    assert (scenario.fit_data("general", InputNeeds(0.99), "none").run_index >= 0).all()
    with pytest.raises(InputError, match="pt_points == 'some'"):
        scenario.fit_data("general", InputNeeds(0.99), "some")


def test_pretraining_fit_data_is_each_runs_loss_after_its_warmup(pretrain_manifest):
    scenario = scenario_of(load_manifest(pretrain_manifest))
    data = scenario.fit_data("loss", InputNeeds(0.995))
    # cosine_24000 logs a point at step 2160, inside the warmup: kept, not fitted
    assert (data.step > 2160).all() and data.loss.size == 171 + 170 + 95
    assert (data.areas.s1_cpt == 0).all() and (data.areas.s1_pt > 0.3).all()
    assert scenario.run_names == ["cosine_24000", "constant_24000", "wsdcon_9"]
    with pytest.raises(InputError, match="one validation set, 'loss'"):
        scenario.fit_data("general", InputNeeds(0.995))


def test_each_scenario_says_which_options_a_planned_run_takes(fitted_law, pretrain_law):
    cpt, pretrain = fitted_law.scenario, pretrain_law.scenario
    run = cpt.planned(WSD, 0.25, tokens_per_step=1024)
    assert run.checkpoint == "unannealed" and run.corpus_tokens_per_step == 1024
    assert run.report_steps().tolist() == list(range(0, 1001, 100))
    with pytest.raises(InputError, match=r"steps \(the steps to report\) must lie in 0\.\.1000"):
        run.report_steps([1200])
    with pytest.raises(InputError, match="replay_ratio is required"):
        cpt.planned(WSD)
    with pytest.raises(InputError, match="checkpoint == 'final': unknown"):
        cpt.planned(WSD, 0.25, checkpoint="final")
    planned = pretrain.planned(WSD, tokens_per_step=4096)
    assert planned.warmup_steps == 20 and planned.report_steps()[0] == 21
    for option in ({"checkpoint": "final"}, {"domain_tokens": 1e6}):
        with pytest.raises(InputError, match="a pre-training schedule has no"):
            pretrain.planned(WSD, **option)
    # the bundled pre-training pilots do not say their tokens per step: nothing to flag
    flags = pretrain.coverage_flags(peak_lr=1e-3, steps=30000, tokens_per_step=4096)
    assert flags == [
        "peak LR 0.001 outside the pilots' 0.0003..0.0003",
        "30000 steps beyond the longest pilot (24000): 1.2x the longest fitted run",
    ]


def test_a_points_prediction_does_not_depend_on_the_points_evaluated_with_it(
    unannealed_manifest,
):
    """The interval calibration evaluates every left-out pilot's points in one call
    (``fitting/assemble.interval_scale``): each point's prediction, for a batch of
    parameter vectors, must be what it is when its pilot's points are evaluated alone."""
    from cptopt.fitting.optimise import Problem
    from cptopt.law.forms import make_law
    from cptopt.law.scenario import InputNeeds

    scenario = scenario_of(load_manifest(unannealed_manifest))
    law = make_law("relax", "domain", True, True, "mpl", domain_forward="frozen", lr_power=True)
    data = scenario.fit_data("domain", InputNeeds(None, True, True), "all")
    problem = Problem(law, data, 1e-3)
    batch = np.array([values for values, _ in problem.screen(np.random.default_rng(5), 4)])
    together = law.evaluate(batch, data.areas)
    for run in np.unique(data.run_index[data.run_index >= 0]):
        mask = data.run_index == run
        alone = law.evaluate(batch, data.areas.take(mask))
        np.testing.assert_allclose(alone, together[:, mask], rtol=1e-13, atol=0)
