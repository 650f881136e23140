"""TensorBoard event files and run directories, read with TensorBoard's own loader.

Every point is kept: the loader's default reservoir sampling (1,000 scalars per tag) is
switched off with ``size_guidance={"scalars": 0, "tensors": 0}``. Scalars written as
``simple_value`` (``torch.utils.tensorboard``, tensorboardX) and as scalar tensors
(``tf.summary.scalar``) are both read. A directory is searched recursively; a tag from a
sub-directory is named ``<subdir>/<tag>``; files of one directory (a resumed run) are merged.

TensorBoard stores float32: each value is read back as the shortest decimal that rounds
to that float32 (``0.002`` stays ``0.002``, not ``0.0020000000949949026``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cptopt.exceptions import InputError
from cptopt.pilots.logs._base import RawLog, build_series, file_sha256, require_file

EVENT_FILE_MARK = "tfevents"


def is_event_file(path: Path) -> bool:
    return path.is_file() and EVENT_FILE_MARK in path.name


def event_files(path: Path) -> list[Path]:
    """The event files of a file or run directory, sorted by directory then name."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob(f"*{EVENT_FILE_MARK}*") if p.is_file())


def _shortest_float32(value: float) -> float:
    return float(str(np.float32(value)))


def read_tensorboard(path: Path) -> RawLog:
    """Every scalar tag of the event file(s) as a series over the event step."""
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
    points: dict[str, tuple[list[float], list[float]]] = {}
    for file in files:
        if file.stat().st_size == 0:
            raise InputError(f"{file}: file is empty")
        prefix = ""
        if path.is_dir() and file.parent != path:
            prefix = file.parent.relative_to(path).as_posix() + "/"
        accumulator = EventAccumulator(str(file), size_guidance={"scalars": 0, "tensors": 0})
        try:
            accumulator.Reload()
        except Exception as exc:  # noqa: BLE001 - corrupt records raise assorted errors
            raise InputError(f"{file}: not a readable TensorBoard event file ({exc})") from None
        tags = accumulator.Tags()
        for tag in tags.get("scalars", []):
            steps, values = points.setdefault(prefix + tag, ([], []))
            for event in accumulator.Scalars(tag):
                steps.append(float(event.step))
                values.append(_shortest_float32(event.value))
        for tag in tags.get("tensors", []):
            events = accumulator.Tensors(tag)
            arrays = [tensor_util.make_ndarray(event.tensor_proto) for event in events]
            if not arrays or any(a.size != 1 or a.dtype.kind not in "fiu" for a in arrays):
                continue
            steps, values = points.setdefault(prefix + tag, ([], []))
            for event, array in zip(events, arrays, strict=True):
                steps.append(float(event.step))
                number = float(array.reshape(()))
                values.append(_shortest_float32(number) if array.dtype == np.float32 else number)
    series = build_series(points)
    if not series:
        raise InputError(f"{path}: the event files hold no scalars")
    return RawLog(
        source=str(path),
        sha256=file_sha256(path),
        format="tensorboard",
        series=series,
        step_name="step",
    )
