"""TensorBoard event files and run directories, read with TensorBoard's own loader.

Every point is kept: the loader's default reservoir sampling (1,000 scalars per tag) is
switched off with ``size_guidance={"scalars": 0, "tensors": 0}``. Scalars written as
``simple_value`` (``torch.utils.tensorboard``, tensorboardX) and as scalar tensors
(``tf.summary.scalar``) are both read. A directory is searched recursively; a tag from a
sub-directory is named ``<subdir>/<tag>``; files of one directory (a resumed run) are merged.

Run folders: every directory holding event files is one run (HF's Trainer writes
``<output_dir>/runs/<date>_<host>/``, one per ``train()`` call). When the path holds one run,
its tags keep their own names (``eval/general_loss``; ``<subdir>/<tag>`` is accepted too).
When it holds several (a re-run into the same output dir), names are ``<run>/<tag>``, a tag
found in one run only may be named alone, and a tag found in several is an error listing the
runs and how to pick one (give that run's folder).

Steps are the writer's: HF's TensorBoard callback logs at ``global_step`` (updates done), as
``trainer_state.json`` does; the ``max_steps`` of the ``TrainingArguments`` it logs
(``args/text_summary``) is kept as the schedule's length. Lightning's ``TensorBoardLogger``
(recognised by the ``hparams.yaml`` it writes next to its event files) logs Lightning's
0-based step: read as ``step + 1`` (see the ``lightning`` reader); points at step 0 logged
before the first training event (by wall time, from ``trainer.validate()``) stay at 0.

TensorBoard stores float32: each value is read back as the shortest decimal that rounds
to that float32 (``0.002`` stays ``0.002``, not ``0.0020000000949949026``).

Integrity: TensorBoard's loader stops quietly at the first damaged or incomplete record, so
a corrupt file would read as a shorter run. Each file's records (TFRecord framing: length
u64, masked CRC-32C of the length, data, masked CRC-32C of the data) are checked first,
all CRCs at once (:mod:`._crc32c`): a CRC that does not match is an error naming the file
and the record's byte offset; a file that ends in a partly written record (a run still
being written, a killed writer or a cut copy) is read up to it with a note, and the log is
flagged as cut (``RawLog.cut``) when that is the last file of its run folder.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from cptopt._io import MAX_TEXT_BYTES, read_bytes
from cptopt._validation import MAX_LOG_ROWS
from cptopt.exceptions import InputError
from cptopt.pilots.logs._base import (
    RawLog,
    build_series,
    file_sha256,
    hf_max_steps,
    is_training_name,
    require_file,
)
from cptopt.pilots.logs._crc32c import masked_crc32c

EVENT_FILE_MARK = "tfevents"
#: Lightning's ``TensorBoardLogger`` writes this file next to its event files.
LIGHTNING_MARK = "hparams.yaml"
#: HF's TensorBoard callback logs its ``TrainingArguments`` (JSON) as this text summary.
HF_ARGS_TAG = "args/text_summary"


def is_event_file(path: Path) -> bool:
    return path.is_file() and EVENT_FILE_MARK in path.name


def event_files(path: Path) -> list[Path]:
    """The event files of a file or run directory, sorted by directory then name."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob(f"*{EVENT_FILE_MARK}*") if p.is_file())


def _shortest_float32(value: float) -> float:
    return float(str(np.float32(value)))


#: One run folder's scalars: tag -> (steps, values, wall times).
_Scalars = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def read_tensorboard(path: Path) -> RawLog:
    """Every scalar tag of the event file(s) as a series over the update it belongs to."""
    require_file(path)
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        from tensorboard.util import tensor_util
    except ImportError:
        raise InputError(
            f"{path}: reading TensorBoard logs needs tensorboard: pip install 'cptopt[tensorboard]'"
        ) from None
    files = event_files(path)
    if not files:
        raise InputError(f"{path}: no TensorBoard event files (*tfevents*) found")
    runs: dict[Path, list[tuple[str, list, list, list]]] = {}
    max_steps: set[int] = set()
    notes: list[str] = []
    cut = ""
    for file in files:
        if file.stat().st_size == 0:
            raise InputError(f"{file}: file is empty")
        partial = check_records(file)
        if partial and file == max(f for f in files if f.parent == file.parent):
            cut = cut or partial
        elif partial:
            notes.append(f"{partial} (a killed run, resumed in a later file)")
        found, length = _scalars(file, EventAccumulator, tensor_util)
        runs.setdefault(file.parent, []).extend(found)
        max_steps |= {length} if length else set()
    labels = {
        folder: (folder.relative_to(path).as_posix() if path.is_dir() else "") or "."
        for folder in runs
    }
    several = len(runs) > 1
    points: dict[str, tuple[list[float], list[float]]] = {}
    tag_runs: dict[str, list[str]] = {}
    shifted = []
    for folder, found in runs.items():
        scalars = _merge(found)
        if (folder / LIGHTNING_MARK).is_file():
            scalars = shift_lightning_scalars(scalars)
            shifted.append(folder)
        prefix = f"{labels[folder]}/" if several and labels[folder] != "." else ""
        for tag, (steps, values, _) in scalars.items():
            points[prefix + tag] = (list(steps), list(values))
            tag_runs.setdefault(tag, []).append(labels[folder])
    series = build_series(points)
    if not series:
        raise InputError(f"{path}: the event files hold no scalars")
    aliases, ambiguous = _run_aliases(tag_runs, labels[next(iter(runs))], several, series)
    return RawLog(
        source=str(path),
        sha256=file_sha256(path),
        format="tensorboard",
        series=series,
        step_name="step",
        aliases=aliases,
        step_offset=1 if shifted else 0,
        runs=tuple(labels.values()) if several else (),
        ambiguous=ambiguous,
        meta={"max_steps": float(max_steps.pop())} if len(max_steps) == 1 else {},
        notes=tuple(notes),
        cut=cut,
    )


_HEAD = struct.Struct("<QI")  # record length, masked CRC-32C of the length's 8 bytes


def _frame(file: Path, data: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """Offsets and data lengths of the complete records, and where they end."""
    starts: list[int] = []
    lengths: list[int] = []
    position, size, unpack = 0, len(data), _HEAD.unpack_from
    while position + _HEAD.size <= size:
        length = unpack(data, position)[0]
        if position + _HEAD.size + length + 4 > size:
            break
        starts.append(position)
        lengths.append(length)
        position += _HEAD.size + length + 4
        if len(starts) > MAX_LOG_ROWS:
            raise InputError(f"{file}: more than {MAX_LOG_ROWS} records, more than cptopt reads")
    return np.array(starts, dtype=np.int64), np.array(lengths, dtype=np.int64), position


def _stored(array: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The little-endian u32 at each offset."""
    parts = [array[offsets + k].astype(np.uint32) << np.uint32(8 * k) for k in range(4)]
    return parts[0] | parts[1] | parts[2] | parts[3]


def check_records(file: Path) -> str:
    """Check every record of an event file against its CRCs (see the module docstring).

    Returns ``''``, or a note when the file ends in a partly written record; a record
    whose CRC does not match is a one-line error with its byte offset.
    """
    data = read_bytes(file, "event file")
    array = np.frombuffer(data, dtype=np.uint8)
    starts, lengths, end = _frame(file, data)
    heads = masked_crc32c(array, starts, np.full(starts.size, 8)) != _stored(array, starts + 8)
    bodies = masked_crc32c(array, starts + 12, lengths) != _stored(array, starts + 12 + lengths)
    bad = np.flatnonzero(heads | bodies)
    tail = len(data) - end
    if not bad.size and tail >= _HEAD.size:  # a whole header: its CRC says if it is damaged
        head = masked_crc32c(array, np.array([end]), np.array([8]))
        if head[0] != _stored(array, np.array([end + 8]))[0]:
            bad, starts = np.array([0]), np.array([end])
    if bad.size:
        raise InputError(
            f"{file}: corrupt record at byte {int(starts[bad[0]])} (CRC mismatch): the event "
            "file is damaged; give an intact copy"
        )
    claimed = _HEAD.unpack_from(data, end)[0] if tail >= _HEAD.size else 0
    if claimed > MAX_TEXT_BYTES:  # no writer was cut in the middle of such a record
        raise InputError(
            f"{file}: the record at byte {end} claims {claimed} bytes, more than any file "
            f"cptopt reads ({MAX_TEXT_BYTES}): the event file is damaged"
        )
    if not tail:
        return ""
    return (
        f"{file}: ends in a partly written record at byte {end} ({tail} bytes): a run still "
        f"being written, or a cut copy; read up to there (if the run is over, "
        f"'truncate -s {end}' the file to use what it holds)"
    )


def _merge(found: list[tuple[str, list, list, list]]) -> _Scalars:
    """One run folder's ``(tag, steps, values, walls)`` (several files: a resumed run) merged."""
    merged: dict[str, tuple[list, list, list]] = {}
    for tag, steps, values, walls in found:
        into = merged.setdefault(tag, ([], [], []))
        for target, extra in zip(into, (steps, values, walls), strict=True):
            target.extend(extra)
    return {
        tag: (np.asarray(s, dtype=float), np.asarray(v, dtype=float), np.asarray(w, dtype=float))
        for tag, (s, v, w) in merged.items()
    }


def _run_aliases(
    tag_runs: dict[str, list[str]], first: str, several: bool, series: dict
) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Other names a series may be given by, and tags found in several runs (ambiguous).

    One run: ``<run>/<tag>`` names ``<tag>``. Several: ``<tag>`` names ``<run>/<tag>`` when
    one run logs it, and is ambiguous when several do.
    """
    aliases: dict[str, str] = {}
    ambiguous: dict[str, tuple[str, ...]] = {}
    if several:
        for tag, runs in tag_runs.items():
            if len(runs) == 1:
                aliases[tag] = f"{runs[0]}/{tag}" if runs[0] != "." else tag
            else:
                ambiguous[tag] = tuple(runs)
    elif first != ".":
        aliases = {f"{first}/{tag}": tag for tag in series}
    return {alias: name for alias, name in aliases.items() if alias not in series}, ambiguous


def shift_lightning_scalars(scalars: _Scalars) -> _Scalars:
    """Lightning's 0-based steps made 1-based, as :func:`~._tabular.shift_lightning_rows`.

    Points at step 0 written before the first training value (LR, training loss) or the first
    step above 0 come from ``trainer.validate()`` before ``trainer.fit()`` and stay at 0; the
    event wall times give that order.
    """
    starts = [
        walls[(steps > 0) | is_training_name(tag)].min(initial=np.inf)
        for tag, (steps, _, walls) in scalars.items()
    ]
    start = min(starts, default=np.inf)
    return {
        tag: (np.where((steps == 0) & (walls < start), steps, steps + 1), values, walls)
        for tag, (steps, values, walls) in scalars.items()
    }


def _is_number(array: np.ndarray) -> bool:
    """A scalar integer or float (not a bool, a string or a histogram)."""
    integer_or_float = np.issubdtype(array.dtype, np.integer) or np.issubdtype(
        array.dtype, np.floating
    )
    return array.size == 1 and bool(integer_or_float)


def _scalars(
    file: Path, accumulator_class, tensor_util
) -> tuple[list[tuple[str, list, list, list]], int | None]:
    """``(tag, steps, values, wall times)`` of every scalar tag of one event file, and the
    ``max_steps`` of the HF ``TrainingArguments`` the file records (``args/text_summary``)."""
    accumulator = accumulator_class(str(file), size_guidance={"scalars": 0, "tensors": 0})
    try:
        accumulator.Reload()
    except Exception as exc:  # noqa: BLE001 - corrupt records raise assorted errors
        reason = str(exc) or type(exc).__name__
        raise InputError(f"{file}: not a readable TensorBoard event file ({reason})") from None
    tags = accumulator.Tags()
    found = []
    for tag in tags.get("scalars", []):
        events = accumulator.Scalars(tag)
        found.append(
            (
                tag,
                [float(event.step) for event in events],
                [_shortest_float32(event.value) for event in events],
                [event.wall_time for event in events],
            )
        )
    max_steps = None
    for tag in tags.get("tensors", []):
        events = accumulator.Tensors(tag)
        arrays = [tensor_util.make_ndarray(event.tensor_proto) for event in events]
        if tag == HF_ARGS_TAG and arrays:
            max_steps = hf_max_steps(arrays[-1].reshape(-1)[0])
        if not arrays or not all(map(_is_number, arrays)):
            continue
        numbers = [float(a.reshape(())) for a in arrays]
        values = [
            _shortest_float32(n) if a.dtype == np.float32 else n
            for a, n in zip(arrays, numbers, strict=True)
        ]
        walls = [event.wall_time for event in events]
        found.append((tag, [float(event.step) for event in events], values, walls))
    return found, max_steps
