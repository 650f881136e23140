"""Model selection: choose the law variant by leave-one-pilot-out CV on the pilots only.

Three stages (:func:`select_variant`), each a comparison of CV errors:

1. **The annealing memory** (each lambda of S2, and the multi-power memory), fitted with the
   reference replay form (``exp``): the memory is a property of the optimiser and the
   schedule, not of the replay form. It is judged on the folds that test it, the pilots whose
   replay ratio another pilot shares (:func:`~cptopt.fitting.crossval.shared_replay_folds`):
   leaving out the only pilot at a replay ratio makes the fold an extrapolation in replay,
   whose error is the replay form's and would drown the memory's.
2. **The replay form**, with that memory, on every fold, by the one-standard-error rule
   (:func:`one_standard_error_choice`): a form with more parameters must beat a smaller one
   by more than the paired standard error; among equal counts the lowest CV wins.
3. **Tying** (``tie="auto"`` with the multi-power memory): the chosen form with its memory
   shared by the two sets, against the untied one, by the same rule.

Every candidate gets the cheap :data:`~cptopt.fitting.jobs.SELECTING` fit; the winner is
refitted at the :data:`~cptopt.fitting.jobs.FINAL` stage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from cptopt.fitting.crossval import SetResult, shared_replay_folds
from cptopt.fitting.jobs import (
    FINAL,
    SELECTING,
    FitSettings,
    Variant,
    WarmStarts,
    fit_variant,
)
from cptopt.law.fitted import SelectionRow
from cptopt.law.forms import LawForm, make_law
from cptopt.pilots.runs import PilotSet

#: Variants ``--law auto`` compares by leave-one-pilot-out CV error on the pilots.
AUTO_FORMS = ("paper", "exp", "share", "mix")
AUTO_LAMBDAS = (0.98, 0.99, 0.995, 0.999)
AUTO_ANNEALINGS = ("s2", "mpl")
#: The replay form stage 1 compares memories with (when it is a candidate).
REFERENCE_FORM = "exp"

Results = dict[Variant, dict[str, SetResult]]


def translate_start(source: LawForm, values: np.ndarray, target: LawForm) -> np.ndarray:
    """A start for ``target`` from another form's optimum on the same data.

    Coefficients with the same name mean the same thing in every form, except the replay
    rates: ``a1 = 0`` is every form's constant annealing credit, and ``a2`` is copied only
    between the forms whose shift multiplier is ``exp(-a2 r)``; otherwise it starts at the
    middle of its start range.
    """
    named = dict(zip(source.names, np.asarray(values, dtype=float).tolist(), strict=True))
    same_shift = {source.replay_form, target.replay_form} <= {"exp", "share"}
    start = []
    for spec in target.specs:
        middle = (spec.start_low + spec.start_high) / 2
        if spec.name == "a1":
            value = 0.0
        elif spec.name == "kappa":
            value = 1.0  # Eq. 4: every CPT step counts fully
        elif spec.name == "a2":
            value = named["a2"] if same_shift and "a2" in named else middle
        else:
            value = named.get(spec.name, middle)
        start.append(min(max(value, spec.lower), spec.upper))
    return np.array(start)


def selection_rows(results: Results, shared_folds: list[int]) -> list[SelectionRow]:
    """One row per variant tried: CV errors, parameter count, per-pilot CV errors.

    ``cv_memory`` is the CV error over the ``shared_folds`` only (all folds if empty).
    """
    rows = []
    for variant, per_set in results.items():
        per_run: dict[int, list[float]] = {}
        for result in per_set.values():
            for run, error in result.cv_per_run().items():
                per_run.setdefault(run, []).append(error)
        cv_general, cv_domain = per_set["general"].cv_error, per_set["domain"].cv_error
        cv_mean = float(np.mean([v for v in (cv_general, cv_domain) if v is not None]))
        in_shared = [np.mean(per_run[run]) for run in shared_folds if run in per_run]
        n_params = sum(len(result.law.names) for result in per_set.values())
        rows.append(
            SelectionRow(
                form=variant.form,
                annealing=variant.annealing,
                lam=variant.lam,
                tied=variant.tied,
                n_params=n_params - len(variant.shared),
                cv_general=cv_general,
                cv_domain=cv_domain,
                cv_mean=cv_mean,
                cv_memory=float(np.mean(in_shared)) if in_shared else cv_mean,
                cv_per_pilot={str(run): float(np.mean(v)) for run, v in sorted(per_run.items())},
            )
        )
    return rows


def one_standard_error_choice(
    rows: Sequence[SelectionRow], preference: Callable[[SelectionRow], tuple]
) -> tuple[SelectionRow, list[float]]:
    """The most preferred row whose CV is within one paired standard error of the best.

    CV errors on a handful of pilots are noisy, so a variant with more parameters must beat
    a smaller one by more than the noise of the comparison: the one-standard-error rule
    (Breiman et al. 1984; Hastie et al., ESL 7.10), with the standard error of the
    per-pilot differences to the best row (paired: the same pilots are left out).
    ``preference(row)`` sorts rows from most to least preferred. Returns the chosen row and
    each row's standard error (in the order of ``rows``).
    """
    best = min(rows, key=lambda row: row.cv_mean)
    pilots = sorted(best.cv_per_pilot)
    eligible, errors = [], []
    for row in rows:
        shared = [p for p in pilots if p in row.cv_per_pilot]
        diffs = np.array([row.cv_per_pilot[p] - best.cv_per_pilot[p] for p in shared])
        se = float(diffs.std(ddof=1) / np.sqrt(diffs.size)) if diffs.size > 1 else 0.0
        errors.append(se)
        if row is best or (diffs.size > 0 and diffs.mean() <= se):
            eligible.append(row)
    return min(eligible, key=preference), errors


def _fewest_parameters(row: SelectionRow) -> tuple:
    return (row.n_params, row.cv_mean)


def _key(row: SelectionRow) -> tuple:
    return (row.form, row.annealing, row.lam, row.tied)


def _variant(row: SelectionRow) -> Variant:
    return Variant(row.form, row.lam, row.annealing, row.tied)


class _Selection:
    """The state the stages share: the fits so far and their warm starts."""

    def __init__(
        self,
        pilots: PilotSet,
        replay_terms: bool,
        settings: FitSettings,
        pool: ProcessPoolExecutor | None,
    ) -> None:
        self.pilots, self.replay_terms = pilots, replay_terms
        self.settings, self.pool = settings, pool
        self.warm: WarmStarts = {}
        self.results: Results = {}
        self.shared_folds = shared_replay_folds(pilots)

    def fit(self, variant: Variant, n_starts: int | None = None) -> None:
        self.results[variant] = fit_variant(
            self.pilots,
            self.replay_terms,
            variant,
            self.warm,
            self.settings,
            SELECTING,
            pool=self.pool,
            n_starts=n_starts,
        )

    def rows(self) -> list[SelectionRow]:
        return selection_rows(self.results, self.shared_folds)

    def choose_memory(self, reference: str, memories: list[tuple[str, float | None]]) -> Variant:
        """Stage 1: the memory with the lowest CV over the shared-replay folds."""
        # S2 from the longest memory down, each warm-started from its neighbour.
        for annealing, lam in sorted(memories, key=lambda m: (m[0] != "s2", -(m[1] or 0.0))):
            self.fit(Variant(reference, lam, annealing))
        stage_one = [row for row in self.rows() if row.form == reference]
        return _variant(min(stage_one, key=lambda row: row.cv_memory))

    def choose_form(self, reference: Variant, forms: list[str]) -> tuple[SelectionRow, list]:
        """Stage 2: the replay forms with the reference's memory, by the 1-SE rule."""
        for form in forms:
            variant = Variant(form, reference.lam, reference.annealing)
            if variant in self.results:
                continue
            for name, result in self.results[reference].items():
                target = make_law(
                    form, name, self.replay_terms, self.pilots.pretrain.known, variant.annealing
                )
                self.warm[(form, variant.annealing, name)] = translate_start(
                    result.law, result.best.values, target
                )
            self.fit(variant, n_starts=2)  # the translated optimum, and a fresh start as a guard
        memory = (reference.annealing, reference.lam)
        compared = [row for row in self.rows() if (row.annealing, row.lam) == memory]
        return self._choose(compared)

    def choose_tie(self, untied: Variant) -> tuple[SelectionRow, list]:
        """Stage 3: the form with its memory tied between the two sets, or not."""
        self.fit(Variant(untied.form, untied.lam, untied.annealing, tied=True))
        compared = [row for row in self.rows() if (row.form, row.annealing) == (untied.form, "mpl")]
        return self._choose(compared)

    @staticmethod
    def _choose(compared: list[SelectionRow]) -> tuple[SelectionRow, list]:
        best, errors = one_standard_error_choice(compared, _fewest_parameters)
        return best, [(_key(row), se) for row, se in zip(compared, errors, strict=True)]


def select_variant(
    pilots: PilotSet,
    replay_terms: bool,
    variants: list[Variant],
    settings: FitSettings,
    *,
    tie: bool | str,
    pool: ProcessPoolExecutor | None,
) -> tuple[Variant, list[SelectionRow], dict[str, SetResult]]:
    """Choose among ``variants`` (see the module docstring) and fit the winner.

    Returns the chosen variant (tied when ``tie`` is True), every row compared (the chosen
    one marked, the last comparison's standard errors filled in) and the final fit.
    """
    forms = list(dict.fromkeys(v.form for v in variants))
    memories = list(dict.fromkeys((v.annealing, v.lam) for v in variants))
    selection = _Selection(pilots, replay_terms, settings, pool)
    reference = selection.choose_memory(
        REFERENCE_FORM if REFERENCE_FORM in forms else forms[0], memories
    )
    best, errors = selection.choose_form(reference, forms)
    if tie == "auto" and reference.annealing == "mpl":
        best, errors = selection.choose_tie(_variant(best))
    chosen = _variant(best)
    if tie is True:
        chosen = Variant(chosen.form, chosen.lam, chosen.annealing, tied=True)
    se_by_key = dict(errors)
    rows = [
        row.model_copy(
            update={"chosen": _key(row) == _key(best), "cv_gap_se": se_by_key.get(_key(row))}
        )
        for row in selection.rows()
    ]
    # The final fit starts from the chosen variant's own optimum, or, for a tied variant
    # fitted only now (tie=True), from the untied one.
    fitted = selection.results.get(chosen) or selection.results[chosen.untied()]
    warm = {(chosen.form, chosen.annealing, name): r.best.values for name, r in fitted.items()}
    final = fit_variant(pilots, replay_terms, chosen, warm, settings, FINAL, pool=pool)
    return chosen, rows, final
