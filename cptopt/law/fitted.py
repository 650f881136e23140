"""The fitted-law file: versioned JSON, written atomically, validated on load.

It holds everything ``predict``, ``recommend`` and ``check`` need without the pilot logs:
the law form and annealing memory (``annealing``, and ``lam`` for S2), each validation
set's parameters with their leave-one-pilot-out (jackknife) replicas, what the pilots
covered (to flag extrapolation), the scenario's inputs (for CPT pilots, the PT history
needed to continue the areas), the fit-quality report, and the inputs' SHA-256.

A law is a record of its kind of pilots, :data:`FittedLaw` (discriminated on ``kind``):
:class:`CptLaw` (CPT pilots: the ``general`` and ``domain`` sets) or
:class:`PretrainRunsLaw` (pre-training runs as pilots: one set, ``loss``). Each gives its
:class:`~cptopt.law.scenario.CptScenario` / :class:`~cptopt.law.scenario.PretrainScenario`
(``law.scenario``), which builds its inputs. Commands for CPT laws only narrow a law
once, when they load it (:func:`load_cpt_law`, :func:`cpt_law`).

This module is the law file's reader: it alone looks at a file's ``kind`` (and upgrades
the files of schemas 3 and 4).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cptopt._io import atomic_write_text, read_text, remove_stale_temps
from cptopt._validation import first_non_finite, validate
from cptopt._version import __version__
from cptopt.exceptions import InputError, SchemaVersionError, param
from cptopt.law.anneal_coverage import AnnealCoverage
from cptopt.law.areas import Areas
from cptopt.law.averaged import build_law, is_averaged
from cptopt.law.forms import FORMS, LawForm, PretrainPartForm
from cptopt.law.records import PretrainRecord, SelectionRow, SetFit
from cptopt.law.scenario import (
    LOSS,
    Coverage,
    CptRunInput,
    CptScenario,
    InputNeeds,
    InputRecord,
    PretrainRunInput,
    PretrainScenario,
)

#: Bump when the file layout changes incompatibly (2: the annealing memory, lam optional;
#: 3: a replay form and LR power per set, the domain forward area, the domain corpus size,
#: the PT-phase points used, the length-extrapolation error; 4: ``kind``, laws fitted to
#: pre-training pilots (no domain set, no PT history), the ``mpl1`` memory; 5: a record
#: per kind: a pre-training law keeps only its own keys and names its set ``loss``; its
#: optional ``anneal`` and ``depth_sd``, added within 5, default to None when absent); 6: a
#: PT history of 10,000 updates or more packed (``records.pack_lr``), not a JSON list.
SCHEMA_VERSION = 6
#: The versions this cptopt reads: a version-3 file is a CPT law of version 4 (the keys
#: version 4 added take their defaults); a version-4 file is upgraded on load; a version-5
#: file is a version-6 one with every PT history as a list.
READABLE_SCHEMA_VERSIONS = (3, 4, 5, 6)
#: Where ``cptopt fit`` writes and later commands look by default.
DEFAULT_LAW_PATH = "cptopt-law.json"


class LawRecord(BaseModel):
    """What every fitted law offers; its fields are its kind's (:class:`CptLaw`,
    :class:`PretrainRunsLaw`)."""

    model_config = ConfigDict(extra="forbid")

    if TYPE_CHECKING:  # fields of every record, declared there (the file keeps their order)
        kind: str
        annealing: str
        lam: float | None
        coverage: Coverage

    #: What a law of this kind was fitted to, and what it predicts (for the error of a
    #: use that needs another kind).
    fitted_to: ClassVar[str] = "pilots"
    #: The law forms a set of a law of this kind may have.
    forms: ClassVar[tuple[str, ...]] = ()

    def problem(self) -> str | None:
        """The first inconsistency of the law as a whole, or None: the S2 memory factor,
        each set's form, the coverage, the parts its kind needs, each set against its form
        (what :func:`load_law` checks before any command uses a law file)."""
        if self.annealing == "s2" and (self.lam is None or not 0 < self.lam < 1):
            return f"lam == {self.lam!r}: the S2 memory needs a factor in (0, 1)"
        for name in self.validation_sets:
            known = self._forms_besides(self.set_fit(name).form)
            if known:
                return (
                    f"{name}.form: {self.set_fit(name).form!r} is not a form of this kind of "
                    f"law ({known})"
                )
        found = self.coverage.problem() or self._kind_problem()
        for name in self.validation_sets:
            if found:
                return found
            found = self.set_fit(name).problem(name, self.form_for(name))
        return found

    def _kind_problem(self) -> str | None:
        """The first inconsistency of the parts a law of this kind has besides its sets."""
        return None

    @classmethod
    def _forms_besides(cls, form: str) -> str | None:
        """None when ``form`` is a form of this kind of law, else the forms in words."""
        return None if form in cls.forms else ", ".join(cls.forms)

    @property
    def scenario(self) -> CptScenario | PretrainScenario:
        """The scenario of the pilots this law was fitted to (it builds the law's inputs)."""
        raise NotImplementedError

    @property
    def validation_sets(self) -> tuple[str, ...]:
        """The sets this law was fitted on (its scenario's)."""
        return self.scenario.validation_sets

    @property
    def set_fits(self) -> list[SetFit]:
        return [self.set_fit(name) for name in self.validation_sets]

    def set_fit(self, validation_set: str) -> SetFit:
        """The fit of one of :attr:`validation_sets`."""
        if validation_set not in self.validation_sets:
            raise InputError(
                f"this law has no {validation_set} set; it was fitted on "
                f"{', '.join(self.validation_sets)}"
            )
        return getattr(self, validation_set)

    def form_for(self, validation_set: str) -> LawForm:
        """The law form of ``validation_set`` (evaluate it with that set's ``values``)."""
        fit = self.set_fit(validation_set)
        return build_law(
            fit.form,
            validation_set,
            self.scenario.replay_terms,
            self.scenario.checkpoint_known,
            self.annealing,
            domain_forward=self._domain_forward,
            lr_power=fit.lr_power,
        )

    @property
    def _domain_forward(self) -> str:
        return "frozen"

    @property
    def needs_history(self) -> bool:
        """Whether predictions need the drop history (a set's form says: a multi-power
        annealing memory)."""
        return any(self.form_for(name).needs_history for name in self.validation_sets)

    @property
    def needs_steps(self) -> bool:
        """Whether predictions need the per-step LRs (a set's form says: its shift, or an
        averaged law's member's, is driven by LR^q)."""
        return any(self.form_for(name).needs_steps for name in self.validation_sets)

    @property
    def needs(self) -> InputNeeds:
        """What this law reads from a run besides its areas."""
        return InputNeeds(self.lam, self.needs_history, self.needs_steps)

    @property
    def annealing_description(self) -> str:
        """The annealing memory in words, for reports."""
        if self.annealing == "mpl":
            return "multi-power annealing" + (" (tied)" if self._tied else "")
        if self.annealing == "mpl1":
            return "multi-power annealing, zeta = 1"
        return f"lambda = {self.lam:g}"

    @property
    def _tied(self) -> bool:
        return False

    def save(self, path: str | Path) -> Path:
        """Write the law as JSON, atomically."""
        return atomic_write_text(path, self.model_dump_json(indent=1) + "\n")


class CptLaw(LawRecord):
    """A law fitted to CPT pilots: the ``general`` and ``domain`` sets, each with its own
    replay form (``form`` names the general law's), and the checkpoints' PT history."""

    fitted_to: ClassVar[str] = "CPT pilots (kind: cpt)"
    forms: ClassVar[tuple[str, ...]] = tuple(FORMS)

    schema_version: int = SCHEMA_VERSION
    cptopt_version: str = __version__
    kind: Literal["cpt"] = Field(default="cpt", description="the pilots: CPT runs")
    form: str = Field(description="the general law's replay form (each set's: SetFit.form)")
    annealing: Literal["s2", "mpl", "mpl1"] = "s2"
    lam: float | None = Field(description="S2 memory factor (None with the mpl annealing)")
    tied: list[str] = Field(
        default_factory=list, description="parameters the general and domain laws share"
    )
    huber_delta: float
    seed: int
    replay_terms: bool
    domain_forward: Literal["advance", "frozen"] = Field(
        default="frozen",
        description="whether CPT steps advance the domain law's PT power law (advance: Eq. 4)",
    )
    domain_tokens: float | None = Field(
        default=None, description="unique tokens of the domain corpus (repetition discount)"
    )
    lr_reference: float | None = Field(
        default=None, description="LR the per-step LRs are divided by (laws with LR power)"
    )
    notes: list[str] = Field(default_factory=list, description="warnings about the fit")
    info: list[str] = Field(
        default_factory=list, description="how the inputs were read (e.g. a matched schedule)"
    )
    pretrain: PretrainRecord = Field(description="the checkpoints' PT history")
    coverage: Coverage
    general: SetFit
    domain: SetFit
    inputs: list[InputRecord] = Field(default_factory=list)
    selection: list[SelectionRow] = Field(
        default_factory=list, description="candidate law variants and their CV errors"
    )

    @property
    def scenario(self) -> CptScenario:
        return CptScenario(
            self.pretrain.history(), self.coverage, self.domain_tokens, self.lr_reference
        )

    def _kind_problem(self) -> str | None:
        cov, ratios = self.coverage, len(self.coverage.replay_ratios)
        if not ratios or not cov.checkpoints:
            empty = "replay_ratios" if not ratios else "checkpoints"
            return f"coverage.{empty}: empty; a CPT law lists its pilots' {empty.replace('_', ' ')}"
        if self.replay_terms != (ratios >= 2):
            return f"replay_terms: {self.replay_terms}, but coverage.replay_ratios has {ratios}"
        if self.form != self.general.form:
            return f"form: {self.form!r}, but general.form is {self.general.form!r}"
        found = self.pretrain.problem()
        if found:
            return found
        stray = [name for name in cov.checkpoints if name not in self.pretrain.checkpoints]
        if self.pretrain.known and stray:
            return f"coverage.checkpoints: {stray[0]!r} is not one of pretrain.checkpoints"
        sizes = {"domain_tokens": self.domain_tokens, "lr_reference": self.lr_reference}
        for key, value in sizes.items():
            if value is not None and value <= 0:
                return f"{key} == {value!r}, must be > 0"
        if self.domain_tokens is not None and not cov.tokens_per_step:
            return "domain_tokens: given, but coverage.tokens_per_step is empty (no step's tokens)"
        if self.lr_reference is None and (self.general.lr_power or self.domain.lr_power):
            return "lr_reference: missing; a set with lr_power divides the LRs by it"
        shared = set(self.general.parameter_names) & set(self.domain.parameter_names)
        untied = [name for name in self.tied if name not in shared]
        return f"tied: {untied[0]!r} is not a parameter of both sets" if untied else None

    @classmethod
    def _forms_besides(cls, form: str) -> str | None:
        # an average's members and weights are checked as the file is read (SetFit)
        if form in cls.forms or is_averaged(form):
            return None
        return f"{', '.join(cls.forms)}, or an average such as 'relax/relax^q'"

    @property
    def _domain_forward(self) -> str:
        return self.domain_forward

    @property
    def _tied(self) -> bool:
        return bool(self.tied)

    @property
    def forms_description(self) -> str:
        """The replay form(s) in words: one name, or the general's and the domain's."""
        names = [
            fit.form + (" + LR^q" if fit.lr_power and not is_averaged(fit.form) else "")
            for fit in self.set_fits
        ]
        if len(set(names)) == 1:
            return names[0]
        return f"general {names[0]}, domain {names[1]}"

    def run_inputs(self, run: CptRunInput, steps: np.ndarray) -> Areas:
        """This law's inputs at CPT ``steps`` of ``run`` (its scenario's, with its needs)."""
        return self.scenario.inputs(run, np.asarray(steps), self.needs)


class PretrainRunsLaw(LawRecord):
    """A law fitted to pre-training runs as pilots (manifest ``kind: pretrain``): the
    law's pre-training part (form ``pretrain``), one set, ``loss``."""

    fitted_to: ClassVar[str] = (
        "pre-training pilots (kind: pretrain) and predicts pre-training schedules only"
    )
    forms: ClassVar[tuple[str, ...]] = (PretrainPartForm.name,)

    schema_version: int = SCHEMA_VERSION
    cptopt_version: str = __version__
    kind: Literal["pretrain"] = Field(
        default="pretrain", description="the pilots: pre-training runs"
    )
    annealing: Literal["s2", "mpl", "mpl1"] = "s2"
    lam: float | None = Field(description="S2 memory factor (None with a multi-power memory)")
    huber_delta: float
    seed: int
    notes: list[str] = Field(default_factory=list, description="warnings about the fit")
    info: list[str] = Field(
        default_factory=list, description="how the inputs were read (e.g. a matched schedule)"
    )
    coverage: Coverage
    anneal: AnnealCoverage | None = Field(
        default=None,
        description="how far the pilots annealed (cptopt.law.anneal_coverage; None: not "
        "kept, law files of earlier versions)",
    )
    loss: SetFit = Field(description="the runs' one validation loss")
    depth_sd: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="log-scale SD per unit of anneal-depth gap to the pilots, from their "
        "left-out runs; widens intervals where a schedule anneals unlike any pilot (None: "
        "not measured)",
    )
    inputs: list[InputRecord] = Field(default_factory=list)
    selection: list[SelectionRow] = Field(
        default_factory=list, description="the annealing memories compared, their CV errors"
    )

    @property
    def scenario(self) -> PretrainScenario:
        return PretrainScenario(self.coverage, anneal=self.anneal)

    def anneal_sd(self, run: PretrainRunInput, steps: np.ndarray) -> np.ndarray | float:
        """Log-scale SD at ``steps`` of ``run`` for how far it anneals from the pilots: the
        fit's SD per unit of gap times the gap (0 when the law did not measure it)."""
        if not self.depth_sd:
            return 0.0
        return self.depth_sd * self.scenario.depth_gap(run, steps)


#: A fitted law of either kind (pydantic discriminates on ``kind``); load with
#: :func:`load_law`, test with ``isinstance(law, LawRecord)``.
FittedLaw = Annotated[CptLaw | PretrainRunsLaw, Field(discriminator="kind")]
#: The record of each ``kind``.
LAW_RECORDS: dict[str, type[CptLaw] | type[PretrainRunsLaw]] = {
    "cpt": CptLaw,
    "pretrain": PretrainRunsLaw,
}
#: Keys of a version-4 pre-training law that a version-5 one no longer has.
_CPT_ONLY_KEYS = (
    "form",
    "tied",
    "replay_terms",
    "domain_forward",
    "domain_tokens",
    "lr_reference",
    "pretrain",
    "domain",
)


def _upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """A file of an older readable schema as this schema's keys."""
    version, data = data["schema_version"], {**data, "schema_version": SCHEMA_VERSION}
    data.setdefault("kind", "cpt")  # version 3 had no kind: every law was a CPT law
    if version == 4 and data["kind"] == "pretrain" and "general" in data:
        fit = data.pop("general")
        if isinstance(fit, dict):
            fit = {**fit, "validation_set": LOSS}
        data[LOSS] = fit
        data = {key: value for key, value in data.items() if key not in _CPT_ONLY_KEYS}
    return data


def load_law(path: str | Path) -> CptLaw | PretrainRunsLaw:
    """Read a law file, checked as a whole: a missing file, bad JSON, another schema
    version, a NaN or infinity anywhere, or parts that do not fit together
    (:meth:`LawRecord.problem`) are an InputError naming the file and the field.

    Returns the record of the file's kind (:data:`FittedLaw`).
    """
    path = Path(path)
    remove_stale_temps(path)  # left by a 'cptopt fit' killed while writing this file
    if not path.exists():
        raise InputError(f"law file not found: {path} (create it with 'cptopt fit')")
    try:
        data = json.loads(read_text(path, "law file"))
        non_finite = first_non_finite(data)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be a law file") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise InputError(f"{path}: not a cptopt law file (no 'schema_version')")
    if non_finite:
        raise InputError(f"{path}: {non_finite}")
    if data["schema_version"] not in READABLE_SCHEMA_VERSIONS:
        readable = ", ".join(map(str, READABLE_SCHEMA_VERSIONS[:-1]))
        readable += f" and {READABLE_SCHEMA_VERSIONS[-1]}"
        raise SchemaVersionError(
            f"{path}: law file schema version {data['schema_version']!r}, this cptopt reads "
            f"versions {readable}; refit with 'cptopt fit'"
        )
    data = _upgraded(data)
    record = LAW_RECORDS.get(data["kind"]) if isinstance(data["kind"], str) else None
    if record is None:
        raise InputError(
            f"{path}: kind: {data['kind']!r} is not a kind of law ({', '.join(LAW_RECORDS)})"
        )
    law = validate(record, data, str(path))
    problem = law.problem()
    if problem:
        raise InputError(f"{path}: {problem}")
    return law


def cpt_law(law: CptLaw | PretrainRunsLaw, purpose: str, source: str | None = None) -> CptLaw:
    """``law`` as a CPT law, or a one-line error naming ``source`` (its file, if given) and
    ``purpose`` (what needs a CPT law: a function, e.g. ``recommend()``, or a parameter;
    marked with :func:`cptopt.exceptions.param`, the command line names it its way)."""
    if isinstance(law, CptLaw):
        return law
    where = f"{source}: kind: " if source else ""
    raise InputError(
        f"{where}{param(purpose)} needs a CPT law; this law was fitted to {law.fitted_to} "
        f"({param('predict()')})"
    )


def load_cpt_law(path: str | Path, purpose: str) -> CptLaw:
    """:func:`load_law` for what needs a CPT law (``purpose``, see :func:`cpt_law`)."""
    return cpt_law(load_law(path), purpose, str(path))
