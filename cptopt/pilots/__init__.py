"""Pilots: logs -> runs. Read pilot logs and manifests into validated runs.

- :mod:`cptopt.pilots.logs`: one reader per log format (HF, TensorBoard, Lightning, W&B,
  CSV, JSONL), all returning the same :class:`LogData`;
- :mod:`cptopt.pilots.runs`: :class:`Run`, :class:`PretrainHistory`, :class:`PilotSet`, the
  pre-training pilots (:class:`PretrainRun`, :class:`PretrainPilots`) and the per-step LR
  rule;
- :mod:`cptopt.pilots.manifest`: the pilot manifest (YAML) and :func:`load_manifest`.
"""

from cptopt.pilots.logs import FORMATS, ColumnMap, LogData, Series, read_log, read_raw, summarize
from cptopt.pilots.manifest import PilotManifest, load_manifest, load_pilots, read_manifest
from cptopt.pilots.runs import (
    Pilots,
    PilotSet,
    PretrainHistory,
    PretrainPilots,
    PretrainRun,
    Run,
    pretrain_run_from_log,
    run_from_log,
)

__all__ = [
    "FORMATS",
    "ColumnMap",
    "LogData",
    "PilotManifest",
    "PilotSet",
    "Pilots",
    "PretrainHistory",
    "PretrainPilots",
    "PretrainRun",
    "Run",
    "Series",
    "load_manifest",
    "load_pilots",
    "pretrain_run_from_log",
    "read_log",
    "read_manifest",
    "read_raw",
    "run_from_log",
    "summarize",
]
