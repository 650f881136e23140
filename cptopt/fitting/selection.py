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
2. **Each set's law.** ``form="auto"``: the average of the set's members
   (:data:`AUTO_MEMBERS`), each fitted alone with its leave-one-pilot-out refits and
   weighted by them (:mod:`cptopt.fitting.averaging`): no hard choice among forms, so one
   more pilot moves the weights instead of flipping the law. A named form (``form="odds"``)
   is that form.
3. **The LR power of a named form** (``lr_power="auto"``: the shift driven by
   ``sum eta^q``), against the LR area, by the one-standard-error rule
   (:func:`one_standard_error_choice`): one parameter more must clearly pay.
4. **Tying** (``tie="auto"`` with the multi-power memory, both sets on one form): the
   memory shared by the two sets, against the untied laws, by the same rule.

Every candidate of comparisons 1, 1b and 3 gets the cheap
:data:`~cptopt.fitting.jobs.SELECTING` fit; the winners, and the members of an average, are
fitted with the :data:`~cptopt.fitting.jobs.FINAL` effort.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
from cptopt.fitting.rows import (
    Candidate,
    fewest_parameters,
    in_order,
    merged_rows,
    one_standard_error_choice,
    prior_preference,
    row_key,
    row_variant,
    set_row,
    variant_key,
)
from cptopt.fitting.workers import Runner, SetData
from cptopt.law.averaged import MEMBER_SEPARATOR, AveragedLaw, member_name
from cptopt.law.fitted import SelectionRow
from cptopt.law.forms import LawForm
from cptopt.law.scenario import CptScenario, InputNeeds

#: The sets of CPT pilots, each selected on its own CV.
VALIDATION_SETS = CptScenario.validation_sets

#: ``form="auto"``: the form named in a Variant when each set gets its averaged law.
AUTO = "auto"
#: What ``form="auto"`` fits for each set: the average of these members (replay form, LR
#: power), weighted by their leave-one-pilot-out errors (:mod:`cptopt.fitting.averaging`).
#: The general set: the odds level, with replay setting only the level (odds) or also the
#: rate (relax), both with the LR power the forgetting shows (per unit of LR area a higher
#: LR forgets more). The domain set: relax, whose drive is the domain share of X, with the
#: LR area or its power (1,000-step pilots cannot tell steps from LR area). docs/law.md,
#: section 11, has the measurements; a hard choice among them flipped with one more pilot.
AUTO_MEMBERS: dict[str, tuple[tuple[str, bool], ...]] = {
    "general": (("odds", True), ("relax", True)),
    "domain": (("relax", False), ("relax", True)),
}


def auto_form(validation_set: str, lr_power: bool | str) -> tuple[str, bool]:
    """The name of a set's ``form="auto"`` law (:data:`AUTO_MEMBERS`) and whether it reads
    the per-step LRs. ``lr_power`` True or False sets every member's LR power (members that
    then coincide are one; one member left is that form alone)."""
    members = AUTO_MEMBERS[validation_set]
    if lr_power != AUTO:
        members = tuple(dict.fromkeys((form, bool(lr_power)) for form, _ in members))
    if len(members) == 1:
        return members[0]
    return MEMBER_SEPARATOR.join(member_name(f, q) for f, q in members), any(q for _, q in members)


AUTO_LAMBDAS = (0.98, 0.99, 0.995, 0.999)
AUTO_ANNEALINGS = ("s2", "mpl")
#: The replay form comparison 1 fits every memory with (when it is a candidate).
REFERENCE_FORM = "exp"


def translate_start(source: LawForm, values: np.ndarray, target: LawForm) -> np.ndarray:
    """A start for ``target`` from another form's optimum on the same data.

    Coefficients with the same name mean the same thing in every form, except the replay
    rates: ``a1 = 0`` is every form's constant annealing credit, and ``a2`` is copied only
    between the forms whose shift level is the same function of it (``exp(-a2 r)``, or
    ``odds``'s and ``relax``'s ``1 / (1 + a2 odds)``); otherwise it starts at the middle of
    its start range. ``q = 1`` is the LR area (the form without LR power).
    """
    named = dict(zip(source.names, np.asarray(values, dtype=float).tolist(), strict=True))
    pair = {source.replay_form, target.replay_form}
    same_shift = pair <= {"exp", "share"} or pair <= {"odds", "relax"}
    start = []
    for spec in target.specs:
        middle = (spec.start_low + spec.start_high) / 2
        if spec.name == "a1":
            value = 0.0
        elif spec.name in ("kappa", "q"):
            value = named.get(spec.name, 1.0)  # Eq. 4: every CPT step counts fully
        elif spec.name == "a2" and same_shift and "a2" in named:
            value = named["a2"]
        elif spec.name == "a2" and target.replay_form in ("odds", "relax") and "a2" in named:
            # the odds form's shift at r = 1/4 matches exp(-a2 r) there
            value = 3.0 * np.expm1(named["a2"] / 4.0)
        elif spec.name == "a2":
            value = middle
        else:
            value = named.get(spec.name, middle)
        start.append(min(max(value, spec.lower), spec.upper))
    return np.array(start)


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


@dataclass(frozen=True)
class SetOutcome:
    """One validation set's selection: the chosen variant, every candidate, the final fit,
    the PT-phase points pooled, and how much an averaged law's members disagree between the
    pilots' replay ratios (``(ratio, spread, members)`` each)."""

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
    workers: see the module docstring).
    ``reference``: the memory's variant, of the named form (or the reference form);
    ``averaging``: ``form="auto"``, the set's law is its average (:func:`auto_form`).
    ``warm``: the reference variant's optimum from comparison 1, if it was fitted there.
    """

    scenario: CptScenario
    validation_set: str
    reference: Variant
    averaging: bool
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

    def data(self, law: LawForm) -> SetData:
        """The recipe of the set's fit data with the inputs ``law`` reads (an average: any
        member's), under the current PT-point policy (thinned by the fit's effort)."""
        needs = InputNeeds(self.job.reference.lam, law.needs_history, law.needs_steps)
        return SetData(self.name, needs, self.policy, 0)

    def fit(self, variant: Variant, start: np.ndarray | None, effort: Effort) -> PendingSet:
        """Fit ``variant`` (its refits go on running) and, while selecting, keep it."""
        law = self.law(variant)
        length_check = effort.length_check or self.name == "domain"
        pending = fit_with_effort(
            law,
            self.data(law),
            self.settings,
            effort,
            self.rng,
            start=start,
            length_check=length_check,
            runner=self.runner,
        )
        if effort.name != "final":
            self.found[variant] = (law, _Fitted(variant, pending))
        return pending

    def translated(self, source: Variant, target: Variant) -> np.ndarray:
        law, fitted = self.found[source]
        return translate_start(law, fitted.values, self.law(target))

    def choose(self, variants: list[Variant]) -> Variant:
        """The 1-SE choice among ``variants``."""
        rows = [set_row(self.found[v][1].candidate()) for v in variants]
        return row_variant(one_standard_error_choice(rows, prior_preference(self.name))[0])

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
            set_row(fitted.candidate()).model_copy(update={"form": policy})
            for policy, (_, fitted) in tried.items()
        ]
        self.policy = one_standard_error_choice(scores, in_order(AUTO_PT_POINTS))[0].form
        self.found[reference] = tried[self.policy]

    def run(self) -> SetOutcome:
        policies = len(AUTO_PT_POINTS) if self.policy == "auto" else 0
        # Its candidates and, last, the final fit.
        stage = f"selecting the {self.name} law"
        if self.job.averaging:
            self.counter = Counter(self.job.progress, stage, policies + 1)
            form, steps = auto_form(self.name, self.job.lr_power)
            return self.run_averaged(replace(self.job.reference, form=form, lr_power=steps))
        power = 1 if self.job.lr_power == "auto" else 0
        self.counter = Counter(self.job.progress, stage, max(policies, 1) + power + 1)
        reference = self.job.reference
        if self.policy == "auto":
            self.choose_pt_points(reference)
        else:
            self.fit(reference, self.job.warm, SELECTING)
            self.counter.tick()
        chosen = reference
        if self.job.lr_power == "auto":
            powered = replace(chosen, lr_power=True)
            self.fit(powered, self.translated(chosen, powered), SELECTING)
            self.counter.tick()
            chosen = self.choose([chosen, powered])
        final = self.fit(chosen, self.found[chosen][1].values, FINAL_SELECTED).result()
        self.counter.tick()
        candidates = [fitted.candidate() for _, fitted in self.found.values()]
        return SetOutcome(chosen, candidates, final, self.policy, [])

    def run_averaged(self, averaged: Variant) -> SetOutcome:
        """Comparison 2 of ``form="auto"``: the set's averaged law, its members fitted alone."""
        if self.policy == "auto":
            self.choose_pt_points(self.job.reference)
        final = self.fit(averaged, None, FINAL).result()
        self.counter.tick()
        law = self.law(averaged)
        candidates = [fitted.candidate() for _, fitted in self.found.values()]
        members = []
        if isinstance(law, AveragedLaw):  # one member left (a forced LR power): one form
            for member, result in zip(law.members, final.members, strict=True):
                variant = replace(averaged, form=member.name, lr_power=member.lr_power)
                self.found[variant] = (member, _Fitted(variant, PendingSet.done(result)))
                candidates.append(Candidate.of(variant, result))
                members.append(variant)
        candidates.append(Candidate.of(averaged, final))
        doubt = self.replay_doubt(members)
        return SetOutcome(averaged, candidates, final, self.policy, doubt)

    def replay_doubt(self, close: list[Variant]) -> list[tuple[float, float, tuple[str, ...]]]:
        """How far apart an average's members predict between the pilots' ratios.

        At the middle of each gap between two neighbouring replay ratios of the pilots,
        the first pilot's schedule is predicted by every variant in ``close`` (an average's
        members); the spread is ``max / min - 1`` of their final losses. Pilots at two or
        three ratios can hardly tell the members apart, and they differ most there.
        """
        forms = {member_name(v.form, v.lr_power): v for v in close}
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


@dataclass(frozen=True)
class Selected:
    """What :func:`select_variant` returns (see there)."""

    chosen: dict[str, Variant]
    rows: list[SelectionRow]
    final: dict[str, SetResult]
    pt_points: dict[str, str]
    replay_doubt: dict[str, list[tuple[float, float, tuple[str, ...]]]]


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
    return row_variant(best), candidates, warm


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
    compared = [row for row in rows if row_key(row) in {variant_key(untied), variant_key(tied)}]
    best, errors = one_standard_error_choice(compared, fewest_parameters)
    return row_variant(best), {row_key(row): se for row, se in zip(compared, errors, strict=True)}


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
    """Choose among ``variants`` (of one form, or of :data:`AUTO`: each set's average; see
    the module docstring) and fit the winners.

    ``lr_power``: "auto" (comparison 3 decides; with :data:`AUTO`, the members as listed),
    True or False (every candidate, or member, with or without). Returns the variant of each
    set (tied when ``tie`` is True, or when comparison 4 chose it), every row compared (the
    chosen ones marked), the final fits, the PT-phase points each set pooled (comparison 1b
    resolves "auto") and how far an average's members disagree between the pilots' ratios.
    """
    runner = runner or Runner()
    forms = tuple(dict.fromkeys(v.form for v in variants))
    memories = list(dict.fromkeys((v.annealing, v.lam) for v in variants))
    shared_folds = scenario.shared_replay_folds()
    averaging = forms == (AUTO,)
    first = REFERENCE_FORM if averaging or REFERENCE_FORM in forms else forms[0]
    reference, candidates, warm = _choose_memory(
        scenario, first, memories, settings, runner, progress
    )
    if lr_power is True and not averaging:
        reference = replace(reference, lr_power=True)
    jobs = [
        SetSelection(
            scenario,
            name,
            reference,
            averaging,
            lr_power,
            settings,
            warm.get(reference.warm_key(name)),
            progress,
        )
        for name in VALIDATION_SETS
    ]
    chosen: dict[str, Variant] = {}
    final: dict[str, SetResult] = {}
    pt_points: dict[str, str] = {}
    doubts: dict[str, list[tuple[float, float, tuple[str, ...]]]] = {}
    calls = [lambda job=job: job(runner) for job in jobs]
    for name, outcome in zip(VALIDATION_SETS, side_by_side(runner, calls), strict=True):
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
    rows = _marked_rows(merged_rows(candidates, shared_folds), chosen, errors)
    return Selected(chosen, rows, final, pt_points, doubts)


def _marked_rows(
    rows: list[SelectionRow], chosen: dict[str, Variant], errors: dict[tuple, float]
) -> list[SelectionRow]:
    """The rows compared, each marked with the sets that chose it and its 1-SE gap (tying)."""
    marked = []
    for row in rows:
        marks = {name: row_key(row) == variant_key(chosen[name]) for name in VALIDATION_SETS}
        update = {
            "chosen": all(marks.values()),
            "chosen_general": marks["general"],
            "chosen_domain": marks["domain"],
            "cv_gap_se": errors.get(row_key(row)),
        }
        marked.append(row.model_copy(update=update))
    return marked
