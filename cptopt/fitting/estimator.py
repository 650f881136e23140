"""The estimator: :class:`LawFitter` fits both validation sets of a pilot set.

It resolves its settings into the law variants to try, runs the selection
(:mod:`cptopt.fitting.selection`) or the one variant asked for, and assembles the law file
(:mod:`cptopt.fitting.assemble`).
"""

from __future__ import annotations

from cptopt.exceptions import InputError, NotFittedError
from cptopt.fitting.assemble import coverage, input_records, pretrain_record, set_fit_record
from cptopt.fitting.jobs import FINAL, FitSettings, Variant, fit_variant, process_pool
from cptopt.fitting.selection import AUTO_ANNEALINGS, AUTO_FORMS, AUTO_LAMBDAS, select_variant
from cptopt.law.annealing import ANNEALINGS
from cptopt.law.fitted import FittedLaw
from cptopt.law.forms import FORMS, PAPER_LAMBDA
from cptopt.pilots.runs import PilotSet

#: ``tie`` as words (the command line's ``--tie``).
TIE_WORDS: dict[str, bool | str] = {"yes": True, "no": False, "auto": "auto"}


class LawFitter:
    """Fits the CPT law to a :class:`~cptopt.pilots.PilotSet` (scikit-learn style).

    The constructor only stores settings; :meth:`fit` validates the pilots, fits both
    validation sets and sets ``law_`` (a :class:`~cptopt.law.FittedLaw`); reading ``law_``
    before that raises :class:`~cptopt.exceptions.NotFittedError`.

    Parameters
    ----------
    form : replay form, ``"paper"`` (Eq. 4 / Eq. 8), ``"exp"``, ``"share"``, ``"mix"`` (see
        :mod:`cptopt.law.forms`), or ``"auto"``: every form of ``AUTO_FORMS`` is a candidate.
    lam : annealing-memory factor of the m-recursion (paper: 0.999), or ``"auto"`` to choose
        it by CV from ``AUTO_LAMBDAS``. A number implies ``annealing="s2"``. Default: 0.999
        for ``form="paper"`` (unless ``annealing="mpl"``), else ``"auto"``.
    annealing : ``"s2"`` (the paper's m-recursion), ``"mpl"`` (multi-power memory, no
        lambda) or ``"auto"`` (both are candidates).
    tie : share the multi-power memory (``TIED_PARAMETERS``) between the general and the
        domain law: ``True`` (or ``"yes"``), ``False`` (``"no"``, the default), or ``"auto"``
        (when the memory chosen is ``mpl``, the tied variant is a candidate of its own, kept if
        its CV is within the noise of the untied one). Off by default (the README says why).
    huber_delta : Huber threshold on log residuals (paper: 1e-3).
    n_starts : polished starts per fit; ``n_screen`` random shapes are screened for them.
    seed : seed of the random starts (same seed, same law).
    jackknife : refit leaving each pilot out (CV error and uncertainties); needs >= 3 pilots.
    n_jobs : processes for the general and domain fits (default: 2 if the machine has 2
        cores and processes can be forked, else 1). The result does not depend on it.

    With several candidates, the variant is chosen by leave-one-pilot-out CV on the pilots
    (:func:`~cptopt.fitting.selection.select_variant`); the report's selection table lists
    every candidate.
    """

    def __init__(
        self,
        form: str = "auto",
        lam: float | str | None = None,
        annealing: str = "auto",
        tie: bool | str = False,
        huber_delta: float = 1e-3,
        n_starts: int = 3,
        n_screen: int = 48,
        seed: int = 0,
        jackknife: bool = True,
        n_jobs: int | None = None,
    ) -> None:
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
        self._law: FittedLaw | None = None

    @property
    def law_(self) -> FittedLaw:
        """The fitted law (set by :meth:`fit`)."""
        if self._law is None:
            raise NotFittedError("this LawFitter is not fitted yet: call fit(pilots) first")
        return self._law

    def check_settings(self) -> None:
        """Raise :class:`InputError` for settings :meth:`fit` would refuse (no data needed)."""
        self._variants()

    def _memories(self) -> tuple[tuple[float, ...], tuple[str, ...]]:
        """The S2 lambdas and the annealing memories the settings allow."""
        if self.annealing not in ("auto", *ANNEALINGS):
            choices = ", ".join(("auto", *ANNEALINGS))
            raise InputError(f"--annealing == {self.annealing!r}, must be one of {choices}")
        lam = self.lam
        if lam is None:  # the paper's law means the paper's lambda, unless told otherwise
            paper = self.form == "paper" and self.annealing in ("auto", "s2")
            lam = PAPER_LAMBDA if paper else "auto"
        if lam == "auto":
            return AUTO_LAMBDAS, AUTO_ANNEALINGS if self.annealing == "auto" else (self.annealing,)
        try:
            value = float(lam)
        except (TypeError, ValueError):
            raise InputError(f"--lam == {lam!r}, must be a number in (0, 1) or 'auto'") from None
        if not 0 < value < 1:
            raise InputError(f"--lam == {value}, must be in (0, 1)")
        if self.annealing == "mpl":
            raise InputError("--lam is the S2 memory: it cannot be set with --annealing mpl")
        return (value,), ("s2",)

    def _variants(self) -> tuple[list[Variant], bool | str]:
        """The variants to fit (several: choose by CV) and the resolved ``tie``."""
        if self.form != "auto" and self.form not in FORMS:
            choices = ", ".join(("auto", *FORMS))
            raise InputError(f"--law == {self.form!r}: unknown law form; choose from {choices}")
        forms = AUTO_FORMS if self.form == "auto" else (self.form,)
        tie = TIE_WORDS.get(self.tie, self.tie) if isinstance(self.tie, str) else self.tie
        if tie not in ("auto", True, False):
            raise InputError(f"--tie == {self.tie!r}, must be yes, no or auto")
        lams, annealings = self._memories()
        if tie is True:
            if annealings == ("s2",):
                raise InputError("--tie: only the multi-power memory is tied; use --annealing mpl")
            annealings = ("mpl",)  # tying asks for the multi-power memory
        variants = []
        for form in forms:
            if "s2" in annealings:
                variants += [Variant(form, lam) for lam in lams]
            if "mpl" in annealings:
                variants.append(Variant(form, None, "mpl"))
        return variants, tie

    def fit(self, pilots: PilotSet) -> LawFitter:
        """Fit both validation sets (choosing the variant by CV if asked); returns ``self``."""
        from threadpoolctl import threadpool_limits

        variants, tie = self._variants()
        replay_ratios = sorted({run.replay_ratio for run in pilots.runs})
        replay_terms = len(replay_ratios) >= 2
        notes = list(dict.fromkeys(note for run in pilots.runs for note in run.notes))
        if not replay_terms:
            notes.append(
                f"all pilots use replay ratio {replay_ratios[0]:g}: the replay terms are not "
                "identifiable, so the law predicts that ratio only (replay is fixed)"
            )
        elif len(replay_ratios) == 2:
            notes.append("only 2 distinct replay ratios: the replay terms are weakly identified")
        selecting = len(variants) > 1 or tie == "auto"
        logged = [
            sum(run.curve(name) is not None for run in pilots.runs)
            for name in ("general", "domain")
        ]
        if selecting and min(logged) < 3:
            raise InputError(
                "choosing the law variant by cross-validation needs >= 3 pilots logging each "
                f"loss, got {min(logged)}; pass an explicit --law, --annealing and --lam"
            )
        # Small arrays: multi-threaded BLAS only adds overhead (and contention) here.
        settings = FitSettings(self.seed, self.huber_delta, self.n_starts, self.n_screen)
        with threadpool_limits(limits=1), process_pool(self.n_jobs) as pool:
            if selecting:
                chosen, selection, final = select_variant(
                    pilots, replay_terms, variants, settings, tie=tie, pool=pool
                )
            else:
                chosen, selection = variants[0], []
                if tie is True:
                    chosen = Variant(chosen.form, chosen.lam, chosen.annealing, tied=True)
                final = fit_variant(
                    pilots,
                    replay_terms,
                    chosen,
                    {},
                    settings,
                    FINAL,
                    jackknife=self.jackknife,
                    pool=pool,
                )
        sets = {
            name: set_fit_record(result, pilots, self.jackknife or selecting)
            for name, result in final.items()
        }
        self._law = FittedLaw(
            form=chosen.form,
            annealing=chosen.annealing,
            lam=chosen.lam,
            tied=list(chosen.shared),
            huber_delta=self.huber_delta,
            seed=self.seed,
            replay_terms=replay_terms,
            notes=notes,
            pretrain=pretrain_record(pilots),
            coverage=coverage(pilots),
            general=sets["general"],
            domain=sets["domain"],
            inputs=input_records(pilots),
            selection=selection,
        )
        return self
