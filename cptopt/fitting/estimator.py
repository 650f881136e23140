"""The estimator: :class:`LawFitter` fits the validation sets of a pilot set.

The pilots' scenario (:func:`cptopt.law.scenario.scenario_of`) says what they are, and the
fit of each kind is its own procedure (:data:`PROCEDURES`). CPT pilots: the settings become
the law variants to try, the selection (:mod:`cptopt.fitting.selection`) or the one variant
asked for runs, and the law file is assembled (:mod:`cptopt.fitting.assemble`).
Pre-training pilots get the law's pre-training part, its memory chosen by their CV
(:mod:`cptopt.fitting.pretraining`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from cptopt._progress import Progress
from cptopt._validation import MAX_SEED, MAX_STARTS
from cptopt.exceptions import InputError, NotFittedError, param
from cptopt.fitting.assemble import pretrain_record, set_fit_record
from cptopt.fitting.crossval import SetResult
from cptopt.fitting.data import AUTO_PT_POINTS, DEFAULT_PT_POINTS
from cptopt.fitting.jobs import FINAL, SELECTING, FitSettings, Variant, fit_variant, set_data
from cptopt.fitting.pretraining import PRETRAIN_ANNEALINGS, depth_sd, fit_pretrain
from cptopt.fitting.selection import (
    AUTO,
    AUTO_ANNEALINGS,
    AUTO_LAMBDAS,
    REFERENCE_FORM,
    auto_form,
    select_variant,
)
from cptopt.fitting.workers import FitContext, SetData, one_blas_thread, process_pool
from cptopt.law.annealing import ANNEALINGS
from cptopt.law.fitted import CptLaw, PretrainRunsLaw, SelectionRow
from cptopt.law.forms import DOMAIN_FORWARDS, FORMS, PAPER_LAMBDA, PretrainPartForm
from cptopt.law.scenario import (
    PT_POINT_CHOICES,
    CptScenario,
    PretrainScenario,
    scenario_of,
)
from cptopt.pilots.runs import Pilots

#: The validation sets of CPT pilots (the sets ``pt_points`` may name).
VALIDATION_SETS = CptScenario.validation_sets

#: ``tie`` as words (the command line's ``--tie``).
TIE_WORDS: dict[str, bool | str] = {"yes": True, "no": False, "auto": "auto"}


#: The replay forms' disagreement worth a note: above this, predictions between the
#: pilots' replay ratios depend on a choice the pilots could not make.
REPLAY_DOUBT_NOTE = 0.01


def replay_doubt_notes(doubts: dict[str, list[tuple[float, float, tuple[str, ...]]]]) -> list[str]:
    """One note per set whose averaged law's members disagree between the pilots' ratios."""
    notes = []
    for name, items in doubts.items():
        worst = max(items, key=lambda item: item[1], default=None)
        if worst is not None and worst[1] > REPLAY_DOUBT_NOTE:
            ratio, spread, forms = worst
            notes.append(
                f"{name}: the averaged law's members ({', '.join(forms)}) differ by "
                f"{100 * spread:.1f} % at replay {ratio:.3g}, between the pilots' replay "
                "ratios: predictions there are uncertain; a pilot near that ratio would decide"
            )
    return notes


@dataclass(frozen=True)
class _Outcome:
    """A fit's results before they become a law file."""

    chosen: dict[str, Variant]
    rows: list[SelectionRow]
    final: dict[str, SetResult]
    pt_points: dict[str, str]
    notes: list[str]


#: Starts polished per fit by default, ``cptopt fit --starts`` too: the benchmarks'
#: accuracy figures are measured with it (one default for the library and the CLI).
DEFAULT_STARTS = 3


class LawFitter:
    """Fits the CPT law to a :class:`~cptopt.pilots.PilotSet` (scikit-learn style).

    The constructor only stores settings; :meth:`fit` validates the pilots, fits their
    validation sets and sets ``law_`` (a :class:`~cptopt.law.CptLaw`, or for pre-training
    pilots a :class:`~cptopt.law.PretrainRunsLaw`); reading ``law_`` before that raises
    :class:`~cptopt.exceptions.NotFittedError`.

    Parameters
    ----------
    form : replay form, ``"paper"`` (Eq. 4 / Eq. 8), ``"exp"``, ``"share"``, ``"mix"``,
        ``"odds"``, ``"relax"`` (see :mod:`cptopt.law.forms`), or ``"auto"``: each
        validation set gets the average of its members
        (:data:`~cptopt.fitting.selection.AUTO_MEMBERS`), weighted by their CV.
    lam : annealing-memory factor of the m-recursion (paper: 0.999), or ``"auto"`` to choose
        it by CV from ``AUTO_LAMBDAS``. A number implies ``annealing="s2"``. Default: 0.999
        for ``form="paper"`` (unless ``annealing="mpl"``), else ``"auto"``.
    annealing : ``"s2"`` (the paper's m-recursion), ``"mpl"`` (multi-power memory, no
        lambda) or ``"auto"`` (both are candidates). Default (None): ``"mpl"``, or
        ``"auto"`` when ``lam`` is given or ``form="paper"``. The multi-power memory won the
        memory comparison on every bundled pilot set by a wide margin (docs/law.md).
    tie : share the multi-power memory (``TIED_PARAMETERS``) between the general and the
        domain law: ``True`` (or ``"yes"``), ``False`` (``"no"``, the default), or ``"auto"``
        (when the memory chosen is ``mpl``, the tied variant is a candidate of its own, kept if
        its CV is within the noise of the untied one). Off by default (the README says why).
    huber_delta : Huber threshold on log residuals (paper: 1e-3).
    n_starts : polished starts per fit; ``n_screen`` random shapes are screened for them.
    seed : seed of the random starts (same seed, same law).
    jackknife : refit leaving each pilot out (CV error and uncertainties); needs >= 3 pilots.
    n_jobs : processes for the general and domain fits (default: 2 if this process may run
        on 2 or more cores and processes can be forked, else 1). The result does not depend
        on it.
    lr_power : drive the shift by ``sum eta^q`` (``q`` fitted per set) instead of the LR
        area: ``True``, ``False`` or ``"auto"`` (default with ``form="auto"``: the averaged
        laws' members as listed; with a named form, ``"auto"`` makes it a candidate kept by
        the one-standard-error rule). True or False sets every member's. Default for a
        named form: False.
    domain_forward : ``"frozen"`` (default) or ``"advance"`` (Eq. 4): whether CPT steps
        advance the domain law's PT power law (:data:`cptopt.law.forms.DOMAIN_FORWARDS`).
    pt_points : which PT-phase points each set pools: one of ``PT_POINT_CHOICES`` or
        ``"auto"`` (CV decides) for both, or a dict by set; default
        :data:`~cptopt.fitting.data.DEFAULT_PT_POINTS` (general auto, domain checkpoint).

    With several candidates, the variant is chosen by leave-one-pilot-out CV on the pilots
    (:func:`~cptopt.fitting.selection.select_variant`); the report's selection table lists
    every candidate.

    Pre-training pilots (:class:`~cptopt.pilots.runs.PretrainPilots`) are fitted with the
    law's pre-training part (form ``pretrain``): ``form`` is ``"auto"`` (or ``"pretrain"``)
    or ``"paper"`` (S2 with lambda 0.999); ``annealing`` defaults to ``"auto"``, every
    memory of :data:`~cptopt.fitting.pretraining.PRETRAIN_ANNEALINGS` (``mpl1`` is the
    multi-power memory at zeta = 1), chosen by leave-one-run-out CV; ``tie``, ``lr_power``,
    ``domain_forward`` and ``pt_points`` do not apply to them.
    """

    def __init__(
        self,
        form: str = "auto",
        lam: float | str | None = None,
        annealing: str | None = None,
        tie: bool | str = False,
        huber_delta: float = 1e-3,
        n_starts: int = DEFAULT_STARTS,
        n_screen: int = 48,
        seed: int = 0,
        jackknife: bool = True,
        n_jobs: int | None = None,
        lr_power: bool | str | None = None,
        domain_forward: str = "frozen",
        pt_points: str | dict[str, str] | None = None,
    ) -> None:
        self.lr_power = lr_power
        self.domain_forward = domain_forward
        self.pt_points = pt_points
        self.form = form
        self.lam = lam
        self.annealing = annealing
        self.tie = tie
        self.huber_delta = huber_delta
        self.n_starts = n_starts
        self.n_screen = n_screen
        self.seed = seed
        self.jackknife = jackknife
        self.n_jobs = n_jobs
        self._law: CptLaw | PretrainRunsLaw | None = None

    @property
    def law_(self) -> CptLaw | PretrainRunsLaw:
        """The fitted law (set by :meth:`fit`)."""
        if self._law is None:
            raise NotFittedError("this LawFitter is not fitted yet: call fit(pilots) first")
        return self._law

    def check_settings(
        self, scenario: type[CptScenario] | type[PretrainScenario] = CptScenario
    ) -> None:
        """Raise :class:`InputError` for settings :meth:`fit` would refuse for the pilots of
        ``scenario`` (the type: :func:`cptopt.law.scenario.scenario_type` of a manifest's
        kind; no data needed)."""
        PROCEDURES[scenario].check(self)

    def _check_cpt_settings(self) -> None:
        self._variants()
        self._pt_points()
        self._lr_power()
        if self.domain_forward not in DOMAIN_FORWARDS:
            choices = ", ".join(DOMAIN_FORWARDS)
            raise InputError(f"domain_forward == {self.domain_forward!r}, must be one of {choices}")
        self._effort()

    def _effort(self) -> None:
        """Numbers that size the work: refused before any work starts when out of bounds."""
        bounds = {
            "n_starts": (self.n_starts, 1, MAX_STARTS),
            "n_screen": (self.n_screen, 0, 100 * MAX_STARTS),
            "seed": (self.seed, 0, MAX_SEED),
        }
        for name, (value, low, high) in bounds.items():
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InputError(f"{name} == {value!r}, must be a whole number in {low}..{high}")
        if not (isinstance(self.huber_delta, float | int) and 0 < self.huber_delta < 1):
            raise InputError(f"huber_delta == {self.huber_delta!r}, must be in (0, 1)")

    def _pt_points(self) -> dict[str, str]:
        points = dict(DEFAULT_PT_POINTS)
        if isinstance(self.pt_points, str):
            points = dict.fromkeys(VALIDATION_SETS, self.pt_points)
        elif self.pt_points is not None:
            points.update(self.pt_points)
        for name, value in points.items():
            if name not in VALIDATION_SETS or value not in (*PT_POINT_CHOICES, "auto"):
                raise InputError(
                    f"pt_points: {name}={value!r}; sets are {', '.join(VALIDATION_SETS)}, "
                    f"choices {', '.join(PT_POINT_CHOICES)}, auto"
                )
        return points

    def _lr_power(self) -> bool | str:
        value = self.lr_power
        if value is None:
            value = "auto" if self.form == "auto" else False
        value = TIE_WORDS.get(value, value) if isinstance(value, str) else value
        if value not in ("auto", True, False):
            raise InputError(f"{param('lr_power')} == {self.lr_power!r}, must be yes, no or auto")
        return value

    def _memories(
        self, allowed: tuple[str, ...] = AUTO_ANNEALINGS, default: str = "mpl"
    ) -> tuple[tuple[float, ...], tuple[str, ...]]:
        """The S2 lambdas and the annealing memories (among ``allowed``) the settings allow;
        ``default`` unless an S2 lambda or the paper's law is asked for."""
        annealing = self.annealing
        if annealing is None:
            annealing = default if self.lam in (None, "auto") and self.form != "paper" else "auto"
        if annealing not in ("auto", *allowed):
            choices = ", ".join(("auto", *allowed))
            known = (
                " (it is for pre-training pilots, kind: pretrain)"
                if annealing in ANNEALINGS
                else ""
            )
            raise InputError(
                f"{param('annealing')} == {annealing!r}, must be one of {choices}{known}"
            )
        lam = self.lam
        if lam is None:  # the paper's law means the paper's lambda, unless told otherwise
            paper = self.form == "paper" and annealing in ("auto", "s2")
            lam = PAPER_LAMBDA if paper else "auto"
        if lam == "auto":
            return AUTO_LAMBDAS, allowed if annealing == "auto" else (annealing,)
        try:
            value = float(lam)
        except (TypeError, ValueError):
            raise InputError(
                f"{param('lam')} == {lam!r}, must be a number in (0, 1) or 'auto'"
            ) from None
        if not 0 < value < 1:
            raise InputError(f"{param('lam')} == {value}, must be in (0, 1)")
        if annealing not in ("auto", "s2"):
            raise InputError(
                f"{param('lam')} is the S2 memory: it cannot be set with "
                f"{param('annealing')} {annealing}"
            )
        return (value,), ("s2",)

    def _pretrain_variants(self) -> list[Variant]:
        """The variants for pre-training pilots: memories of the ``pretrain`` form."""
        if self.form not in ("auto", "paper", PretrainPartForm.name):
            raise InputError(
                f"{param('form')} == {self.form!r}: a CPT replay form; pre-training pilots "
                "(kind: pretrain) are fitted with the law's pre-training part: use "
                f"{param('form')} auto (or paper: S2 with lambda 0.999)"
            )
        unused = {
            "tie": (self.tie not in (False, "no"), "one validation loss, nothing to tie"),
            "lr_power": (self.lr_power not in (None, False, "no"), "no shift term"),
            "domain_forward": (self.domain_forward != "frozen", "no domain loss"),
            "pt_points": (self.pt_points is not None, "no PT-phase points: they are the PT"),
        }
        for option, (given, why) in unused.items():
            if given:
                raise InputError(
                    f"{param(option)}: not for pre-training pilots (kind: pretrain): {why}"
                )
        lams, annealings = self._memories(PRETRAIN_ANNEALINGS, "auto")
        name = PretrainPartForm.name
        variants = [Variant(name, lam) for lam in lams] if "s2" in annealings else []
        return variants + [Variant(name, None, a) for a in annealings if a != "s2"]

    def _variants(self) -> tuple[list[Variant], bool | str]:
        """The variants to fit (several: choose by CV) and the resolved ``tie``."""
        if self.form != "auto" and self.form not in FORMS:
            choices = ", ".join(("auto", *FORMS))
            what = "a law form for pre-training pilots (kind: pretrain)"
            known = what if self.form == PretrainPartForm.name else "unknown law form"
            raise InputError(f"{param('form')} == {self.form!r}: {known}; choose from {choices}")
        forms = (AUTO,) if self.form == AUTO else (self.form,)
        tie = TIE_WORDS.get(self.tie, self.tie) if isinstance(self.tie, str) else self.tie
        if tie not in ("auto", True, False):
            raise InputError(f"{param('tie')} == {self.tie!r}, must be yes, no or auto")
        lams, annealings = self._memories()
        if tie is True:
            if self.form == AUTO:
                raise InputError(
                    f"{param('tie')} == {self.tie!r} shares one form's memory between the sets, "
                    f"and {param('form')} == 'auto' averages forms per set: name a form too, "
                    f"e.g. {param('form')}='odds'"
                )
            if annealings == ("s2",):
                raise InputError(
                    f"{param('tie')}: only the multi-power memory is tied; use "
                    f"{param('annealing')} mpl"
                )
            annealings = ("mpl",)  # tying asks for the multi-power memory
        power = self._lr_power() is True
        variants = []
        for form in forms:
            if "s2" in annealings:
                variants += [Variant(form, lam, lr_power=power) for lam in lams]
            if "mpl" in annealings:
                variants.append(Variant(form, None, "mpl", lr_power=power))
        return variants, tie

    def fit(self, pilots: Pilots, progress: Progress | None = None) -> LawFitter:
        """Fit the pilots' validation sets (choosing the variant by CV if asked); returns
        ``self``. CPT pilots: both sets; pre-training pilots: their one set, with the law's
        pre-training part. ``progress(stage, done, total)`` hears of each stage and count
        (:mod:`cptopt._progress`; called from the threads that fit the two sets)."""
        scenario = scenario_of(pilots)
        procedure = PROCEDURES[type(scenario)]
        procedure.check(self)
        self._law = procedure.fit(self, scenario, progress)
        return self

    def _fit_cpt(self, scenario: CptScenario, progress: Progress | None = None) -> CptLaw:
        """Fit CPT pilots (:meth:`fit`)."""
        variants, tie = self._variants()
        lr_power = self._lr_power()
        selecting = len(variants) > 1 or tie == "auto" or lr_power == "auto" or self.form == AUTO
        logged = [scenario.logged(name) for name in scenario.validation_sets]
        if selecting and min(logged) < 3:
            raise InputError(
                "choosing the law variant by cross-validation needs >= 3 pilots logging each "
                f"loss, got {min(logged)}; pass an explicit {param('form')}, "
                f"{param('annealing')} and {param('lam')}"
            )
        pt_points = self._pt_points()
        if not selecting:  # nothing to compare: the prior's side
            pt_points = {
                name: p.replace("auto", AUTO_PT_POINTS[0]) for name, p in pt_points.items()
            }
        settings = FitSettings(
            self.seed,
            self.huber_delta,
            self.n_starts,
            self.n_screen,
            self.domain_forward,
            tuple(sorted(pt_points.items())),
        )
        if selecting:
            outcome = self._select(scenario, variants, settings, tie, lr_power, progress)
        else:
            variant = replace(variants[0], tied=True) if tie is True else variants[0]
            outcome = self._fit_one(scenario, variant, settings, pt_points, progress)
        return self._cpt_law(scenario, outcome, self.jackknife or selecting)

    def _select(
        self,
        scenario: CptScenario,
        variants: list[Variant],
        settings: FitSettings,
        tie: bool | str,
        lr_power: bool | str,
        progress: Progress | None,
    ) -> _Outcome:
        context = _context(scenario, _selection_data(scenario, variants, settings, lr_power))
        with one_blas_thread(), process_pool(self.n_jobs, context) as runner:
            selected = select_variant(
                scenario,
                variants,
                settings,
                tie=tie,
                lr_power=lr_power,
                runner=runner,
                progress=progress,
            )
        notes = replay_doubt_notes(selected.replay_doubt)
        return _Outcome(selected.chosen, selected.rows, selected.final, selected.pt_points, notes)

    def _fit_one(
        self,
        scenario: CptScenario,
        variant: Variant,
        settings: FitSettings,
        pt_points: dict[str, str],
        progress: Progress | None,
    ) -> _Outcome:
        chosen = dict.fromkeys(scenario.validation_sets, variant)
        recipes = [
            set_data(scenario, variant, name, settings, FINAL.points)
            for name in scenario.validation_sets
        ]
        context = _context(scenario, recipes)
        with one_blas_thread(), process_pool(self.n_jobs, context) as runner:
            final = fit_variant(
                scenario,
                chosen,
                {},
                settings,
                FINAL,
                jackknife=self.jackknife,
                runner=runner,
                progress=progress,
            )
        return _Outcome(chosen, [], final, pt_points, [])

    def _cpt_law(self, scenario: CptScenario, outcome: _Outcome, jackknife: bool) -> CptLaw:
        """The law file of a fit of CPT pilots."""
        sets = {
            name: set_fit_record(result, scenario, jackknife, outcome.pt_points[name])
            for name, result in outcome.final.items()
        }
        general = outcome.chosen["general"]
        return CptLaw(
            form=general.form,
            annealing=general.annealing,
            lam=general.lam,
            tied=list(general.shared),
            huber_delta=self.huber_delta,
            seed=self.seed,
            replay_terms=scenario.replay_terms,
            domain_forward=self.domain_forward,  # type: ignore[arg-type]
            domain_tokens=scenario.domain_tokens,
            lr_reference=scenario.lr_reference,
            notes=scenario.notes() + outcome.notes,
            info=scenario.info(),
            pretrain=pretrain_record(scenario.history),
            coverage=scenario.coverage,
            general=sets["general"],
            domain=sets["domain"],
            inputs=scenario.input_records(),
            selection=outcome.rows,
        )

    def _fit_pretrain(
        self, scenario: PretrainScenario, progress: Progress | None = None
    ) -> PretrainRunsLaw:
        """Fit pre-training pilots (:mod:`cptopt.fitting.pretraining`)."""
        variants = self._pretrain_variants()
        runs = len(scenario.run_names)
        if len(variants) > 1 and runs < 3:
            raise InputError(
                "choosing the annealing memory by cross-validation needs >= 3 pre-training "
                f"pilots, got {runs}; pass an explicit {param('annealing')} (and "
                f"{param('lam')})"
            )
        settings = FitSettings(self.seed, self.huber_delta, self.n_starts, self.n_screen)
        with one_blas_thread():
            fitted = fit_pretrain(
                scenario, variants, settings, jackknife=self.jackknife, progress=progress
            )
        with_jackknife = self.jackknife or bool(fitted.rows)
        loss = set_fit_record(fitted.final, scenario, with_jackknife, "none")
        return PretrainRunsLaw(
            annealing=fitted.chosen.annealing,  # type: ignore[arg-type]
            lam=fitted.chosen.lam,
            huber_delta=self.huber_delta,
            seed=self.seed,
            notes=scenario.notes(),
            info=scenario.info(),
            coverage=scenario.coverage,
            anneal=scenario.anneal,
            loss=loss,
            depth_sd=depth_sd(fitted.final, scenario, loss.noise, loss.interval_scale),
            inputs=scenario.input_records(),
            selection=fitted.rows,
        )


def _selection_data(
    scenario: CptScenario, variants: list[Variant], settings: FitSettings, lr_power: bool | str
) -> list[SetData]:
    """The data a selection among ``variants`` fits: each set under each memory, PT-point
    policy and shift drive it may compare, thinned for the candidates and for the final fit."""
    recipes = []
    policies = {
        name: AUTO_PT_POINTS if settings.pt_points_of(name, resolve=False) == "auto" else ()
        for name in scenario.validation_sets
    }
    averaging = variants[0].form == AUTO
    drives = (False, True) if lr_power in ("auto", True) and not averaging else (False,)
    first = REFERENCE_FORM if averaging else variants[0].form
    for variant in dict.fromkeys(replace(v, form=first) for v in variants):
        for name in scenario.validation_sets:
            laws = [replace(variant, lr_power=power) for power in drives]
            if averaging:  # the reference form compares PT points, the average is fitted
                form, steps = auto_form(name, lr_power)
                laws.append(replace(variant, form=form, lr_power=steps))
            for policy in policies[name] or (settings.pt_points_of(name),):
                for law in laws:
                    recipe = set_data(scenario, law, name, settings, 0)
                    for points in (SELECTING.points, FINAL.points):
                        recipes.append(replace(recipe, pt_points=policy, points=points))
    return recipes


def _context(scenario: CptScenario, recipes: list[SetData]) -> FitContext:
    """The fit's context with the data of ``recipes`` built (the workers inherit them)."""
    context = FitContext(scenario)
    for recipe in recipes:
        context.data(recipe)
    return context


@dataclass(frozen=True)
class Procedure:
    """How the fitter treats one kind of pilot: the settings it checks (no data needed)
    and its fit."""

    check: Callable[[LawFitter], Any]
    fit: Callable[[LawFitter, Any, Progress | None], CptLaw | PretrainRunsLaw]


#: The procedure of each scenario (a new kind of pilot adds its own).
PROCEDURES: dict[type, Procedure] = {
    CptScenario: Procedure(LawFitter._check_cpt_settings, LawFitter._fit_cpt),
    PretrainScenario: Procedure(LawFitter._pretrain_variants, LawFitter._fit_pretrain),
}
