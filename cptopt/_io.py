"""Files in and out: checked reads, checked output paths, atomic writes.

Every file cptopt reads as text goes through :func:`read_text`, and every file it writes
through :func:`atomic_writer`, so that a bad path gets one line naming the file and the
problem, a FIFO or device never blocks a run, and an interrupted run never leaves a
half-written file (or, after the next run, a stray temporary file) behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from cptopt._processes import pid_alive
from cptopt.exceptions import InputError

#: Text inputs (manifests, configs, law files, logs) larger than this are refused.
MAX_TEXT_BYTES = 2 * 1024**3

#: What an OS error means to a user, by errno.
_REASONS = {
    errno.ENOENT: "not found",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "a parent is not a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENAMETOOLONG: "name too long",
    errno.ENOSPC: "no space left on the device",
    errno.EEXIST: "already exists",
    errno.ELOOP: "too many symbolic links",
}


def os_error_line(exc: OSError, path: str | os.PathLike[str] | None = None) -> str:
    """``FILE: problem`` for an OS error (the file from the error, else ``path``)."""
    name = exc.filename if exc.filename is not None else path
    reason = _REASONS.get(exc.errno or 0) or (exc.strerror or type(exc).__name__).lower()
    return f"{name}: {reason}" if name is not None else reason


def check_input_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """``path`` if it is a readable regular file; a one-line InputError otherwise.

    FIFOs, devices and sockets are refused before anything opens them (reading one could
    block forever or never end).
    """
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise InputError(f"{what} not found: {path}") from None
        raise InputError(os_error_line(exc, path)) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path}: is a directory, expected a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: not a regular file (a FIFO, device or socket)")
    if info.st_size > MAX_TEXT_BYTES:
        raise InputError(f"{path}: {info.st_size} bytes, more than cptopt reads ({MAX_TEXT_BYTES})")
    return path


def read_bytes(path: str | os.PathLike[str], what: str = "file") -> bytes:
    """The bytes of a regular file (see :func:`check_input_file`), one-line errors."""
    path = check_input_file(path, what)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(os_error_line(exc, path)) from None


def decode_text(path: str | os.PathLike[str], data: bytes, hint: str = "") -> str:
    """``data`` as UTF-8 text (a leading BOM dropped), or one line naming the bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
        raise InputError(f"{path}: not UTF-8 text ({where}){hint}") from None


def read_text(path: str | os.PathLike[str], what: str = "file") -> str:
    """The UTF-8 text of a regular file: :func:`read_bytes` then :func:`decode_text`."""
    return decode_text(path, read_bytes(path, what))


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """``path`` if a file can be written there; a one-line InputError otherwise.

    Called before long work starts, so that a bad ``-o`` does not waste a fit. A missing
    parent folder is fine (it is created) as long as it can be.
    """
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target}: is a directory, expected a file to write")
    if len(target.name.encode()) > 255:
        raise InputError(f"{target}: name too long")
    folder = target.parent if str(target.parent) else Path(".")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{target}: a parent ({existing}) is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{target}: permission denied (cannot write in {existing})")
    if target.exists() and not os.access(target, os.W_OK) and not os.access(folder, os.W_OK):
        raise InputError(f"{target}: permission denied")
    return target


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


def remove_stale_temps(target: Path) -> int:
    """Remove temporary files of ``target`` left by writers that were killed; returns how
    many. A temporary file is ``.NAME.PID.XXXX.tmp``; it is stale when PID is gone."""
    removed = 0
    folder = target.parent if str(target.parent) else Path(".")
    for candidate in folder.glob(f"{_temp_prefix(target)}*.tmp"):
        pid_text = candidate.name[len(_temp_prefix(target)) :].split(".", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not pid_alive(int(pid_text)):
            with contextlib.suppress(OSError):
                candidate.unlink()
                removed += 1
    return removed


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _unnamed_temp(folder: Path) -> int | None:
    """An unnamed file in ``folder`` (Linux ``O_TMPFILE``; its mode what ``open()`` would
    give), which a killed writer cannot leave behind; None where the system or the file
    system has none (or ``/proc``, through which it is given a name, is missing)."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not Path("/proc/self/fd").is_dir():
        return None
    try:
        return os.open(folder, flag | os.O_RDWR, 0o666)
    except OSError:
        return None  # e.g. a file system without O_TMPFILE: a named temporary file


def _name_temp(fd: int, folder: Path, prefix: str) -> str:
    """Give the unnamed file ``fd`` a temporary name in ``folder`` (just before the rename);
    where the system refuses, copy its data to a named temporary file."""
    # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N names it; os.link only calls linkat
    # (rather than link, which would not follow) when given a directory fd.
    anchor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while True:
            name = str(folder / f"{prefix}{os.urandom(6).hex()}.tmp")
            try:
                os.link(f"/proc/self/fd/{fd}", name, src_dir_fd=anchor, follow_symlinks=True)
                return name
            except FileExistsError:
                continue
            except OSError:
                return _copy_to_named(fd, folder, prefix)
    finally:
        os.close(anchor)


def _copy_to_named(fd: int, folder: Path, prefix: str) -> str:
    """The data of ``fd`` in a new named temporary file in ``folder``, fsynced."""
    named, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    try:
        offset = 0
        while chunk := os.pread(fd, 1 << 20, offset):
            view = memoryview(chunk)
            while view:
                view = view[os.write(named, view) :]
            offset += len(chunk)
        os.fsync(named)
        os.chmod(name, 0o666 & ~_current_umask())
    except BaseException:
        os.unlink(name)
        raise
    finally:
        os.close(named)
    return name


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], binary: bool = False) -> Iterator[IO[Any]]:
    """A handle on a temporary file next to ``path`` that replaces ``path`` on success.

    The temporary file is flushed, fsynced and renamed over ``path`` when the block ends
    without an exception (the rename is atomic on POSIX and Windows, so readers see the old
    file or the complete new one, never a prefix); on any exception it is removed. On Linux
    it has no name while it is written (``O_TMPFILE``): a writer killed then (``kill -9``)
    leaves nothing; it is named only for the rename. Elsewhere its name carries the writer's
    process id, so that the temporary files of a writer that was killed are removed by the
    next write of the same file (or the next read of a law file, :func:`remove_stale_temps`).
    """
    target = check_output_path(path)
    folder = target.parent if str(target.parent) else Path(".")
    prefix = f"{_temp_prefix(target)}{os.getpid()}."
    tmp_name: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(target)
        fd = _unnamed_temp(folder)
        if fd is None:
            fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
            # mkstemp makes the file owner-only; give it the mode a plain open() would have.
            os.chmod(tmp_name, 0o666 & ~_current_umask())
    except OSError as exc:
        raise InputError(os_error_line(exc, target)) from None
    try:
        mode, encoding = ("wb", None) if binary else ("w", "utf-8")
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            if tmp_name is None:
                tmp_name = _name_temp(handle.fileno(), folder, prefix)
        os.replace(tmp_name, target)
    except BaseException as exc:
        if tmp_name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise InputError(os_error_line(exc, target)) from None
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path) as handle:
        handle.write(text)
    return Path(path)
