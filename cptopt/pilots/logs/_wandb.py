"""W&B run files: an offline (or not yet synced) run's ``run-<id>.wandb`` transaction log.

A run folder (``wandb/offline-run-<date>-<id>/`` or ``run-<date>-<id>/``) holds the
``.wandb`` file: W&B's append-only log of protobuf ``Record`` messages in LevelDB's log
framing (32 KiB blocks, each record chunk behind a 7-byte header: CRC-32, length, type),
after a 7-byte file header ``:W&B`` + magic ``0xBEE1`` + version. Each ``history`` record
is one ``wandb.log`` call. The records are decoded with wandb's own protobuf classes
(``wandb.proto.wandb_internal_pb2.Record``), so ``pip install 'cptopt[wandb]'`` is needed.
A logged value is read from its JSON text (wandb's default encoding) or, when that is empty,
from its typed field (wandb 0.31's ``x_history_value_encoding="typed"``: number, integer,
boolean, text, JSON or none).
wandb 0.31 no longer ships ``wandb.sdk.internal.datastore``, its Python reader of the
framing, so the framing is read here (each chunk checked against its CRC-32).

The history then reads as a W&B run history (``wandb-history``): the step is the trainer's
(``trainer/global_step`` from Lightning, read 1-based; ``train/global_step`` from HF), else
``_step``. Nested keys are joined with ``/``. ``max_steps`` of the run's config (the
``TrainingArguments`` HF's ``WandbCallback`` logs) is kept as the schedule's length.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from cptopt._io import read_bytes
from cptopt.exceptions import InputError
from cptopt.pilots.logs._base import (
    ColumnMap,
    RawLog,
    hf_max_steps,
    pick_step_column,
    require_file,
)
from cptopt.pilots.logs._table import check_cells, check_rows, table_from_rows
from cptopt.pilots.logs._tabular import WANDB_HISTORY_STEPS, wandb_history_to_raw

WANDB_SUFFIX = ".wandb"
_FILE_HEADER = struct.Struct("<4sHB")
_IDENT, _MAGIC = b":W&B", 0xBEE1
_CHUNK_HEADER = struct.Struct("<IHB")
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_CRC_SEED = {kind: zlib.crc32(bytes([kind])) for kind in (_FULL, _FIRST, _MIDDLE, _LAST)}


def wandb_files(path: Path) -> list[Path]:
    """The ``.wandb`` files of a run folder, a ``wandb/`` folder or the folder above it."""
    if path.is_file():
        return [path] if path.suffix == WANDB_SUFFIX else []
    for pattern in ("*.wandb", "*run-*/*.wandb", "wandb/*run-*/*.wandb"):
        found = sorted(p for p in path.glob(pattern) if p.is_file())
        if found:
            return found
    return []


def _records(file: Path) -> tuple[list[bytes], str]:
    """The records of a ``.wandb`` file (LevelDB log framing); one-line errors for a record
    whose CRC does not match, and a note ('' if none) when the file ends in a partly
    written record (the run is still being written, or crashed)."""
    data = read_bytes(file, "W&B run file")
    if len(data) < _FILE_HEADER.size:
        raise InputError(f"{file}: file is empty or truncated: not a W&B run file")
    ident, magic, _version = _FILE_HEADER.unpack_from(data)
    if ident != _IDENT or magic != _MAGIC:
        raise InputError(f"{file}: not a W&B run file (no ':W&B' header)")
    records: list[bytes] = []
    pending: list[bytes] | None = None
    pending_start = 0
    position = _FILE_HEADER.size
    while position + _CHUNK_HEADER.size <= len(data):
        room = _BLOCK - position % _BLOCK
        if room < _CHUNK_HEADER.size:  # block trailer padding
            position += room
            continue
        checksum, length, chunk_type = _CHUNK_HEADER.unpack_from(data, position)
        start = position + _CHUNK_HEADER.size
        if chunk_type == 0 and length == 0:  # zero padding (preallocated or unfinished block)
            position += room
            continue
        chunk = data[start : start + length]
        if chunk_type not in _CRC_SEED:
            raise InputError(
                f"{file}: corrupt record at byte {position} (record type {chunk_type})"
            )
        if len(chunk) < length:
            return records, _partial(file, position, len(data))  # an unfinished last record
        if zlib.crc32(chunk, _CRC_SEED[chunk_type]) & 0xFFFFFFFF != checksum:
            raise InputError(f"{file}: corrupt record at byte {position} (CRC mismatch)")
        position = start + length
        if chunk_type == _FULL:
            records.append(chunk)
        elif chunk_type == _FIRST:
            pending, pending_start = [chunk], position - _CHUNK_HEADER.size - length
        elif pending is not None:
            pending.append(chunk)
            if chunk_type == _LAST:
                records.append(b"".join(pending))
                pending = None
    if pending is not None:
        return records, _partial(file, pending_start, len(data))
    if data[position:].strip(b"\0"):  # a cut chunk header
        return records, _partial(file, position, len(data))
    return records, ""


def _partial(file: Path, position: int, size: int) -> str:
    return (
        f"{file}: ends in a partly written record at byte {position} ({size - position} "
        "bytes): a run still being written, or a crashed or cut copy; read up to there"
    )


#: A history item's typed value (wandb's ``x_history_value_encoding="typed"``, which leaves
#: ``value_json`` empty): the case of its ``value`` oneof -> how to read it.
_TYPED_VALUES = {
    "none": lambda item: None,
    "boolean": lambda item: item.boolean,
    "integer": lambda item: item.integer,
    "number": lambda item: item.number,
    "text": lambda item: item.text,
    "json": lambda item: json.loads(item.json),
}


def _items(items) -> dict[str, object]:
    """``key -> value`` of W&B history or config items (nested keys joined with ``/``): the
    value's JSON text, or (history items written by wandb's typed encoding) its typed value;
    an item with neither, or with JSON that does not parse, is left out."""
    found: dict[str, object] = {}
    for item in items:
        key = "/".join(item.nested_key) if item.nested_key else item.key
        try:
            if item.value_json:
                found[key] = json.loads(item.value_json)
                continue
            typed = "value" in item.DESCRIPTOR.oneofs_by_name and item.WhichOneof("value")
            if typed in _TYPED_VALUES:
                found[key] = _TYPED_VALUES[typed](item)
        except json.JSONDecodeError:
            continue
    return found


def _history_rows(file: Path) -> tuple[list[str], list[list[object]], dict[str, float], str]:
    """Header and rows of the run's history (one row per ``wandb.log`` call), and ``meta``:
    the ``max_steps`` of the run's config (HF's ``WandbCallback`` logs its
    ``TrainingArguments`` there)."""
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError:
        raise InputError(
            f"{file}: reading W&B run files needs wandb: pip install 'cptopt[wandb]'"
        ) from None
    rows: list[dict[str, object]] = []
    config: dict[str, object] = {}
    records, cut = _records(file)
    check_rows(file, len(records), "records")
    for blob in records:
        record = wandb_internal_pb2.Record()
        try:
            record.ParseFromString(blob)
        except Exception:  # noqa: BLE001 - protobuf's DecodeError
            raise InputError(f"{file}: a record is not a W&B protobuf record") from None
        record_type = record.WhichOneof("record_type")
        if record_type == "history":
            rows.append(_items(record.history.item))
        elif record_type == "config":
            config.update(_items(record.config.update))
        elif record_type == "run":
            config.update(_items(record.run.config.update))
    if not rows:
        raise InputError(f"{file}: the W&B run file holds no history (nothing was logged)")
    header = list(dict.fromkeys(key for row in rows for key in row))
    check_cells(file, len(rows), len(header))
    max_steps = hf_max_steps(config)
    meta = {"max_steps": float(max_steps)} if max_steps else {}
    return header, [[row.get(key) for key in header] for row in rows], meta, cut


def read_wandb_run(path: Path, columns: ColumnMap) -> RawLog:
    """A W&B run folder or ``.wandb`` file as a W&B run history (see the module docstring)."""
    require_file(path)
    files = wandb_files(path)
    if not files:
        raise InputError(f"{path}: no W&B run file (run-*.wandb) found")
    if len(files) > 1:
        runs = ", ".join(f.parent.name for f in files)
        raise InputError(
            f"{path}: holds {len(files)} W&B runs ({runs}): give one run's folder as the log "
            f"(e.g. {files[-1].parent})"
        )
    header, rows, meta, cut = _history_rows(files[0])
    step = pick_step_column(files[0], header, columns, WANDB_HISTORY_STEPS)
    table = table_from_rows(header, rows, np.arange(1, len(rows) + 1))
    raw = wandb_history_to_raw(files[0], table, step)
    return replace(raw, format="wandb-run", meta=meta, cut=cut)
