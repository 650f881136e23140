"""Selection rows: the candidates of each set side by side, and the one-standard-error rule.

What :mod:`cptopt.fitting.selection` compares (and the law file's ``selection`` table records):
each candidate fit as a :class:`Candidate`, the two sets' candidates of one variant as one
:class:`~cptopt.law.records.SelectionRow` (:func:`merged_rows`), and the rule that chooses
among rows within the noise of pilot CV (:func:`one_standard_error_choice`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cptopt.fitting.crossval import SetResult
from cptopt.fitting.jobs import Variant
from cptopt.law.fitted import SelectionRow


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


def fewest_parameters(row: SelectionRow) -> tuple:
    return (row.n_params, row.cv_mean)


def row_key(row: SelectionRow) -> tuple:
    return (row.form, row.annealing, row.lam, row.tied, row.lr_power)


def row_variant(row: SelectionRow) -> Variant:
    return Variant(row.form, row.lam, row.annealing, row.tied, row.lr_power)


@dataclass(frozen=True)
class Candidate:
    """What the selection keeps of one candidate fit of one validation set."""

    variant: Variant
    cv_error: float | None
    cv_per_run: dict[int, float]
    n_params: int
    values: np.ndarray
    length_rms: float | None = None

    @staticmethod
    def of(variant: Variant, result: SetResult) -> Candidate:
        return Candidate(
            variant,
            result.cv_error,
            result.cv_per_run(),
            len(result.law.names),
            result.best.values,
            result.length_rms,
        )


def prior_preference(validation_set: str) -> Callable[[SelectionRow], tuple]:
    """The 1-SE preference: fewest parameters, then for the domain set the smaller 2x
    length-extrapolation error (measured on the pilots: the domain law is the one that has
    to carry 1,000-step pilots to longer runs)."""

    def preference(row: SelectionRow) -> tuple:
        if validation_set == "general":
            return (row.n_params, row.cv_mean)
        length = row.length_rms_domain
        return (row.n_params, np.inf if length is None else length, row.cv_mean)

    return preference


def in_order(preferred: tuple[str, ...]) -> Callable[[SelectionRow], tuple]:
    """A 1-SE preference: rows named (``form``) earlier in ``preferred`` first."""
    return lambda row: (preferred.index(row.form), row.cv_mean)


def set_row(candidate: Candidate) -> SelectionRow:
    """A candidate of one set as a selection row (its own CV as the row's CV)."""
    variant = candidate.variant
    per_pilot = {str(run): error for run, error in sorted(candidate.cv_per_run.items())}
    cv = candidate.cv_error if candidate.cv_error is not None else float("nan")
    return SelectionRow(
        form=variant.form,
        annealing=variant.annealing,
        lam=variant.lam,
        tied=variant.tied,
        lr_power=variant.lr_power,
        n_params=candidate.n_params,
        cv_general=None,
        cv_domain=None,
        cv_mean=cv,
        cv_memory=cv,
        cv_per_pilot=per_pilot,
        length_rms_domain=candidate.length_rms,
    )


def merged_rows(
    per_set: dict[str, list[Candidate]], shared_folds: list[int], tied_shared: int = 0
) -> list[SelectionRow]:
    """One row per variant: the two sets' candidates side by side (None where a variant
    was fitted for one set only)."""
    variants = list(dict.fromkeys(c.variant for cs in per_set.values() for c in cs))
    rows = []
    for variant in variants:
        mine = {
            name: next((c for c in cs if c.variant == variant), None)
            for name, cs in per_set.items()
        }
        present = {name: c for name, c in mine.items() if c is not None}
        cv = {name: c.cv_error for name, c in present.items()}
        values = [v for v in cv.values() if v is not None]
        cv_mean = float(np.mean(values)) if values else float("nan")
        runs = sorted({run for c in present.values() for run in c.cv_per_run})
        per_run = {
            run: float(
                np.mean([c.cv_per_run[run] for c in present.values() if run in c.cv_per_run])
            )
            for run in runs
        }
        in_shared = [per_run[run] for run in shared_folds if run in per_run]
        own = {
            name: {str(run): e for run, e in sorted(c.cv_per_run.items())}
            for name, c in present.items()
        }
        counts = {name: c.n_params for name, c in present.items()}
        rows.append(
            SelectionRow(
                form=variant.form,
                annealing=variant.annealing,
                lam=variant.lam,
                tied=variant.tied,
                lr_power=variant.lr_power,
                n_params=sum(counts.values()) - (len(variant.shared) if variant.tied else 0),
                n_params_general=counts.get("general", 0),
                n_params_domain=counts.get("domain", 0),
                cv_general=cv.get("general"),
                cv_domain=cv.get("domain"),
                cv_mean=cv_mean,
                cv_memory=float(np.mean(in_shared)) if in_shared else cv_mean,
                cv_per_pilot={str(run): e for run, e in per_run.items()},
                cv_per_pilot_general=own.get("general", {}),
                cv_per_pilot_domain=own.get("domain", {}),
                length_rms_domain=present["domain"].length_rms if "domain" in present else None,
            )
        )
    return rows


def variant_key(variant: Variant) -> tuple:
    return (variant.form, variant.annealing, variant.lam, variant.tied, variant.lr_power)
