"""The search's batch path builds the same inputs as the scenario builds for one run.

:class:`~cptopt.search.shapes.FinalAreas` is the vectorised twin of
:meth:`~cptopt.law.scenario.CptScenario.inputs` (closed-form S2, scaled drop histories,
per-shape step sums). On every bundled CPT domain (cpt-code with one and two checkpoints,
cpt-cyr with a domain corpus small enough that long runs repeat it) and for every kind of
input a law reads, both give the same numbers for many random searched settings, from
named checkpoints and from a PT step no pilot started from. Pre-training runs (pt-mpl25)
have no batch path: nothing searches them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cptopt import load_manifest
from cptopt.law.annealing import ANNEALINGS
from cptopt.law.scenario import InputNeeds, scenario_of
from cptopt.search.shapes import FinalAreas

PILOTS = Path(__file__).resolve().parents[2] / "examples" / "pilots"
#: What a law may read besides the areas: S2 memories, the drop history (multi-power), the
#: per-step LRs (a shift driven by LR^q), and both.
NEEDS = {
    "s2": InputNeeds(0.995),
    "mpl": InputNeeds(None, history=True),
    "s2-lr-power": InputNeeds(0.999, steps=True),
    "mpl-lr-power": InputNeeds(None, history=True, steps=True),
}
#: The areas, exactly the same function of the schedule in both paths.
AREA_FIELDS = ("s1_pt", "s2_pt", "s1_cpt", "s2_cpt", "replay_ratio", "s1_shift")


def _both_paths(manifest: str | Path, needs: InputNeeds, batch_of: Callable, schedule_of: Callable):
    """Random searched settings: the batch's inputs, and each one's own."""
    scenario = scenario_of(load_manifest(PILOTS / manifest))
    labels = list(scenario.coverage.checkpoints)
    states = [scenario.checkpoint_state(name, needs.lam) for name in labels]
    labels.append("pt2400")  # a PT step the search may try (no pilot started there)
    states.append(scenario.state_at(2400, needs.lam))
    batch = batch_of(40, checkpoints=len(states), max_steps=4000)
    batched = FinalAreas.for_scenario(scenario, needs, states)(batch)
    singles = []
    for i in range(len(batch)):
        row = batch.row(i)
        schedule = schedule_of(row)
        index = int(row["checkpoint"])
        run = scenario.run(
            schedule.lr_array(), row["replay_ratio"], labels[index], state=states[index]
        )
        singles.append(scenario.inputs(run, np.array([row["steps"]]), needs))
    return scenario, batched, singles


@pytest.mark.parametrize("needs", list(NEEDS))
@pytest.mark.parametrize("manifest", ["unannealed.yaml", "both_checkpoints.yaml", "cyr.yaml"])
def test_batch_and_single_run_inputs_agree(manifest, needs, random_batch, row_schedule):
    scenario, batched, singles = _both_paths(manifest, NEEDS[needs], random_batch, row_schedule)
    if manifest == "cyr.yaml":  # the domain corpus is small: long runs repeat it
        repeated = np.array([s.s1_shift[0] < s.s1_cpt[0] for s in singles])
        assert scenario.domain_tokens and repeated.any() and not repeated.all()
    for name in AREA_FIELDS:
        single = np.array([getattr(s, name)[0] for s in singles])
        np.testing.assert_allclose(getattr(batched, name), single, rtol=1e-12, atol=0, err_msg=name)
    if NEEDS[needs].steps:
        # the per-step LR sums a shift driven by LR^q reads, at a q != 1
        for weighted in (False, True):
            q = np.array([[0.7]])
            single = np.concatenate([s.steps.power_sums(q, weighted)[0][0] for s in singles])
            together = batched.steps.power_sums(q, weighted)[0][0]
            np.testing.assert_allclose(together, single, rtol=1e-12, atol=0)


@pytest.mark.parametrize("manifest", ["unannealed.yaml", "both_checkpoints.yaml", "cyr.yaml"])
def test_batch_and_single_run_drop_histories_give_the_same_annealing(
    manifest, random_batch, row_schedule
):
    """Both paths bin old drops (law/drops.py); the batch keeps the PT->CPT boundary drop
    as its own pair, the single run bins it with the CPT drops, so their multi-power
    amounts agree to the binning's accuracy, not to rounding."""
    _, batched, singles = _both_paths(manifest, NEEDS["mpl"], random_batch, row_schedule)
    memory = ANNEALINGS["mpl"]()
    for rate, gamma, zeta in ((300.0, 0.2, 0.3), (40.0, 0.6, 0.2)):
        shape = {"rate": np.array([rate]), "gamma": np.array([gamma]), "zeta": np.array([zeta])}
        pt, cpt = memory.amounts(shape, batched)
        for i, single in enumerate(singles):
            pt_single, cpt_single = (np.ravel(x)[0] for x in memory.amounts(shape, single))
            assert pt[i] == pytest.approx(pt_single, rel=1e-7, abs=1e-15)
            assert cpt[i] == pytest.approx(cpt_single, rel=1e-7)


@pytest.mark.parametrize("annealed", [False, True])
def test_from_a_long_pt_history_both_paths_give_the_same_annealing(
    tmp_path, random_batch, row_schedule, annealed
):
    """From a checkpoint after a PT history of HISTORY_NODES_MIN_PT updates or more, the
    single run bins its CPT drops in the long history's two-pair bins, and so does the
    batch: their CPT amounts agree to rounding, their PT amounts (shared nodes against each
    setting's own bins) to the binning's accuracy. Settings from a short history (PT step
    2400) are among them. From a checkpoint at LR 0 (``annealed``) there are no nodes and
    both keep the one-pair bins: both amounts agree to the binning's accuracy."""
    from cptopt.law.drops import HISTORY_NODES_MIN_PT
    from cptopt.schedules import Schedule

    steps = HISTORY_NODES_MIN_PT + 10_000
    lr = Schedule(family="cosine", peak_lr=3e-3, steps=steps, warmup_steps=500).lr_array()
    rows = ["step,lr,loss_general,loss_domain", "0,0,5.6,5.5"]
    rows += [f"{k},{float(lr[k - 1])!r},," for k in range(1, steps + 1)]
    (tmp_path / "pretrain.csv").write_text("\n".join(rows) + "\n")
    manifest = (PILOTS / "unannealed.yaml").read_text()
    manifest = manifest.replace("../data/", f"{(PILOTS.parent / 'data').as_posix()}/")
    manifest = manifest.replace(
        f"{(PILOTS.parent / 'data').as_posix()}/cpt-code/pretrain.csv",
        (tmp_path / "pretrain.csv").as_posix(),
    )
    manifest = manifest.replace("warmup_steps: 80", "warmup_steps: 500")
    checkpoint = steps if annealed else steps - 2_000
    assert (lr[checkpoint - 1] == 0) == annealed
    manifest = manifest.replace("unannealed: 3200", f"unannealed: {checkpoint}")
    (tmp_path / "pilots.yaml").write_text(manifest)
    scenario, batched, singles = _both_paths(
        tmp_path / "pilots.yaml", NEEDS["mpl"], random_batch, row_schedule
    )
    long = [s.history.n_nodes > 0 for s in singles]  # (the other checkpoint: PT step 2400)
    assert any(long) != annealed and not all(long)
    memory = ANNEALINGS["mpl"]()
    for rate, gamma, zeta in ((300.0, 0.2, 0.3), (40.0, 0.6, 0.2)):
        shape = {"rate": np.array([rate]), "gamma": np.array([gamma]), "zeta": np.array([zeta])}
        pt, cpt = (np.ravel(x) for x in memory.amounts(shape, batched))
        single = np.array([np.ravel(memory.amounts(shape, s)) for s in singles])
        # measured: PT 1.2e-6 (nodes against each setting's own bins), CPT 2.3e-9 (the
        # batch's CPT drops in the one-pair bins: ~1e-5)
        # (annealed: as the bundled checkpoints, 1e-7, above)
        np.testing.assert_allclose(pt, single[:, 0], rtol=1e-7 if annealed else 1e-5)
        np.testing.assert_allclose(cpt, single[:, 1], rtol=1e-7)
