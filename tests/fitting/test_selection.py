"""Model selection: the one-standard-error rule, translated starts, and choosing the
generating variant back from law-generated pilots (a known answer)."""

from __future__ import annotations

import numpy as np
import pytest

from cptopt.fitting.estimator import LawFitter
from cptopt.fitting.rows import one_standard_error_choice
from cptopt.fitting.selection import translate_start
from cptopt.law.fitted import SelectionRow
from cptopt.law.forms import make_law
from cptopt.law.scenario import InputNeeds, scenario_of
from cptopt.testing import REFERENCE_S2, synthetic_pilots


def _row(form: str, n_params: int, per_pilot: list[float]) -> SelectionRow:
    mean = float(np.mean(per_pilot))
    return SelectionRow(
        form=form,
        annealing="mpl",
        lam=None,
        tied=False,
        n_params=n_params,
        cv_general=mean,
        cv_domain=mean,
        cv_mean=mean,
        cv_memory=mean,
        cv_per_pilot={str(i): value for i, value in enumerate(per_pilot)},
    )


def test_one_standard_error_rule_prefers_fewer_parameters_within_noise():
    best = _row("big", 20, [0.010, 0.010, 0.010])
    close = _row("small", 16, [0.0095, 0.0110, 0.0101])  # +0.02 % on average, SE 0.05 %
    far = _row("tiny", 12, [0.020, 0.021, 0.019])  # +1 % with SE 0.06 %: clearly worse
    chosen, errors = one_standard_error_choice([best, close, far], lambda r: (r.n_params,))
    assert chosen is close
    # paired SE of the per-pilot differences to the best row: std(ddof=1) / sqrt(3)
    assert errors[0] == 0.0
    assert errors[1] == pytest.approx(np.std([-0.0005, 0.001, 0.0001], ddof=1) / np.sqrt(3))


def test_one_standard_error_rule_keeps_the_best_when_the_gap_is_clear():
    best = _row("big", 20, [0.010, 0.011, 0.009])
    worse = _row("small", 16, [0.015, 0.016, 0.014])  # 0.5 % worse on every pilot: SE 0
    chosen, _ = one_standard_error_choice([worse, best], lambda r: (r.n_params,))
    assert chosen is best


def test_the_rows_are_not_mutated():
    rows = [_row("a", 20, [0.01, 0.01]), _row("b", 10, [0.0101, 0.0099])]
    before = [row.model_dump() for row in rows]
    one_standard_error_choice(rows, lambda r: (r.n_params,))
    assert [row.model_dump() for row in rows] == before


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_pilots("exp", REFERENCE_S2, lam=0.99)


def test_translated_start_reproduces_the_source_where_forms_coincide(synthetic):
    """share at a1 = 0 is exp at a1 = 0: the translated start must give the same curve."""
    exp_law = make_law("exp", "general", True, True)
    share_law = make_law("share", "general", True, True)
    data = scenario_of(synthetic).fit_data("general", InputNeeds(0.99))
    values = np.array([{**REFERENCE_S2["general"], "a1": 0.0}[name] for name in exp_law.names])
    start = translate_start(exp_law, values, share_law)
    np.testing.assert_allclose(
        share_law.evaluate(start, data.areas), exp_law.evaluate(values, data.areas), rtol=1e-12
    )
    paper_law = make_law("paper", "general", True, True)
    paper_start = translate_start(exp_law, values, paper_law)
    assert paper_start[paper_law.names.index("a1")] == 0.0
    for spec, value in zip(paper_law.specs, paper_start, strict=True):
        assert spec.lower <= value <= spec.upper


@pytest.mark.slow
def test_auto_chooses_the_generating_memory_back():
    """Pilots generated with S2 at lambda 0.98: of every memory, CV picks lambda 0.98."""
    pilots = synthetic_pilots("exp", REFERENCE_S2, lam=0.98, noise=0.001, seed=4)
    # every memory is a candidate only when asked (the default is multi-power); the
    # curves follow Eq. 4, whose domain power law advances with the CPT area
    fitter = LawFitter(form="exp", n_starts=2, annealing="auto", domain_forward="advance")
    law = fitter.fit(pilots).law_
    assert (law.annealing, law.lam) == ("s2", 0.98)
    memories = {(row.annealing, row.lam) for row in law.selection}
    assert memories == {("s2", 0.98), ("s2", 0.99), ("s2", 0.995), ("s2", 0.999), ("mpl", None)}
    assert sum(row.chosen for row in law.selection) == 1
