"""CRC-32C (Castagnoli) of many byte ranges at once, vectorised with numpy.

TensorBoard's record framing checks every record with a masked CRC-32C; Python has no
CRC-32C and TensorBoard's own fallback is a Python loop per byte. Here the CRC of many
records is computed together: the CRC register is linear over GF(2), so

- leading zero bytes do not change a CRC started from 0: the records of a bucket (lengths
  up to a power of two) are right-aligned in one matrix, zero-padded on the left;
- each row is cut into chunks of ``W`` bytes, whose CRCs (from 0) are computed column by
  column for all chunks at once, then folded: ``crc = shift_W(crc) ^ chunk``, where
  ``shift_n`` (the register after ``n`` zero bytes) is applied with four 256-entry tables;
- the initial register ``0xFFFFFFFF`` adds ``shift_length(0xFFFFFFFF)`` to each CRC.

Python loops run over buckets, chunk columns and chunk counts (about twice the square root
of the longest record), never over records or bytes.
"""

from __future__ import annotations

import numpy as np

_POLY = 0x82F63B78
_MASK_DELTA = 0xA282EAD8
#: Bytes of a bucket's matrix built at once.
_PIECE = 1 << 24


def _byte_table() -> np.ndarray:
    crc = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        crc = np.where(crc & 1, (crc >> 1) ^ np.uint32(_POLY), crc >> 1).astype(np.uint32)
    return crc


_TABLE = _byte_table()


def _apply(shift: np.ndarray, crc: np.ndarray) -> np.ndarray:
    """A linear map of the register given as four byte tables, applied to ``crc``."""
    return (
        shift[0][crc & 0xFF]
        ^ shift[1][(crc >> 8) & 0xFF]
        ^ shift[2][(crc >> 16) & 0xFF]
        ^ shift[3][crc >> 24]
    )


def _shift_tables(levels: int) -> list[np.ndarray]:
    """``tables[k]``: the register after ``2**k`` zero bytes, as four byte tables."""
    basis = np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None]
    one = _TABLE[basis & 0xFF] ^ (basis >> 8)
    tables = [one]
    for _ in range(1, levels):
        last = tables[-1]
        tables.append(_apply(last, _apply(last, basis)))
    return tables


_SHIFTS = _shift_tables(40)


def _shift(crc: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The registers ``crc`` after ``lengths`` zero bytes each."""
    crc = crc.copy()
    lengths = lengths.astype(np.int64)
    for level, table in enumerate(_SHIFTS):
        odd = ((lengths >> level) & 1).astype(bool)
        if not (lengths >> level).any():
            break
        if odd.any():
            crc[odd] = _apply(table, crc[odd])
    return crc


def _raw_rows(rows: np.ndarray) -> np.ndarray:
    """The CRC register (started at 0, no final xor) of each row of a uint8 matrix."""
    columns = np.ascontiguousarray(rows.T)  # one contiguous array per byte position
    crc = np.zeros(rows.shape[0], dtype=np.uint32)
    for column in columns:
        crc = _TABLE[(crc ^ column) & 0xFF] ^ (crc >> 8)
    return crc


def _bucket(padded: np.ndarray, starts: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """Raw CRCs of records of at most ``width`` bytes (a power of two) of ``padded``, which
    has ``width`` zero bytes in front of the data."""
    size = 1 << ((width.bit_length() - 1 + 1) // 2)  # chunk bytes: about sqrt(width)
    count = width // size
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    rows = windows[starts + lengths].reshape(starts.size, count, size)  # right-aligned
    pad = width - lengths  # bytes in front of each record: zeroed below
    first, inner = pad // size, pad % size
    every = np.arange(starts.size)
    partial = rows[every, np.minimum(first, count - 1)]
    partial[np.arange(size)[None, :] < inner[:, None]] = 0
    rows[every, np.minimum(first, count - 1)] = partial
    chunks = _raw_rows(rows.reshape(-1, size)).reshape(starts.size, count)
    chunks[np.arange(count)[None, :] < first[:, None]] = 0  # chunks wholly in front
    crc = np.zeros(starts.size, dtype=np.uint32)
    fold = _SHIFTS[size.bit_length() - 1]
    for column in chunks.T:
        crc = _apply(fold, crc) ^ column
    return crc


def crc32c(data: bytes | np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CRC-32C of ``data[starts[i] : starts[i] + lengths[i]]`` for every ``i`` (uint32)."""
    array = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    raw = np.zeros(starts.size, dtype=np.uint32)
    if not starts.size:
        return raw
    levels = np.ceil(np.log2(np.maximum(lengths, 1))).astype(np.int64)
    padded = np.concatenate((np.zeros(1 << int(levels.max()), dtype=np.uint8), array))
    for level in np.unique(levels):
        width = 1 << int(level)
        chosen = np.flatnonzero(levels == level)
        step = max(1, _PIECE // width)
        for first in range(0, chosen.size, step):
            part = chosen[first : first + step]
            # ``padded`` has 2**max_level zero bytes in front; this bucket needs ``width``
            offset = (1 << int(levels.max())) - width
            raw[part] = _bucket(padded[offset:], starts[part], lengths[part], width)
    start = np.full(starts.size, 0xFFFFFFFF, dtype=np.uint32)
    return raw ^ _shift(start, lengths) ^ np.uint32(0xFFFFFFFF)


def masked_crc32c(data: bytes | np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """TensorBoard's (TFRecord's) masked CRC-32C of each range: rotated right by 15, plus a
    constant."""
    crc = crc32c(data, starts, lengths).astype(np.uint64)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA).astype(np.uint32)
