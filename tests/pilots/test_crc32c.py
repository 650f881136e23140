"""The vectorised CRC-32C against the standard check value and TensorBoard's own."""

from __future__ import annotations

import numpy as np
import pytest

from cptopt.pilots.logs._crc32c import crc32c, masked_crc32c


def test_check_value():
    assert crc32c(b"123456789", np.array([0]), np.array([9]))[0] == 0xE3069283
    assert crc32c(b"", np.array([0]), np.array([0]))[0] == 0


def test_matches_tensorboard_on_ranges_of_every_size():
    stub = pytest.importorskip("tensorboard.compat.tensorflow_stub.pywrap_tensorflow")
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    lengths = np.concatenate([np.arange(0, 70), rng.integers(70, 5000, 60), [20_000, 49_000]])
    starts = rng.integers(0, len(data) - lengths)
    expected = [stub.crc32c(data[s : s + n]) for s, n in zip(starts, lengths, strict=True)]
    assert crc32c(data, starts, lengths).tolist() == expected
    masked = [stub.masked_crc32c(data[s : s + n]) for s, n in zip(starts, lengths, strict=True)]
    assert masked_crc32c(data, starts, lengths).tolist() == masked


def test_long_records_fold_their_chunks():
    stub = pytest.importorskip("tensorboard.compat.tensorflow_stub.pywrap_tensorflow")
    data = np.random.default_rng(1).integers(0, 256, 600_000, dtype=np.uint8)
    starts, lengths = np.array([0, 17, 5]), np.array([600_000, 599_983, 262_144])
    pairs = zip(starts, lengths, strict=True)
    expected = [stub.crc32c(data[s : s + n].tobytes()) for s, n in pairs]
    assert crc32c(data, starts, lengths).tolist() == expected
