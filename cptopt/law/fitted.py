"""The fitted-law file: versioned JSON, written atomically, validated on load.

It holds everything ``predict``, ``recommend`` and ``check`` need without the pilot logs:
the law form and annealing memory (``annealing``, and ``lam`` for S2), both parameter sets
with their leave-one-pilot-out (jackknife) replicas, the PT history needed to continue the
areas, what the pilots covered (to flag extrapolation), the fit-quality report, and the
inputs' SHA-256.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cptopt._io import atomic_write_text, read_text
from cptopt._validation import validate
from cptopt._version import __version__
from cptopt.exceptions import InputError, SchemaVersionError
from cptopt.law.areas import CheckpointState, checkpoint_state, unknown_checkpoint
from cptopt.law.forms import LawForm, make_law
from cptopt.law.parameters import Parameter
from cptopt.pilots.runs import PretrainHistory

#: Bump when the file layout changes incompatibly (2: the annealing memory, lam optional).
SCHEMA_VERSION = 2
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
    chosen: bool = False
    cv_gap_se: float | None = Field(
        default=None,
        description="paired standard error of this row's CV gap to the best row (the "
        "one-standard-error rule); None when the row was not in that comparison",
    )


class FittedLaw(BaseModel):
    """A fitted CPT law (both validation sets). Load with :func:`load_law`."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    cptopt_version: str = __version__
    form: str
    annealing: Literal["s2", "mpl"] = "s2"
    lam: float | None = Field(description="S2 memory factor (None with the mpl annealing)")
    tied: list[str] = Field(
        default_factory=list, description="parameters the general and domain laws share"
    )
    huber_delta: float
    seed: int
    replay_terms: bool
    notes: list[str] = Field(default_factory=list)
    pretrain: PretrainRecord
    coverage: Coverage
    general: SetFit
    domain: SetFit
    inputs: list[InputRecord] = Field(default_factory=list)
    selection: list[SelectionRow] = Field(
        default_factory=list, description="candidate law variants and their CV errors"
    )

    def set_fit(self, validation_set: str) -> SetFit:
        return self.general if validation_set == "general" else self.domain

    def form_for(self, validation_set: str) -> LawForm:
        """The law form of ``validation_set`` (evaluate it with that set's ``values``)."""
        return make_law(
            self.form, validation_set, self.replay_terms, self.pretrain.known, self.annealing
        )

    @property
    def needs_history(self) -> bool:
        """Whether predictions need the drop history (the multi-power annealing)."""
        return self.annealing == "mpl"

    @property
    def annealing_description(self) -> str:
        """The annealing memory in words, for reports."""
        if self.annealing == "mpl":
            return "multi-power annealing" + (" (tied)" if self.tied else "")
        return f"lambda = {self.lam:g}"

    def checkpoint_state(self, checkpoint: str | None) -> tuple[str, CheckpointState]:
        """Resolve a checkpoint name (None = the only/first one) to its area state."""
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
    if data["schema_version"] != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path}: law file schema version {data['schema_version']!r}, this cptopt reads "
            f"version {SCHEMA_VERSION}; refit with 'cptopt fit'"
        )
    return validate(FittedLaw, data, str(path))
