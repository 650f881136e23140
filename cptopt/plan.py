"""Training configs: the CPT run a user plans, as YAML validated by pydantic (or, for a
law fitted to pre-training pilots, the pre-training run: :class:`PretrainConfig`).

Example (``examples/configs/wsd-replay25.yaml``)::

    schedule: {family: wsd, peak_lr: 2.0e-3, steps: 1000, warmup_steps: 20, decay_fraction: 0.2}
    replay_ratio: 0.25
    checkpoint: unannealed     # which PT checkpoint CPT starts from (if the law knows several)
    tokens_per_step: 1024      # optional: flagged when it differs from the pilots'
    law: ../../cptopt-law.json # optional: the law to judge it by (relative to this file)

Unknown keys are rejected with the key named.

Trainer keys
------------
Instead of a ``schedule:`` block, a config may give the schedule with the keys of a
Hugging Face ``TrainingArguments`` (copy them from your training script; other trainer keys
are rejected, as any unknown key is):

=========================  =================================================================
``learning_rate``          peak LR (raw units)
``max_steps``              number of CPT updates (must be > 0: cptopt cannot turn
                           ``num_train_epochs`` into steps)
``lr_scheduler_type``      ``linear``, ``cosine``, ``constant_with_warmup``, ``constant``
                           (no warmup allowed), ``cosine_with_min_lr`` or
                           ``warmup_stable_decay`` (other HF schedulers have no cptopt family:
                           write a ``schedule:`` block with ``family: custom``)
``warmup_steps``           warmup length in steps; a float below 1 is a share of
                           ``max_steps`` (as in transformers v5)
``warmup_ratio``           warmup as a share of ``max_steps``; rounded up as HF does
``lr_scheduler_kwargs``    ``cosine_with_min_lr``: ``min_lr`` or ``min_lr_rate``;
                           ``warmup_stable_decay``: ``num_decay_steps`` (required),
                           ``num_stable_steps``, ``decay_type`` (``linear``/``cosine``,
                           HF default ``cosine``), ``min_lr_ratio``
=========================  =================================================================

HF's LambdaLR gives update ``s`` the factor of step ``s - 1`` (the first warmup update runs
at LR 0); cptopt's convention gives it the factor of step ``s``. The difference is one step
and is ignored. Errors in these keys name the trainer key, not the schedule field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cptopt._validation import MAX_STEPS, MAX_TOKENS_PER_STEP, load_yaml_mapping, validate
from cptopt.exceptions import InputError, NotATrainingConfig, param
from cptopt.schedules import Family, Schedule

#: Top-level keys taken from a Hugging Face ``TrainingArguments``.
TRAINER_KEYS = (
    "learning_rate",
    "max_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "warmup_ratio",
    "lr_scheduler_kwargs",
)


class TrainingConfig(BaseModel):
    """A planned CPT run."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    schedule: Schedule
    replay_ratio: float = Field(ge=0, le=1, description="share of general data per batch")
    checkpoint: str | None = Field(default=None, description="PT checkpoint CPT starts from")
    tokens_per_step: int | None = Field(default=None, gt=0, le=MAX_TOKENS_PER_STEP)
    law: str | None = Field(default=None, description="law file, relative to the config")
    name: str | None = None


class PretrainConfig(BaseModel):
    """A planned pre-training run, for a law fitted to pre-training pilots.

    The same schedule keys as :class:`TrainingConfig` (a ``schedule:`` block or trainer
    keys), the whole pre-training schedule; its warmup is the schedule's (a custom one's:
    the steps before its LR first peaks). No replay ratio and no checkpoint: a
    pre-training run starts from random initialisation.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    schedule: Schedule
    tokens_per_step: int | None = Field(default=None, gt=0, le=MAX_TOKENS_PER_STEP)
    law: str | None = Field(default=None, description="law file, relative to the config")
    name: str | None = None


#: Either config model (:func:`_located` keeps the type).
ConfigModel = TypeVar("ConfigModel", TrainingConfig, PretrainConfig)


class TrainerKeys(BaseModel):
    """The Hugging Face ``TrainingArguments`` keys cptopt understands (see module docstring)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    learning_rate: float = Field(gt=0, description="peak LR, raw units")
    max_steps: int = Field(
        gt=0, le=MAX_STEPS, description="number of updates (HF's -1 = epochs: unsupported)"
    )
    lr_scheduler_type: Literal[
        "linear",
        "cosine",
        "constant",
        "constant_with_warmup",
        "cosine_with_min_lr",
        "warmup_stable_decay",
    ] = "linear"
    warmup_steps: float = Field(default=0, ge=0, description="steps, or a share when < 1")
    warmup_ratio: float = Field(default=0, ge=0, lt=1)
    lr_scheduler_kwargs: dict[str, Any] = Field(default_factory=dict)


class _CosineMinLrKwargs(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    min_lr: float | None = Field(default=None, ge=0)
    min_lr_rate: float | None = Field(default=None, ge=0, lt=1)


class _WsdKwargs(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    num_decay_steps: int = Field(gt=0)
    num_stable_steps: int | None = Field(default=None, ge=0)
    decay_type: Literal["linear", "cosine"] = "cosine"
    min_lr_ratio: float = Field(default=0.0, ge=0, lt=1)
    warmup_type: Literal["linear"] = "linear"


def _trainer_warmup(trainer: TrainerKeys, source: str) -> int:
    """Warmup steps as HF computes them: a share below 1 or ``warmup_ratio``, rounded up."""
    if trainer.warmup_steps and trainer.warmup_ratio:
        raise InputError(f"{source}: warmup_steps: give warmup_steps or warmup_ratio, not both")
    if 0 < trainer.warmup_steps < 1:
        return math.ceil(trainer.warmup_steps * trainer.max_steps)
    if trainer.warmup_steps != int(trainer.warmup_steps):
        raise InputError(
            f"{source}: warmup_steps: must be a whole number of steps or a share below 1 "
            f"(got {trainer.warmup_steps!r})"
        )
    return int(trainer.warmup_steps) or math.ceil(trainer.warmup_ratio * trainer.max_steps)


def _wsd_fields(
    kwargs: dict[str, Any], steps: int, warmup: int, peak: float, source: str
) -> dict[str, Any]:
    """Schedule fields of HF's ``warmup_stable_decay`` from its ``lr_scheduler_kwargs``."""
    options = validate(_WsdKwargs, kwargs, source, ("lr_scheduler_kwargs",))
    if options.num_stable_steps is not None and (
        warmup + options.num_stable_steps + options.num_decay_steps != steps
    ):
        raise InputError(
            f"{source}: lr_scheduler_kwargs.num_stable_steps: warmup ({warmup}) + stable "
            f"({options.num_stable_steps}) + decay ({options.num_decay_steps}) must equal "
            f"max_steps ({steps})"
        )
    if options.num_decay_steps > steps - warmup:
        raise InputError(
            f"{source}: lr_scheduler_kwargs.num_decay_steps: {options.num_decay_steps} "
            f"decay steps do not fit in max_steps ({steps}) after warmup ({warmup})"
        )
    return {
        "decay_start_step": steps - options.num_decay_steps,
        "decay_shape": options.decay_type,
        "min_lr": options.min_lr_ratio * peak,
    }


def schedule_from_trainer(keys: dict[str, Any], source: str = "<config>") -> Schedule:
    """Map Hugging Face ``TrainingArguments`` keys to a :class:`Schedule`.

    Errors are one line naming ``source`` and the trainer key (not the schedule field).
    """
    if "learning_rate" not in keys or "max_steps" not in keys:
        missing = "learning_rate" if "learning_rate" not in keys else "max_steps"
        raise InputError(
            f"{source}: {missing}: required with trainer keys (or give a 'schedule:' block)"
        )
    trainer = validate(TrainerKeys, keys, source)
    steps, peak = trainer.max_steps, trainer.learning_rate
    warmup = _trainer_warmup(trainer, source)
    scheduler = trainer.lr_scheduler_type
    kwargs = trainer.lr_scheduler_kwargs
    fields: dict[str, Any] = {"peak_lr": peak, "steps": steps, "warmup_steps": warmup}
    family: Family
    if scheduler in ("linear", "cosine"):
        family = scheduler
    elif scheduler == "constant":
        if warmup:
            raise InputError(
                f"{source}: lr_scheduler_type: HF 'constant' ignores warmup; "
                "use 'constant_with_warmup' (got 'constant' with a warmup)"
            )
        family = "constant"
    elif scheduler == "constant_with_warmup":
        family = "constant"
    elif scheduler == "cosine_with_min_lr":
        cosine = validate(_CosineMinLrKwargs, kwargs, source, ("lr_scheduler_kwargs",))
        if cosine.min_lr is not None and cosine.min_lr_rate is None:
            fields["min_lr"] = cosine.min_lr
        elif cosine.min_lr_rate is not None and cosine.min_lr is None:
            fields["min_lr"] = cosine.min_lr_rate * peak
        else:
            raise InputError(
                f"{source}: lr_scheduler_kwargs: 'cosine_with_min_lr' needs exactly one of "
                "min_lr or min_lr_rate"
            )
        family = "cosine"
    else:  # warmup_stable_decay
        family = "wsd"
        fields.update(_wsd_fields(kwargs, steps, warmup, peak, source))
    if scheduler not in ("cosine_with_min_lr", "warmup_stable_decay") and kwargs:
        raise InputError(
            f"{source}: lr_scheduler_kwargs: not used by lr_scheduler_type '{scheduler}' "
            f"(got keys {', '.join(map(str, kwargs))})"
        )
    try:
        return Schedule(family=family, **fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else ""
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        key = _SCHEDULE_TO_TRAINER.get(field) or (
            "warmup_steps"
            if "warmup" in message
            else "lr_scheduler_kwargs.num_decay_steps"
            if "decay" in message
            else "lr_scheduler_type"
        )
        raise InputError(f"{source}: {key}: {message}") from None


#: Which trainer key a schedule field came from (for error messages).
_SCHEDULE_TO_TRAINER = {
    "peak_lr": "learning_rate",
    "steps": "max_steps",
    "warmup_steps": "warmup_steps",
    "min_lr": "lr_scheduler_kwargs",
    "decay_start_step": "lr_scheduler_kwargs.num_decay_steps",
}


def config_from_mapping(data: dict[str, Any], source: str = "<config>") -> TrainingConfig:
    """Validate a config mapping (native ``schedule:`` block or trainer keys)."""
    return validate(TrainingConfig, _schedule_keys(data, source), source)


def _schedule_keys(data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` with trainer keys, if any, turned into its ``schedule``."""
    data = dict(data)
    trainer = {key: data.pop(key) for key in TRAINER_KEYS if key in data}
    if trainer:
        if "schedule" in data:
            key = next(iter(trainer))
            raise InputError(
                f"{source}: {key}: give a 'schedule:' block or trainer keys "
                f"({', '.join(TRAINER_KEYS)}), not both"
            )
        data["schedule"] = schedule_from_trainer(trainer, source)
    return data


def load_config(path: str | Path) -> TrainingConfig:
    """Read a training config; one-line ``InputError`` naming the file and key on problems.

    ``law`` is made relative to the config's folder; ``name`` defaults to the file's stem.
    A file that is another kind of file cptopt reads (a search config, a candidates list, a
    pre-training config, ...) raises :class:`NotATrainingConfig` saying what it is and what
    takes it.
    """
    data = _run_config_mapping(Path(path))
    describes_a_run = "schedule" in data or any(key in data for key in TRAINER_KEYS)
    if describes_a_run and "replay_ratio" not in data and "checkpoint" not in data:
        kind = "a pre-training config"
        raise NotATrainingConfig(
            f"{path}: replay_ratio: missing: a schedule without it is {kind}, not a CPT "
            f"training config; predict it with {param('predict()')} and a law fitted to "
            "pre-training pilots",
            kind,
        )
    return _located(config_from_mapping(data, str(path)), path)


def _run_config_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping of a file given as a run's config (CPT or pre-training), or
    :class:`NotATrainingConfig` when it is another kind of file cptopt reads."""
    found = _OTHER_SUFFIXES.get(path.suffix.lower())
    if found is not None:
        raise _not_a_config(path, *found)
    data = load_yaml_mapping(str(path))
    if "schedule" not in data and not any(key in data for key in TRAINER_KEYS):
        for keys, kind, what_takes_it in _OTHER_FILES:
            if keys & set(data):
                raise _not_a_config(path, kind, what_takes_it)
    return data


#: Files that are not training configs, known by keys that only they hold: what each is,
#: and what takes it (marked names: the command line names its command and option).
_OTHER_FILES: tuple[tuple[frozenset[str], str, str], ...] = (
    (
        frozenset({"candidates"}),
        "a candidates list",
        f"rank them with {param('rank_candidates()')}",
    ),
    (frozenset({"runs"}), "a pilot manifest", f"fit it with {param('fit()')}"),
    (
        frozenset({"space", "constraints", "search", "weights", "top_k", "pareto"}),
        "a search config",
        f"give it to {param('load_search_config()')}",
    ),
    (
        frozenset({"schema_version", "cptopt_version"}),
        "a law file",
        f"give it as {param('law')}",
    ),
)
#: ... and by their name.
_OTHER_SUFFIXES = {
    ".csv": ("a CSV file", f"a candidates CSV is ranked with {param('rank_candidates()')}"),
    ".toml": ("a TOML file", f"a limits file is read by {param('check(limits_file=...)')}"),
}


def _not_a_config(path: Path, kind: str, what_takes_it: str) -> NotATrainingConfig:
    return NotATrainingConfig(f"{path}: {kind}, not a training config: {what_takes_it}", kind)


def load_pretrain_config(path: str | Path) -> PretrainConfig:
    """Read a pre-training config (:class:`PretrainConfig`) as :func:`load_config` reads a
    training config; a ``replay_ratio`` or ``checkpoint`` is a one-line error naming it."""
    data = _run_config_mapping(Path(path))
    for key in ("replay_ratio", "checkpoint"):
        if key in data:
            raise InputError(
                f"{path}: {key}: a pre-training run has no {key.replace('_', ' ')} (the law "
                "was fitted to pre-training pilots)"
            )
    config = validate(PretrainConfig, _schedule_keys(data, str(path)), str(path))
    return _located(config, path)


def config_law(path: str | Path) -> str | None:
    """The ``law`` key of a config (relative to its folder) before the config is validated,
    so that the law's kind can say which config model applies. None when absent."""
    law = _run_config_mapping(Path(path)).get("law")
    return str(Path(path).parent / law) if isinstance(law, str) else None


def _located(config: ConfigModel, path: str | Path) -> ConfigModel:
    """``config`` with its ``law`` relative to the config's folder, its ``name`` defaulting
    to the file's stem."""
    if config.law is not None:
        config = config.model_copy(update={"law": str(Path(path).parent / config.law)})
    if config.name is None:
        config = config.model_copy(update={"name": Path(path).stem})
    return config
