"""The parts of a law file: each validation set's fit, the checkpoints' PT history, the
law variants compared while choosing the law. Each part checks itself against what it must
agree with (``problem``), for :func:`cptopt.law.fitted.load_law`, which checks a law file
as a whole before any command uses it.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from cptopt._validation import MAX_STEPS
from cptopt.law.averaged import check_weights, is_averaged, member_forms
from cptopt.law.forms import LawForm
from cptopt.law.parameters import Parameter
from cptopt.pilots.runs import PretrainHistory


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
        # a weight is found by its name: with names and values apart, problem() says so
        if (
            form is not None
            and names is not None
            and is_averaged(form)
            and len(names) == len(values)
        ):
            check_weights(form, names, values)
        return values

    def problem(self, key: str, law: LawForm) -> str | None:
        """The first way this record (the file's ``key``) disagrees with its law form
        ``law``: its parameters, their bounds, the replicas, the interval fields; or None."""
        names, count = law.names, len(law.names)
        if self.validation_set != key:
            return f"{key}.validation_set: {self.validation_set!r}, expected {key!r}"
        if self.parameter_names != names:
            return (
                f"{key}.parameter_names: {', '.join(self.parameter_names) or 'none'}; form "
                f"{self.form!r} with this law's settings has {', '.join(names)}"
            )
        if [parameter.name for parameter in self.parameters] != names:
            return f"{key}.parameters: not the parameters {', '.join(names)} in that order"
        lower = np.array([spec.lower for spec in law.specs])
        upper = np.array([spec.upper for spec in law.specs])
        slack = 1e-9 * np.maximum(1.0, np.maximum(np.abs(lower), np.abs(upper)))
        rows = [("values", self.values)]
        rows += [(f"jackknife[{index}]", row) for index, row in enumerate(self.jackknife)]
        for label, row in rows:
            if len(row) != count:
                return f"{key}.{label}: {len(row)} values for {count} parameters"
            values = np.asarray(row, dtype=float)
            outside = np.flatnonzero((values < lower - slack) | (values > upper + slack))
            if outside.size:
                i = int(outside[0])
                return (
                    f"{key}.{label}[{i}] ({names[i]}) == {row[i]!r}, outside the form's "
                    f"bounds {lower[i]:g}..{upper[i]:g}"
                )
        for i, parameter in enumerate(self.parameters):
            if parameter.value != self.values[i]:
                return (
                    f"{key}.parameters[{i}].value == {parameter.value!r} but {key}.values[{i}] "
                    f"== {self.values[i]!r}"
                )
        spreads = {"noise": self.noise, "cv_rms": self.cv_rms, "length_rms": self.length_rms}
        spreads |= {"cv_error": self.cv_error}
        for name, value in spreads.items():
            if value is not None and value < 0:
                return f"{key}.{name} == {value!r}, must be >= 0"
        if self.interval_scale is not None and self.interval_scale <= 0:
            return f"{key}.interval_scale == {self.interval_scale!r}, must be > 0"
        return None


#: A PT history of at least this many updates is written packed (:func:`pack_lr`): a
#: 1M-update history took 13-23 MB as a JSON list and 0.2 s of every command to parse.
PACKED_LR_MIN = 10_000
#: How a packed LR list is encoded: each LR's float64 bits as an int64, differenced (a
#: schedule's neighbouring LRs differ in their low bits only), zlib, base64.
PACKED_LR_ENCODING = "float64-delta-zlib-base64"


def pack_lr(lr: list[float]) -> dict[str, Any]:
    """``lr`` packed for a law file, exact to the bit (:func:`unpack_lr` reverses it): a
    1M-update cosine logged with 6 significant digits takes 0.14 MB, not 13 MB."""
    bits = np.asarray(lr, dtype="<f8").view("<i8")
    steps = np.diff(bits, prepend=np.zeros(1, dtype="<i8"))  # wraps, as cumsum undoes it
    data = base64.b64encode(zlib.compress(steps.tobytes(), 6)).decode("ascii")
    return {"encoding": PACKED_LR_ENCODING, "size": len(lr), "data": data}


def unpack_lr(packed: dict[str, Any]) -> list[float]:
    """The LR list of :func:`pack_lr`'s ``packed``; ``ValueError`` saying what is wrong."""
    if set(packed) != {"encoding", "size", "data"}:
        raise ValueError("a packed LR list has the keys encoding, size and data")
    if packed["encoding"] != PACKED_LR_ENCODING:
        raise ValueError(f"encoding {packed['encoding']!r} is not {PACKED_LR_ENCODING!r}")
    size, data = packed["size"], packed["data"]
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_STEPS:
        raise ValueError(f"size {size!r} is not a count of at most {MAX_STEPS:,} updates")
    if not isinstance(data, str):
        raise ValueError("data is not a string")
    stream = zlib.decompressobj()
    try:
        # never more than the size says (and one more byte to tell): no decompression bomb
        raw = stream.decompress(base64.b64decode(data, validate=True), 8 * size + 1)
    except (binascii.Error, zlib.error, ValueError):
        raise ValueError("data is not the base64 of zlib-compressed bytes") from None
    if len(raw) <= 8 * size and not (stream.eof and not stream.unused_data):
        # a stream cut short (its checksum unread) or with bytes after it
        raise ValueError("data is cut short or has bytes after its zlib stream")
    if len(raw) > 8 * size:
        raise ValueError(f"data holds more than the {size} LRs size says")
    if len(raw) != 8 * size:
        raise ValueError(f"data holds {len(raw) // 8} LRs, size says {size}")
    lr = np.cumsum(np.frombuffer(raw, dtype="<i8")).view("<f8")
    if not np.isfinite(lr).all():
        raise ValueError(f"LR {int(np.argmin(np.isfinite(lr)))} is not a finite number")
    return lr.tolist()


class PretrainRecord(BaseModel):
    """The PT history needed to continue the areas (``lr`` is None when unknown). In a law
    file a history of ``PACKED_LR_MIN`` updates or more is packed (:func:`pack_lr`)."""

    model_config = ConfigDict(extra="forbid")

    known: bool
    warmup_steps: int = 0
    checkpoints: dict[str, int] = Field(default_factory=dict)
    final_lr: float = 0.0
    lr: list[float] | None = None

    @field_validator("lr", mode="before")
    @classmethod
    def _unpacked(cls, value: object) -> object:
        return unpack_lr(value) if isinstance(value, dict) else value

    @field_serializer("lr", when_used="json")
    def _packed(self, lr: list[float] | None) -> list[float] | dict[str, Any] | None:
        return pack_lr(lr) if lr is not None and len(lr) >= PACKED_LR_MIN else lr

    def problem(self) -> str | None:
        """The first inconsistency of a known PT history (its LRs, checkpoints and warmup),
        or None."""
        if not self.known:
            return None if self.final_lr >= 0 else "pretrain.final_lr: must be >= 0"
        lr = np.asarray(self.lr or [], dtype=float)
        if not lr.size:
            return "pretrain.lr: empty; a known PT history needs the LR of every PT step"
        if (lr < 0).any():
            i = int(np.argmax(lr < 0))
            return f"pretrain.lr[{i}] == {float(lr[i])!r}, must be >= 0"
        if lr.max() <= 0:
            return "pretrain.lr: every LR is 0"
        if not self.checkpoints:
            return "pretrain.checkpoints: empty; a known PT history names its checkpoints"
        for name, step in self.checkpoints.items():
            if not 0 < step <= lr.size:
                return (
                    f"pretrain.checkpoints.{name} == {step}, outside the {lr.size} steps of "
                    "pretrain.lr"
                )
        if not 0 <= self.warmup_steps < lr.size:
            return f"pretrain.warmup_steps == {self.warmup_steps}, must be in 0..{lr.size - 1}"
        return None

    def history(self) -> PretrainHistory:
        return PretrainHistory(
            lr=None if self.lr is None else _lr_array(self.lr),
            warmup_steps=self.warmup_steps,
            checkpoints=self.checkpoints,
            final_lr=self.final_lr,
        )


#: The arrays of the last PT histories' LR lists (:func:`_lr_array`), by the list's id.
_LR_ARRAYS: dict[int, tuple[list[float], np.ndarray]] = {}


def _lr_array(lr: list[float]) -> np.ndarray:
    """``lr`` as a read-only array, kept for the same list: a law's scenario is asked for
    many times (report, flags, predictions), and a 1M-step history takes ~20 ms to
    convert. The list is kept with it, so its id cannot name another list."""
    kept = _LR_ARRAYS.get(id(lr))
    if kept is None or kept[0] is not lr or kept[1].size != len(lr):  # a list grown in place
        array = np.asarray(lr, dtype=float)
        array.setflags(write=False)  # shared by every history() of this list
        if len(_LR_ARRAYS) >= 2:
            _LR_ARRAYS.clear()
        kept = _LR_ARRAYS[id(lr)] = (lr, array)
    return kept[1]


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
