"""Atomic writes (``_io.atomic_writer``): the target is replaced whole or not at all, and no
temporary file is left, with an unnamed temporary file (Linux ``O_TMPFILE``) or a named one
(elsewhere, or on a file system without it)."""

from __future__ import annotations

import os
import stat

import pytest

from cptopt import _io


@pytest.fixture(params=["unnamed", "named"])
def temp_kind(request, monkeypatch, tmp_path) -> str:
    if request.param == "named":
        monkeypatch.setattr(_io, "_unnamed_temp", lambda folder: None)
    else:
        fd = _io._unnamed_temp(tmp_path)
        if fd is None:
            pytest.skip("no unnamed temporary files here (O_TMPFILE)")
        os.close(fd)
    return request.param


def test_a_write_replaces_the_file_whole_with_a_plain_files_mode(tmp_path, temp_kind):
    target = tmp_path / "law.json"
    target.write_text("old")
    previous = os.umask(0o027)
    try:
        _io.atomic_write_text(target, "new\n")
    finally:
        os.umask(previous)
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # 0o666 less the umask
    assert [path.name for path in tmp_path.iterdir()] == ["law.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path, temp_kind):
    target = tmp_path / "law.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), _io.atomic_writer(target) as handle:
        handle.write("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["law.json"]


def test_binary_writes(tmp_path, temp_kind):
    with _io.atomic_writer(tmp_path / "x.bin", binary=True) as handle:
        handle.write(b"\x00\xff")
    assert (tmp_path / "x.bin").read_bytes() == b"\x00\xff"


def test_where_the_unnamed_file_cannot_be_named_its_data_is_copied(tmp_path, monkeypatch):
    fd = _io._unnamed_temp(tmp_path)
    if fd is None:
        pytest.skip("no unnamed temporary files here (O_TMPFILE)")
    os.close(fd)

    def refuse(*args, **kwargs):
        raise PermissionError(1, "linking refused")

    monkeypatch.setattr(os, "link", refuse)
    text = "x" * 3_000_000  # more than one copied chunk
    _io.atomic_write_text(tmp_path / "law.json", text)
    assert (tmp_path / "law.json").read_text() == text
    assert [path.name for path in tmp_path.iterdir()] == ["law.json"]
