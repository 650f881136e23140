"""Model selection: choose the law variant by leave-one-pilot-out CV on the pilots only.

Stages (:func:`select_variant`), each a comparison of CV errors:

1. **The annealing memory** (each lambda of S2, and the multi-power memory), fitted with the
   reference replay form (``exp``): the memory is a property of the optimiser and the
   schedule, not of the replay form. It is judged on the folds that test it, the pilots whose
   replay ratio another pilot shares (:func:`~cptopt.fitting.crossval.shared_replay_folds`):
   leaving out the only pilot at a replay ratio makes the fold an extrapolation in replay,
   whose error is the replay form's and would drown the memory's. Skipped with one memory
   (the default: multi-power).
2. **The replay form of each validation set**, with that memory, on every fold, by the
   one-standard-error rule (:func:`one_standard_error_choice`) on that set's own CV: a form
   with more parameters must beat a smaller one by more than the paired standard error;
   among equal counts the lowest CV wins. The two laws are separate fits, so nothing ties
   their forms.
3. **The LR power of each set** (``lr_power``: the shift driven by ``sum eta^q``), against
   the LR area, by the same rule: one parameter more must clearly pay.
4. **Tying** (``tie="auto"`` with the multi-power memory, both sets on one form): the
   memory shared by the two sets, against the untied laws, by the same rule.

Every candidate gets the cheap :data:`~cptopt.fitting.jobs.SELECTING` fit; the winners are
refitted at the :data:`~cptopt.fitting.jobs.FINAL` stage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np

from cptopt.fitting.crossval import SetResult, shared_replay_folds
from cptopt.fitting.jobs import (
    FINAL,
    SELECTING,
    FitSettings,
    Variant,
    WarmStarts,
    fit_variant,
    law_for,
)
from cptopt.law.fitted import SelectionRow
from cptopt.law.forms import LawForm
from cptopt.pilots.runs import VALIDATION_SETS, PilotSet

#: Variants ``--law auto`` compares by leave-one-pilot-out CV error on the pilots. The
#: paper's Eq. 8 form is not among them (still available by name): its pilot CV was 5-10x
#: the other forms' on every bundled pilot set, a gap no domain is likely to close.
AUTO_FORMS = ("exp", "share", "mix", "odds")
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
    middle of its start range. ``q = 1`` is the LR area (the form without LR power).
    """
    named = dict(zip(source.names, np.asarray(values, dtype=float).tolist(), strict=True))
    same_shift = {source.replay_form, target.replay_form} <= {"exp", "share"}
    start = []
    for spec in target.specs:
        middle = (spec.start_low + spec.start_high) / 2
        if spec.name == "a1":
            value = 0.0
        elif spec.name in ("kappa", "q"):
            value = named.get(spec.name, 1.0)  # Eq. 4: every CPT step counts fully
        elif spec.name == "a2":
            value = named["a2"] if same_shift and "a2" in named else middle
        else:
            value = named.get(spec.name, middle)
        start.append(min(max(value, spec.lower), spec.upper))
    return np.array(start)


def selection_rows(results: Results, shared_folds: list[int]) -> list[SelectionRow]:
    """One row per variant tried: CV errors, parameter counts, per-pilot CV errors.

    ``cv_memory`` is the CV error over the ``shared_folds`` only (all folds if empty). A
    variant fitted for one set only has None for the other.
    """
    rows = []
    for variant, per_set in results.items():
        per_run: dict[int, list[float]] = {}
        for result in per_set.values():
            for run, error in result.cv_per_run().items():
                per_run.setdefault(run, []).append(error)
        cv = {name: per_set[name].cv_error if name in per_set else None for name in VALIDATION_SETS}
        present = [v for v in cv.values() if v is not None]
        cv_mean = float(np.mean(present)) if present else float("nan")
        in_shared = [np.mean(per_run[run]) for run in shared_folds if run in per_run]
        own = {
            name: {str(run): error for run, error in sorted(per_set[name].cv_per_run().items())}
            if name in per_set
            else {}
            for name in VALIDATION_SETS
        }
        counts = {
            name: len(per_set[name].law.names) if name in per_set else 0 for name in VALIDATION_SETS
        }
        rows.append(
            SelectionRow(
                form=variant.form,
                annealing=variant.annealing,
                lam=variant.lam,
                tied=variant.tied,
                lr_power=variant.lr_power,
                n_params=sum(counts.values()) - len(variant.shared),
                n_params_general=counts["general"],
                n_params_domain=counts["domain"],
                cv_general=cv["general"],
                cv_domain=cv["domain"],
                cv_mean=cv_mean,
                cv_memory=float(np.mean(in_shared)) if in_shared else cv_mean,
                cv_per_pilot={str(run): float(np.mean(v)) for run, v in sorted(per_run.items())},
                cv_per_pilot_general=own["general"],
                cv_per_pilot_domain=own["domain"],
            )
        )
    return rows


def set_view(row: SelectionRow, validation_set: str) -> SelectionRow:
    """``row`` with one validation set's CV in place of the mean (per-set comparisons)."""
    return row.model_copy(
        update={
            "cv_mean": getattr(row, f"cv_{validation_set}"),
            "cv_per_pilot": getattr(row, f"cv_per_pilot_{validation_set}"),
            "n_params": getattr(row, f"n_params_{validation_set}"),
        }
    )


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
    return (row.form, row.annealing, row.lam, row.tied, row.lr_power)


def _variant(row: SelectionRow) -> Variant:
    return Variant(row.form, row.lam, row.annealing, row.tied, row.lr_power)


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
        #: Paired standard errors of the last comparisons: per set, and of the tie stage.
        self.set_errors: dict[str, dict[tuple, float]] = {}
        self.errors: dict[tuple, float] = {}

    def fit(self, variant: Variant | dict[str, Variant], n_starts: int | None = None) -> None:
        """Fit a variant (or a variant per set, some sets only) and record the results."""
        variants = variant if isinstance(variant, dict) else dict.fromkeys(VALIDATION_SETS, variant)
        per_set = fit_variant(
            self.pilots,
            self.replay_terms,
            variants,
            self.warm,
            self.settings,
            SELECTING,
            pool=self.pool,
            n_starts=n_starts,
        )
        for name, result in per_set.items():
            self.results.setdefault(variants[name], {})[name] = result

    def rows(self) -> list[SelectionRow]:
        return selection_rows(self.results, self.shared_folds)

    def choose_memory(self, reference: str, memories: list[tuple[str, float | None]]) -> Variant:
        """Stage 1: the memory with the lowest CV over the shared-replay folds."""
        if len(memories) == 1:
            annealing, lam = memories[0]
            return Variant(reference, lam, annealing)
        # S2 from the longest memory down, each warm-started from its neighbour.
        for annealing, lam in sorted(memories, key=lambda m: (m[0] != "s2", -(m[1] or 0.0))):
            self.fit(Variant(reference, lam, annealing))
        stage_one = [row for row in self.rows() if row.form == reference]
        return _variant(min(stage_one, key=lambda row: row.cv_memory))

    def _translate(self, source: Variant, target: dict[str, Variant]) -> None:
        """Warm starts for ``target`` (per set) from ``source``'s optimum on each set."""
        for name, variant in target.items():
            if variant.warm_key(name) in self.warm:
                continue
            result = self.results[source][name]
            law = law_for(variant, name, self.pilots, self.replay_terms, self.settings)
            self.warm[variant.warm_key(name)] = translate_start(result.law, result.best.values, law)

    def choose_forms(self, reference: Variant, forms: list[str]) -> dict[str, Variant]:
        """Stage 2: each set's replay form with the reference's memory, by the 1-SE rule."""
        if reference not in self.results:
            self.fit(reference)
        for form in forms:
            variant = replace(reference, form=form)
            if variant in self.results:
                continue
            self._translate(reference, dict.fromkeys(VALIDATION_SETS, variant))
            self.fit(variant, n_starts=2)  # the translated optimum, and a fresh start as a guard
        memory = (reference.annealing, reference.lam)
        compared = [
            row for row in self.rows() if (row.annealing, row.lam) == memory and not row.lr_power
        ]
        return {name: self._choose_for(name, compared) for name in VALIDATION_SETS}

    def choose_lr_power(self, chosen: dict[str, Variant]) -> dict[str, Variant]:
        """Stage 3: each set's form with the shift driven by LR^q, against the LR area."""
        powered = {name: replace(variant, lr_power=True) for name, variant in chosen.items()}
        for name, variant in chosen.items():
            self._translate(variant, {name: powered[name]})
        self.fit(powered, n_starts=2)
        out = {}
        for name, variant in chosen.items():
            keys = {_key_of(variant), _key_of(powered[name])}
            compared = [row for row in self.rows() if _key(row) in keys]
            out[name] = self._choose_for(name, compared)
        return out

    def choose_tie(self, untied: Variant) -> Variant:
        """Stage 4: the variant with its memory tied between the two sets, or not."""
        self.fit(replace(untied, tied=True))
        compared = [
            row
            for row in self.rows()
            if _key(row) in {_key_of(untied), _key_of(replace(untied, tied=True))}
        ]
        best, errors = one_standard_error_choice(compared, _fewest_parameters)
        self.errors.update((_key(row), se) for row, se in zip(compared, errors, strict=True))
        return _variant(best)

    def _choose_for(self, name: str, compared: list[SelectionRow]) -> Variant:
        views = [set_view(row, name) for row in compared if getattr(row, f"cv_{name}") is not None]
        best, errors = one_standard_error_choice(views, _fewest_parameters)
        self.set_errors[name] = {_key(row): se for row, se in zip(views, errors, strict=True)}
        return _variant(best)


def _key_of(variant: Variant) -> tuple:
    return (variant.form, variant.annealing, variant.lam, variant.tied, variant.lr_power)


def select_variant(
    pilots: PilotSet,
    replay_terms: bool,
    variants: list[Variant],
    settings: FitSettings,
    *,
    tie: bool | str,
    lr_power: bool | str = "auto",
    pool: ProcessPoolExecutor | None,
) -> tuple[dict[str, Variant], list[SelectionRow], dict[str, SetResult]]:
    """Choose among ``variants`` (see the module docstring) and fit the winners.

    ``lr_power``: "auto" (stage 3 decides), True or False (every candidate with or without).
    Returns the variant chosen for each set (tied when ``tie`` is True, or when stage 4 chose
    it), every row compared (the chosen ones marked, the last comparisons' standard errors
    filled in) and the final fit.
    """
    forms = list(dict.fromkeys(v.form for v in variants))
    memories = list(dict.fromkeys((v.annealing, v.lam) for v in variants))
    selection = _Selection(pilots, replay_terms, settings, pool)
    reference = selection.choose_memory(
        REFERENCE_FORM if REFERENCE_FORM in forms else forms[0], memories
    )
    if lr_power is True:
        reference = replace(reference, lr_power=True)
    chosen = selection.choose_forms(reference, forms)
    if lr_power == "auto":
        chosen = selection.choose_lr_power(chosen)
    same = chosen["general"] == chosen["domain"]
    if tie == "auto" and reference.annealing == "mpl" and same:
        tied = selection.choose_tie(chosen["general"])
        chosen = dict.fromkeys(VALIDATION_SETS, tied)
    elif tie is True:
        chosen = {name: replace(variant, tied=True) for name, variant in chosen.items()}
    rows = []
    for row in selection.rows():
        marks = {name: _key(row) == _key_of(chosen[name]) for name in VALIDATION_SETS}
        se = [selection.set_errors.get(name, {}).get(_key(row)) for name in VALIDATION_SETS]
        se_value = selection.errors.get(_key(row), next((v for v in se if v is not None), None))
        rows.append(
            row.model_copy(
                update={
                    "chosen": all(marks.values()),
                    "chosen_general": marks["general"],
                    "chosen_domain": marks["domain"],
                    "cv_gap_se": se_value,
                }
            )
        )
    # The final fit starts from each chosen variant's own optimum (a tied variant fitted
    # only now, tie=True, from the untied one: fit_variant reads the untied warm keys).
    warm = {}
    for name, variant in chosen.items():
        fitted = selection.results.get(variant) or selection.results[variant.untied()]
        warm[variant.warm_key(name)] = fitted[name].best.values
    final = fit_variant(pilots, replay_terms, chosen, warm, settings, FINAL, pool=pool)
    return chosen, rows, final
