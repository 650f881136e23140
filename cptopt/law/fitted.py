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
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from cptopt._io import atomic_write_text, read_text
from cptopt._validation import validate
from cptopt._version import __version__
from cptopt.exceptions import InputError, SchemaVersionError, param
from cptopt.law.anneal_coverage import AnnealCoverage
from cptopt.law.areas import Areas
from cptopt.law.averaged import build_law, check_weights, is_averaged, member_forms
from cptopt.law.forms import LawForm
from cptopt.law.parameters import Parameter
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
from cptopt.pilots.runs import PretrainHistory

#: Bump when the file layout changes incompatibly (2: the annealing memory, lam optional;
#: 3: a replay form and LR power per set, the domain forward area, the domain corpus size,
#: the PT-phase points used, the length-extrapolation error; 4: ``kind``, laws fitted to
#: pre-training pilots (no domain set, no PT history), the ``mpl1`` memory; 5: a record
#: per kind: a pre-training law keeps only its own keys and names its set ``loss``; its
#: optional ``anneal`` and ``depth_sd``, added within 5, default to None when absent).
SCHEMA_VERSION = 5
#: The versions this cptopt reads: a version-3 file is a CPT law of version 4 (the keys
#: version 4 added take their defaults); a version-4 file is upgraded on load.
READABLE_SCHEMA_VERSIONS = (3, 4, 5)
#: Where ``cptopt fit`` writes and later commands look by default.
DEFAULT_LAW_PATH = "cptopt-law.json"


class RunFit(BaseModel):
    """Fit error on one pilot curve (relative errors, step 0 excluded)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    n_points: int
    mean_abs_error: float = Field(description="mean |pred/obs - 1| over the curve")
    max_abs_error: float
    final_error: float = Field(description="pred/obs - 1 at the last logged step")
    cv_mean_abs_error: float | None = Field(
        default=None, description="same as mean_abs_error, law refitted without this run"
    )
    cv_final_error: float | None = None


class SetFit(BaseModel):
    """The fitted law of one validation set and its quality."""

    model_config = ConfigDict(extra="forbid")

    validation_set: str
    form: str = Field(description="replay form of this set's law (see cptopt.law.forms)")
    lr_power: bool = Field(
        default=False, description="the shift is driven by sum of LR^q (q fitted), not the area"
    )
    pt_points: Literal["all", "checkpoint", "none"] = Field(
        default="all", description="PT-phase points pooled in the fit"
    )
    parameter_names: list[str]
    values: list[float]
    parameters: list[Parameter]
    derived: dict[str, float]
    jackknife: list[list[float]] = Field(
        default_factory=list, description="parameter vectors refitted leaving one pilot out"
    )
    noise: float = Field(description="robust SD of log residuals (eval-to-eval scatter)")
    n_points: int
    n_pretrain_points: int
    r2: float
    mean_abs_error: float
    huber_cost: float
    cv_error: float | None = Field(
        default=None, description="mean over pilots of the left-out curve's mean |rel error|"
    )
    cv_rms: float | None = Field(
        default=None,
        description="RMS log error of the left-out curve points of the pilots whose replay "
        "ratio another pilot shares, or of all pilots (sets the interval scale)",
    )
    interval_scale: float | None = Field(
        default=None,
        description="factor on sqrt(noise^2 + jackknife spread^2) that makes the intervals "
        "cover the pilots' own left-out points at the 90 % level (None: no CV)",
    )
    length_rms: float | None = Field(
        default=None,
        description="RMS log error at the pilots' ends of the law refitted on their first "
        "halves (a 2x length extrapolation); widens intervals beyond the pilots' length",
    )
    runs: list[RunFit]
    at_bound: list[str]
    weakly_identified: list[str]
    starts_agree: bool = Field(description="the two best starts reached the same cost")

    @field_validator("form")
    @classmethod
    def _known_members(cls, form: str) -> str:
        if is_averaged(form):
            member_forms(form)
        return form

    @field_validator("values")
    @classmethod
    def _averaged_weights(cls, values: list[float], info: ValidationInfo) -> list[float]:
        form, names = info.data.get("form"), info.data.get("parameter_names")
        if form is not None and names is not None and is_averaged(form):
            check_weights(form, names, values)
        return values


class PretrainRecord(BaseModel):
    """The PT history needed to continue the areas (``lr`` is None when unknown)."""

    model_config = ConfigDict(extra="forbid")

    known: bool
    warmup_steps: int = 0
    checkpoints: dict[str, int] = Field(default_factory=dict)
    final_lr: float = 0.0
    lr: list[float] | None = None

    def history(self) -> PretrainHistory:
        lr = None if self.lr is None else np.asarray(self.lr, dtype=float)
        return PretrainHistory(
            lr=lr,
            warmup_steps=self.warmup_steps,
            checkpoints=self.checkpoints,
            final_lr=self.final_lr,
        )


class SelectionRow(BaseModel):
    """One law variant compared while choosing the law: its cross-validated errors.

    CV errors are the mean |relative error| of a pilot's curve when the law is refitted
    without it, averaged over pilots (``cv_per_pilot`` by pilot index).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    form: str
    annealing: str
    lam: float | None
    tied: bool
    n_params: int
    cv_general: float | None
    cv_domain: float | None
    cv_mean: float
    cv_memory: float = Field(
        description="CV error over the pilots whose replay ratio another pilot shares: the "
        "folds that test the annealing memory rather than the replay form"
    )
    cv_per_pilot: dict[str, float]
    lr_power: bool = False
    n_params_general: int = 0
    n_params_domain: int = 0
    cv_per_pilot_general: dict[str, float] = Field(default_factory=dict)
    cv_per_pilot_domain: dict[str, float] = Field(default_factory=dict)
    length_rms_domain: float | None = Field(
        default=None, description="the domain law's 2x length-extrapolation RMS (selection)"
    )
    chosen: bool = False
    chosen_general: bool = False
    chosen_domain: bool = False
    cv_gap_se: float | None = Field(
        default=None,
        description="paired standard error of this row's CV gap to the best row (the "
        "one-standard-error rule); None when the row was not in that comparison",
    )


class LawRecord(BaseModel):
    """What every fitted law offers; its fields are its kind's (:class:`CptLaw`,
    :class:`PretrainRunsLaw`)."""

    model_config = ConfigDict(extra="forbid")

    if TYPE_CHECKING:  # fields of every record, declared there (the file keeps their order)
        kind: str
        annealing: str
        lam: float | None

    #: What a law of this kind was fitted to, and what it predicts (for the error of a
    #: use that needs another kind).
    fitted_to: ClassVar[str] = "pilots"

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
    """Read a law file; a missing file, bad JSON or another schema version is an InputError.

    Returns the record of the file's kind (:data:`FittedLaw`).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"law file not found: {path} (create it with 'cptopt fit')")
    try:
        data = json.loads(read_text(path, "law file"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise InputError(f"{path}: not a cptopt law file (no 'schema_version')")
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
    return validate(record, data, str(path))


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
