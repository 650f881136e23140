"""Training configs: the CPT run a user plans, as YAML validated by pydantic.

Example (``examples/configs/wsd-replay25.yaml``)::

    schedule: {family: wsd, peak_lr: 2.0e-3, steps: 1000, warmup_steps: 20, decay_fraction: 0.2}
    replay_ratio: 0.25
    checkpoint: unannealed     # which PT checkpoint CPT starts from (if the law knows several)
    tokens_per_step: 1024      # optional: flagged when it differs from the pilots'
    law: ../../cptopt-law.json # optional: the law to judge it by (relative to this file)

Unknown keys are rejected with the key named.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cptopt._validation import load_yaml_mapping, pydantic_error_line
from cptopt.exceptions import InputError
from cptopt.schedules import Schedule


class TrainingConfig(BaseModel):
    """A planned CPT run."""

    model_config = ConfigDict(extra="forbid")

    schedule: Schedule
    replay_ratio: float = Field(ge=0, le=1, description="share of general data per batch")
    checkpoint: str | None = Field(default=None, description="PT checkpoint CPT starts from")
    tokens_per_step: int | None = Field(default=None, gt=0)
    law: str | None = Field(default=None, description="law file, relative to the config")
    name: str | None = None


def load_config(path: str | Path) -> TrainingConfig:
    """Read a training config; one-line ``InputError`` naming the file and key on problems."""
    data = load_yaml_mapping(str(path))
    try:
        config = TrainingConfig.model_validate(data)
    except ValidationError as exc:
        raise InputError(pydantic_error_line(str(path), exc)) from None
    if config.law is not None:
        config = config.model_copy(update={"law": str(Path(path).parent / config.law)})
    if config.name is None:
        config = config.model_copy(update={"name": Path(path).stem})
    return config
