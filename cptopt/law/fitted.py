"""The fitted-law file: versioned JSON, written atomically, validated on load.

It holds everything ``predict``, ``recommend`` and ``check`` need without the pilot logs:
the law form and annealing memory (``annealing``, and ``lam`` for S2), both parameter sets
with their leave-one-pilot-out (jackknife) replicas, the PT history needed to continue the
areas, what the pilots covered (to flag extrapolation), the fit-quality report, and the
inputs' SHA-256.

A law fitted to pre-training pilots (``kind: pretrain``) has one validation set (``general``,
the runs' one loss), no domain set and no PT history: it predicts pre-training schedules
only (:func:`cptopt.prediction.predict_pretrain`); CPT commands refuse it
(:meth:`FittedLaw.require_cpt`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cptopt._io import atomic_write_text, read_text
from cptopt._validation import validate
from cptopt._version import __version__
from cptopt.exceptions import InputError, SchemaVersionError
from cptopt.law.annealing import ANNEALINGS
from cptopt.law.areas import (
    Areas,
    CheckpointState,
    checkpoint_state,
    cpt_point_areas,
    pretrain_areas,
    unknown_checkpoint,
)
from cptopt.law.forms import LawForm, make_law
from cptopt.law.parameters import Parameter
from cptopt.pilots.runs import PretrainHistory

#: Bump when the file layout changes incompatibly (2: the annealing memory, lam optional;
#: 3: a replay form and LR power per set, the domain forward area, the domain corpus size,
#: the PT-phase points used, the length-extrapolation error; 4: ``kind``, laws fitted to
#: pre-training pilots (no domain set, no PT history), the ``mpl1`` memory).
SCHEMA_VERSION = 4
#: The versions this cptopt reads: a version-3 file is a CPT law of version 4 (the keys
#: version 4 added take their defaults).
READABLE_SCHEMA_VERSIONS = (3, 4)
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


class Coverage(BaseModel):
    """What the pilots covered: predictions outside it are flagged as extrapolation."""

    model_config = ConfigDict(extra="forbid")

    peak_lr_min: float
    peak_lr_max: float
    replay_ratios: list[float]
    steps_min: int
    steps_max: int
    tokens_per_step: list[int]
    checkpoints: list[str]


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


class InputRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    source: str
    sha256: str


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


class FittedLaw(BaseModel):
    """A fitted law. Load with :func:`load_law`.

    ``kind`` "cpt": the CPT law, both validation sets. ``kind`` "pretrain": the law's
    pre-training part (form ``pretrain``) fitted to pre-training pilots: one validation
    set (``general``), ``domain`` and ``pretrain`` None.
    """

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    cptopt_version: str = __version__
    kind: Literal["cpt", "pretrain"] = Field(
        default="cpt", description="the pilots: CPT runs, or pre-training runs"
    )
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
    pretrain: PretrainRecord | None = Field(
        default=None, description="the checkpoints' PT history (CPT laws only)"
    )
    coverage: Coverage
    general: SetFit
    domain: SetFit | None = Field(default=None, description="the domain set (CPT laws only)")
    inputs: list[InputRecord] = Field(default_factory=list)
    selection: list[SelectionRow] = Field(
        default_factory=list, description="candidate law variants and their CV errors"
    )

    @model_validator(mode="after")
    def _consistent_kind(self) -> FittedLaw:
        if self.kind == "cpt" and (self.domain is None or self.pretrain is None):
            raise ValueError("a CPT law needs 'domain' and 'pretrain'")
        if self.kind == "pretrain" and (self.domain or self.pretrain or self.form != "pretrain"):
            raise ValueError("a pre-training law has form 'pretrain', no 'domain', no 'pretrain'")
        return self

    @property
    def validation_sets(self) -> tuple[str, ...]:
        """The sets this law was fitted on (``general`` only for pre-training pilots)."""
        return ("general",) if self.domain is None else ("general", "domain")

    @property
    def set_fits(self) -> list[SetFit]:
        return [self.set_fit(name) for name in self.validation_sets]

    def set_fit(self, validation_set: str) -> SetFit:
        fit = self.general if validation_set == "general" else self.domain
        if fit is None:
            raise InputError(
                f"this law has no {validation_set} set: it was fitted to pre-training pilots"
            )
        return fit

    def require_cpt(self, what: str, source: str | None = None) -> None:
        """A one-line error (naming ``source``, the law file, if given) when ``what``, a
        CPT-only command or function, gets a law fitted to pre-training pilots."""
        if self.kind != "cpt":
            where = f"{source}: kind: " if source else ""
            raise InputError(
                f"{where}{what} needs a CPT law; this law was fitted to pre-training pilots "
                "(kind: pretrain) and predicts pre-training schedules only (cptopt predict)"
            )

    def form_for(self, validation_set: str) -> LawForm:
        """The law form of ``validation_set`` (evaluate it with that set's ``values``)."""
        fit = self.set_fit(validation_set)
        return make_law(
            fit.form,
            validation_set,
            self.replay_terms,
            self.pretrain.known if self.pretrain is not None else True,
            self.annealing,
            domain_forward=self.domain_forward,
            lr_power=fit.lr_power,
        )

    @property
    def forms_description(self) -> str:
        """The replay form(s) in words: one name, or the general's and the domain's."""
        names = [fit.form + (" + LR^q" if fit.lr_power else "") for fit in self.set_fits]
        if len(set(names)) == 1:
            return names[0]
        return f"general {names[0]}, domain {names[1]}"

    @property
    def needs_history(self) -> bool:
        """Whether predictions need the drop history (a multi-power annealing memory)."""
        return ANNEALINGS[self.annealing].needs_history

    @property
    def needs_steps(self) -> bool:
        """Whether predictions need the per-step LRs (a set whose shift is driven by LR^q)."""
        return any(fit.lr_power for fit in self.set_fits)

    def corpus_tokens_per_step(self, tokens_per_step: float | None) -> float | None:
        """Tokens per step for the repetition discount: the one given, else the pilots'
        when they all used one."""
        if tokens_per_step:
            return float(tokens_per_step)
        used = self.coverage.tokens_per_step
        return float(used[0]) if len(used) == 1 else None

    def point_areas(
        self,
        lr: np.ndarray,
        steps: np.ndarray,
        state: CheckpointState,
        replay_ratio: float,
        tokens_per_step: float | None = None,
        domain_tokens: float | None = None,
    ) -> Areas:
        """The law's inputs at CPT ``steps`` of a run with per-step LRs ``lr``: its S2
        memory, drop history, repetition discount and per-step LRs as this law needs.

        ``domain_tokens`` (the domain corpus size) defaults to the pilots' (manifest)."""
        return cpt_point_areas(
            lr,
            steps,
            self.lam,
            state,
            replay_ratio,
            history=self.needs_history,
            tokens_per_step=self.corpus_tokens_per_step(tokens_per_step),
            domain_tokens=domain_tokens or self.domain_tokens,
            lr_reference=self.lr_reference if self.needs_steps else None,
        )

    def pretrain_point_areas(self, lr: np.ndarray, warmup_steps: int, steps: np.ndarray) -> Areas:
        """The inputs of a law fitted to pre-training pilots at ``steps`` of a pre-training
        run with per-step LRs ``lr`` (the annealing memory from the end of its warmup)."""
        areas = pretrain_areas(lr, warmup_steps, self.lam)
        return areas.points(steps, self.needs_history)

    @property
    def annealing_description(self) -> str:
        """The annealing memory in words, for reports."""
        if self.annealing == "mpl":
            return "multi-power annealing" + (" (tied)" if self.tied else "")
        if self.annealing == "mpl1":
            return "multi-power annealing, zeta = 1"
        return f"lambda = {self.lam:g}"

    def checkpoint_state(self, checkpoint: str | None) -> tuple[str, CheckpointState]:
        """Resolve a checkpoint name (None = the only/first one) to its area state."""
        self.require_cpt("a checkpoint")
        assert self.pretrain is not None
        if not self.pretrain.known:
            return "checkpoint", unknown_checkpoint(self.pretrain.final_lr)
        names = list(self.pretrain.checkpoints)
        if checkpoint is None:
            if len(names) > 1 and len(self.coverage.checkpoints) > 1:
                raise InputError(
                    f"the law knows several checkpoints ({', '.join(names)}): name one "
                    "with 'checkpoint'"
                )
            checkpoint = self.coverage.checkpoints[0]
        return checkpoint, checkpoint_state(self.pretrain.history(), checkpoint, self.lam)

    def save(self, path: str | Path) -> Path:
        """Write the law as JSON, atomically."""
        return atomic_write_text(path, self.model_dump_json(indent=1) + "\n")


def load_law(path: str | Path) -> FittedLaw:
    """Read a law file; a missing file, bad JSON or another schema version is an InputError."""
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
        readable = " and ".join(map(str, READABLE_SCHEMA_VERSIONS))
        raise SchemaVersionError(
            f"{path}: law file schema version {data['schema_version']!r}, this cptopt reads "
            f"versions {readable}; refit with 'cptopt fit'"
        )
    # An older readable version is this version with defaults for the keys it lacks.
    return validate(FittedLaw, {**data, "schema_version": SCHEMA_VERSION}, str(path))
