"""Model selection: choose the law variant by leave-one-pilot-out CV on the pilots only.

The comparisons of :func:`select_variant`, each of CV errors:

1. **The annealing memory** (each lambda of S2, and the multi-power memory), fitted with the
   reference replay form (``exp``): the memory is a property of the optimiser and the
   schedule, not of the replay form. It is judged on the folds that test it, the pilots whose
   replay ratio another pilot shares
   (:meth:`~cptopt.law.scenario.CptScenario.shared_replay_folds`): leaving out the only
   pilot at a replay ratio makes the fold an extrapolation in replay, whose error is the
   replay form's and would drown the memory's. Skipped with one memory (the default:
   multi-power).
1b. **The PT-phase points of the general set** (``pt_points="auto"``, the default): only
   the checkpoints' values, or every logged PT point, with the reference form, by the
   one-standard-error rule; "checkpoint" (the prior's side) unless "all" clearly wins.
2. **The replay form of each validation set**, with that memory, on every fold, by the
   one-standard-error rule (:func:`one_standard_error_choice`) on that set's own CV: a form
   with more parameters must beat a smaller one by more than the paired standard error;
   among the forms within the noise with as many parameters, the general set takes the
   prior's order (:data:`GENERAL_FORM_PRIOR`), the domain set the smallest 2x
   length-extrapolation error of its pilots (:func:`~cptopt.fitting.crossval.
   length_extrapolation_rms`). The two laws are separate fits: nothing ties their forms.
3. **The LR power of each set** (``lr_power``: the shift driven by ``sum eta^q``), against
   the LR area, by the same rule: one parameter more must clearly pay.
4. **Tying** (``tie="auto"`` with the multi-power memory, both sets on one form): the
   memory shared by the two sets, against the untied laws, by the same rule.

Every candidate gets the cheap :data:`~cptopt.fitting.jobs.SELECTING` fit; the winners are
refitted with the :data:`~cptopt.fitting.jobs.FINAL` effort.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from cptopt._progress import Progress, report
from cptopt.fitting.crossval import PendingSet, SetResult
from cptopt.fitting.data import AUTO_PT_POINTS
from cptopt.fitting.jobs import (
    FINAL,
    FINAL_SELECTED,
    SELECTING,
    Counter,
    Effort,
    FitSettings,
    Variant,
    WarmStarts,
    fit_variant,
    fit_with_effort,
    law_for,
    side_by_side,
)
from cptopt.fitting.workers import Runner, SetData
from cptopt.law.fitted import SelectionRow
from cptopt.law.forms import LawForm
from cptopt.law.scenario import CptScenario, InputNeeds

#: The sets of CPT pilots, each selected on its own CV.
VALIDATION_SETS = CptScenario.validation_sets

#: Variants ``form="auto"`` compares by leave-one-pilot-out CV error on the pilots. The
#: paper's Eq. 8 form is not among them (still available by name): its pilot CV was 5-10x
#: the other forms' on every bundled pilot set, a gap no domain is likely to close.
AUTO_FORMS = ("exp", "share", "mix", "odds")
AUTO_LAMBDAS = (0.98, 0.99, 0.995, 0.999)
AUTO_ANNEALINGS = ("s2", "mpl")
#: The replay form comparison 1 fits every memory with (when it is a candidate).
REFERENCE_FORM = "exp"


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
        elif spec.name == "a2" and same_shift and "a2" in named:
            value = named["a2"]
        elif spec.name == "a2" and target.replay_form == "odds" and "a2" in named:
            # the odds form's shift at r = 1/4 matches exp(-a2 r) there
            value = 3.0 * np.expm1(named["a2"] / 4.0)
        elif spec.name == "a2":
            value = middle
        else:
            value = named.get(spec.name, middle)
        start.append(min(max(value, spec.lower), spec.upper))
    return np.array(start)


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


class _Fitted:
    """A candidate whose refits may still be running: its optimum now, the rest (its
    :class:`Candidate`) when asked, so that the next candidate's fit need not wait."""

    def __init__(self, variant: Variant, pending: PendingSet) -> None:
        self.variant, self.pending = variant, pending
        self._candidate: Candidate | None = None

    @property
    def values(self) -> np.ndarray:
        return self.pending.best.values

    def candidate(self) -> Candidate:
        if self._candidate is None:
            self._candidate = Candidate.of(self.variant, self.pending.result())
        return self._candidate

    def renamed(self, variant: Variant) -> _Fitted:
        """The same fit as another variant's (a twin form: the same law)."""
        return _Fitted(variant, self.pending)


@dataclass(frozen=True)
class SetOutcome:
    """One validation set's selection: the chosen variant, every candidate, the final fit,
    the PT-phase points pooled, and how much the replay forms the pilots' CV could not tell
    apart disagree between the pilots' replay ratios (``(ratio, spread, forms)`` each)."""

    chosen: Variant
    candidates: list[Candidate]
    final: SetResult
    pt_points: str
    replay_doubt: list[tuple[float, float, tuple[str, ...]]]


@dataclass(frozen=True)
class SetSelection:
    """Comparisons 1b, 2 and 3 of one validation set, then its final fit.

    The general and the domain law are separate fits, so each set's selection runs without
    waiting for the other's (side by side, each handing its fits' refits to the runner's
    workers: see the module docstring). ``warm``: the reference variant's optimum from
    comparison 1, if it was fitted there.
    """

    scenario: CptScenario
    validation_set: str
    reference: Variant
    forms: tuple[str, ...]
    lr_power: bool | str
    settings: FitSettings
    warm: np.ndarray | None = None
    progress: Progress | None = field(default=None, compare=False)

    def __call__(self, runner: Runner | None = None) -> SetOutcome:
        return _SetSelectionRun(self, runner or Runner()).run()


class _SetSelectionRun:
    """The state of one :class:`SetSelection`: its generator and candidates."""

    def __init__(self, job: SetSelection, runner: Runner) -> None:
        self.job, self.name, self.settings = job, job.validation_set, job.settings
        self.runner = runner
        self.policy = job.settings.pt_points_of(job.validation_set, resolve=False)
        self.rng = np.random.default_rng([job.settings.seed, VALIDATION_SETS.index(self.name)])
        self.found: dict[Variant, tuple[LawForm, _Fitted]] = {}
        self.counter = Counter(None, "", 0)  # set by run(), which knows the candidates

    def law(self, variant: Variant) -> LawForm:
        return law_for(variant, self.name, self.job.scenario, self.settings)

    def data(self, steps: bool) -> SetData:
        """The recipe of this set's data under the current PT-point policy (thinned by the
        fit's effort)."""
        reference = self.job.reference
        needs = InputNeeds(reference.lam, reference.annealing == "mpl", steps)
        return SetData(self.name, needs, self.policy, 0)

    def fit(self, variant: Variant, start: np.ndarray | None, effort: Effort) -> PendingSet:
        """Fit ``variant`` (its refits go on running) and, while selecting, keep it."""
        law, fitted = self.fitted(variant, start, effort)
        if effort.name != "final":
            self.found[variant] = (law, fitted)
        return fitted.pending

    def twins(self, reference: Variant) -> dict[Variant, Variant]:
        """Forms that are another form's law for this set (``mix`` is ``share`` for the
        domain law): the same fit serves both."""
        names = {reference.form: self.law(reference).names}
        twins: dict[Variant, Variant] = {}
        for form in self.job.forms:
            variant = replace(reference, form=form)
            law = self.law(variant)
            twin = next((f for f in names if _same_law(f, form, law.names, names[f])), None)
            if twin is not None:
                twins[variant] = replace(reference, form=twin)
            names.setdefault(form, law.names)
        return twins

    def fitted(
        self, variant: Variant, start: np.ndarray | None, effort: Effort
    ) -> tuple[LawForm, _Fitted]:
        """The fit of ``variant`` with ``effort`` from ``start``, not kept."""
        law, data = self.law(variant), self.data(variant.lr_power)
        length_check = effort.length_check or self.name == "domain"
        result = fit_with_effort(
            law,
            data,
            self.settings,
            effort,
            self.rng,
            start=start,
            length_check=length_check,
            runner=self.runner,
        )
        return law, _Fitted(variant, result)

    def translated(self, source: Variant, target: Variant) -> np.ndarray:
        law, fitted = self.found[source]
        return translate_start(law, fitted.values, self.law(target))

    def choose(self, variants: list[Variant]) -> tuple[Variant, list[Variant]]:
        """The 1-SE choice among ``variants`` and the ones within the noise of the best."""
        rows = [_set_row(self.found[v][1].candidate()) for v in variants]
        best, errors = one_standard_error_choice(rows, _prior_preference(self.name))
        lowest = min(rows, key=lambda row: row.cv_mean)
        close = [
            _variant(row)
            for row, se in zip(rows, errors, strict=True)
            if row.cv_mean - lowest.cv_mean <= se
        ]
        return _variant(best), close

    def choose_pt_points(self, reference: Variant) -> None:
        """Comparison 1b: the PT-phase points (``policy`` "auto"), with the reference form."""
        tried = {}
        for policy in AUTO_PT_POINTS:
            self.policy = policy
            start = self.job.warm if not tried else self.found[reference][1].values
            self.fit(reference, start, SELECTING)
            self.counter.tick()
            tried[policy] = self.found[reference]
        scores = [
            _set_row(fitted.candidate()).model_copy(update={"form": policy})
            for policy, (_, fitted) in tried.items()
        ]
        self.policy = one_standard_error_choice(scores, _in_order(AUTO_PT_POINTS))[0].form
        self.found[reference] = tried[self.policy]

    def fit_forms(self, reference: Variant) -> None:
        """Comparison 2's candidates: every form, from the reference's optimum (twins
        shared). Each starts from the reference alone, so they are fitted side by side."""
        twins = self.twins(reference)
        variants = [
            replace(reference, form=form)
            for form in self.job.forms
            if replace(reference, form=form) not in twins
        ]
        new = [v for v in variants if v not in self.found]
        calls = [
            self.counter.counted(partial(self.fitted, v, self.translated(reference, v), SELECTING))
            for v in new
        ]
        # Side by side only if no fit draws from the set's stream (else: in order).
        draws = SELECTING.warm_starts > 1 and self.settings.n_screen > 0
        results = [call() for call in calls] if draws else side_by_side(self.runner, calls)
        fitted = dict(zip(new, results, strict=True))
        for variant in (replace(reference, form=form) for form in self.job.forms):
            if variant in twins:
                law_twin, twin_fit = self.found[twins[variant]]
                self.found[variant] = (law_twin, twin_fit.renamed(variant))
            elif variant in fitted:
                self.found[variant] = fitted[variant]

    def run(self) -> SetOutcome:
        reference = self.job.reference
        policies = len(AUTO_PT_POINTS) if self.policy == "auto" else 1
        forms = sum(replace(reference, form=f) not in self.twins(reference) for f in self.job.forms)
        power = 1 if self.job.lr_power == "auto" else 0
        # Its candidates and, last, the chosen one's final fit.
        stage = f"selecting the {self.name} law"
        self.counter = Counter(self.job.progress, stage, policies + forms - 1 + power + 1)
        if self.policy == "auto":
            self.choose_pt_points(reference)
        else:
            self.fit(reference, self.job.warm, SELECTING)
            self.counter.tick()
        self.fit_forms(reference)
        chosen, close = self.choose([replace(reference, form=f) for f in self.job.forms])
        doubt = self.replay_doubt(close)
        if self.job.lr_power == "auto":
            powered = replace(chosen, lr_power=True)
            self.fit(powered, self.translated(chosen, powered), SELECTING)
            self.counter.tick()
            chosen, _ = self.choose([chosen, powered])
        final = self.fit(chosen, self.found[chosen][1].values, FINAL_SELECTED).result()
        self.counter.tick()
        candidates = [fitted.candidate() for _, fitted in self.found.values()]
        return SetOutcome(chosen, candidates, final, self.policy, doubt)

    def replay_doubt(self, close: list[Variant]) -> list[tuple[float, float, tuple[str, ...]]]:
        """How far apart the forms within the noise predict between the pilots' ratios.

        At the middle of each gap between two neighbouring replay ratios of the pilots,
        the first pilot's schedule is predicted by every form in ``close``; the spread is
        ``max / min - 1`` of their final losses. Pilots at two or three ratios cannot
        tell these forms apart, and the forms differ most there.
        """
        forms = {v.form: v for v in close}
        scenario, reference = self.job.scenario, self.job.reference
        ratios = scenario.coverage.replay_ratios if scenario.coverage is not None else []
        if len(forms) < 2 or len(ratios) < 2 or not scenario.replay_terms:
            return []
        needs = InputNeeds(
            reference.lam, reference.annealing == "mpl", any(v.lr_power for v in close)
        )
        out = []
        for low, high in zip(ratios[:-1], ratios[1:], strict=True):
            middle = (low + high) / 2
            probe = scenario.replay_probe(middle)
            areas = scenario.inputs(probe, np.array([probe.steps]), needs)
            finals = [
                float(self.found[v][0].evaluate(self.found[v][1].values, areas)[0])
                for v in forms.values()
            ]
            if min(finals) > 0:
                out.append((middle, max(finals) / min(finals) - 1.0, tuple(forms)))
        return out


#: Forms that are the same law when they have the same parameters (``mix`` adds a
#: general-only ``kappa`` to ``share``).
_TWINS = {frozenset(("share", "mix"))}


def _same_law(form: str, other: str, names: list[str], other_names: list[str]) -> bool:
    return frozenset((form, other)) in _TWINS and names == other_names


#: Among replay forms the general set's CV cannot tell apart (within one standard error, as
#: many parameters), the prior decides: forgetting falls steeply with the first replay and
#: then flattens (a little replay removes most of it: critical-mixture-ratio and
#: data-mixing laws, arXiv 2407.17467, 2403.16952), which ``odds`` expresses best and
#: ``exp`` next. Pilots rarely sit between r = 0 and r = 0.25, where the forms differ, so
#: their CV on their own ratios is mostly noise here.
GENERAL_FORM_PRIOR = ("odds", "exp", "share", "mix")


def _prior_preference(validation_set: str) -> Callable[[SelectionRow], tuple]:
    """The 1-SE preference: fewest parameters, then for the general set the prior's order,
    for the domain set the smaller 2x length-extrapolation error (measured on the pilots:
    the domain law is the one that has to carry 1,000-step pilots to longer runs)."""

    def preference(row: SelectionRow) -> tuple:
        if validation_set == "general":
            rank = GENERAL_FORM_PRIOR.index(row.form) if row.form in GENERAL_FORM_PRIOR else 99
            return (row.n_params, rank, row.cv_mean)
        length = row.length_rms_domain
        return (row.n_params, np.inf if length is None else length, row.cv_mean)

    return preference


def _in_order(preferred: tuple[str, ...]) -> Callable[[SelectionRow], tuple]:
    """A 1-SE preference: rows named (``form``) earlier in ``preferred`` first."""
    return lambda row: (preferred.index(row.form), row.cv_mean)


def _set_row(candidate: Candidate) -> SelectionRow:
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


@dataclass(frozen=True)
class Selected:
    """What :func:`select_variant` returns (see there)."""

    chosen: dict[str, Variant]
    rows: list[SelectionRow]
    final: dict[str, SetResult]
    pt_points: dict[str, str]
    replay_doubt: dict[str, list[tuple[float, float, tuple[str, ...]]]]


def _key_of(variant: Variant) -> tuple:
    return (variant.form, variant.annealing, variant.lam, variant.tied, variant.lr_power)


def _choose_memory(
    scenario: CptScenario,
    reference: str,
    memories: list[tuple[str, float | None]],
    settings: FitSettings,
    runner: Runner,
    progress: Progress | None = None,
) -> tuple[Variant, dict[str, list[Candidate]], WarmStarts]:
    """Comparison 1: the memory with the lowest CV over the shared-replay folds."""
    warm: WarmStarts = {}
    candidates: dict[str, list[Candidate]] = {name: [] for name in VALIDATION_SETS}
    if len(memories) == 1:
        annealing, lam = memories[0]
        return Variant(reference, lam, annealing), candidates, warm
    counter = Counter(progress, "choosing the annealing memory", len(memories))
    # S2 from the longest memory down, each warm-started from its neighbour.
    for annealing, lam in sorted(memories, key=lambda m: (m[0] != "s2", -(m[1] or 0.0))):
        variant = Variant(reference, lam, annealing)
        fitted = fit_variant(scenario, variant, warm, settings, SELECTING, runner=runner)
        counter.tick()
        for name, result in fitted.items():
            candidates[name].append(Candidate.of(variant, result))
    rows = merged_rows(candidates, scenario.shared_replay_folds())
    best = min(rows, key=lambda row: row.cv_memory)
    return _variant(best), candidates, warm


def _choose_tie(
    scenario: CptScenario,
    untied: Variant,
    candidates: dict[str, list[Candidate]],
    settings: FitSettings,
    runner: Runner,
) -> tuple[Variant, dict[tuple, float]]:
    """Comparison 4: the chosen variant with its memory tied between the two sets, or not."""
    tied = replace(untied, tied=True)
    warm = {
        untied.warm_key(name): next(c.values for c in cs if c.variant == untied)
        for name, cs in candidates.items()
    }
    fitted = fit_variant(scenario, tied, warm, settings, SELECTING, runner=runner)
    for name, result in fitted.items():
        candidates[name].append(Candidate.of(tied, result))
    rows = merged_rows(candidates, scenario.shared_replay_folds())
    compared = [row for row in rows if _key(row) in {_key_of(untied), _key_of(tied)}]
    best, errors = one_standard_error_choice(compared, _fewest_parameters)
    return _variant(best), {_key(row): se for row, se in zip(compared, errors, strict=True)}


def select_variant(
    scenario: CptScenario,
    variants: list[Variant],
    settings: FitSettings,
    *,
    tie: bool | str,
    lr_power: bool | str = "auto",
    runner: Runner | None = None,
    progress: Progress | None = None,
) -> Selected:
    """Choose among ``variants`` (see the module docstring) and fit the winners.

    ``lr_power``: "auto" (comparison 3 decides), True or False (every candidate with or
    without). Returns the variant chosen for each set (tied when ``tie`` is True, or when
    comparison 4 chose it), every row compared (the chosen ones marked), the final fit, the
    PT-phase points each set pooled (comparison 1b resolves "auto") and the replay forms'
    disagreement.
    """
    runner = runner or Runner()
    forms = tuple(dict.fromkeys(v.form for v in variants))
    memories = list(dict.fromkeys((v.annealing, v.lam) for v in variants))
    shared_folds = scenario.shared_replay_folds()
    first = REFERENCE_FORM if REFERENCE_FORM in forms else forms[0]
    reference, candidates, warm = _choose_memory(
        scenario, first, memories, settings, runner, progress
    )
    if lr_power is True:
        reference = replace(reference, lr_power=True)
    jobs = [
        partial(
            SetSelection(
                scenario,
                name,
                reference,
                forms,
                lr_power,
                settings,
                warm.get(reference.warm_key(name)),
                progress,
            ),
            runner,
        )
        for name in VALIDATION_SETS
    ]
    chosen: dict[str, Variant] = {}
    final: dict[str, SetResult] = {}
    pt_points: dict[str, str] = {}
    doubts: dict[str, list[tuple[float, float, tuple[str, ...]]]] = {}
    for name, outcome in zip(VALIDATION_SETS, side_by_side(runner, jobs), strict=True):
        chosen[name], final[name], pt_points[name] = (
            outcome.chosen,
            outcome.final,
            outcome.pt_points,
        )
        doubts[name] = outcome.replay_doubt
        known = {c.variant for c in outcome.candidates}
        candidates[name] = [c for c in candidates[name] if c.variant not in known]
        candidates[name] += outcome.candidates
    settings = replace(settings, pt_points=tuple(sorted(pt_points.items())))
    errors: dict[tuple, float] = {}
    if tie is not False and reference.annealing == "mpl":
        if tie == "auto" and chosen["general"] == chosen["domain"]:
            untied = chosen["general"]
            report(progress, "tying the memory", 0, 1)
            tied, errors = _choose_tie(scenario, untied, candidates, settings, runner)
            report(progress, "tying the memory", 1, 1)
            chosen = dict.fromkeys(VALIDATION_SETS, tied)
        elif tie is True:
            chosen = {name: replace(variant, tied=True) for name, variant in chosen.items()}
        if chosen["general"].tied:
            start = {chosen[name].warm_key(name): final[name].best.values for name in final}
            final = fit_variant(
                scenario, chosen, start, settings, FINAL, runner=runner, progress=progress
            )
    rows = []
    for row in merged_rows(candidates, shared_folds):
        marks = {name: _key(row) == _key_of(chosen[name]) for name in VALIDATION_SETS}
        rows.append(
            row.model_copy(
                update={
                    "chosen": all(marks.values()),
                    "chosen_general": marks["general"],
                    "chosen_domain": marks["domain"],
                    "cv_gap_se": errors.get(_key(row)),
                }
            )
        )
    return Selected(chosen, rows, final, pt_points, doubts)
