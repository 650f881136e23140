"""Decimal fields to floats in numpy: the CSV reader's numbers without a loop over cells.

``np.fromstring(text, sep=",")`` parses a field at a time in C, about 0.25 us each: 0.8 s
for the 3M numbers of a 1M-step pre-training log. Here the fields of one length and one
layout (where the sign, the decimal point and the exponent sit) are parsed together: their
digits are columns of a small matrix, and the mantissa is that matrix times the columns'
place values. The result is the correctly rounded double, as ``strtod`` (and so
``np.fromstring``) gives it: the mantissa (at most 15 digits, below 2**53) and the power of
ten (at most 22, exact in binary) are exact doubles, and one multiplication or division of
exact doubles is correctly rounded (Clinger's fast path). Fields outside it (more digits,
a larger exponent, nan/inf, or anything malformed) are left to ``np.fromstring``, which also
decides what is an error.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Bytes of the fields this parser takes: digits, sign, point, exponent letter.
_FAST_BYTES = np.zeros(256, dtype=bool)
_FAST_BYTES[np.frombuffer(b"0123456789+-.eE", dtype=np.uint8)] = True
_FAST_BYTES_OR_DELIMITER = _FAST_BYTES.copy()
_FAST_BYTES_OR_DELIMITER[[44, 10]] = True
#: The fast path's bounds: mantissa digits (10**15 < 2**53), exponent digits, |power of ten|.
MAX_DIGITS, MAX_EXPONENT_DIGITS, MAX_POWER = 15, 3, 22
#: Longest field taken (longer ones have too many digits anyway).
MAX_FIELD = MAX_DIGITS + MAX_EXPONENT_DIGITS + 4
_POW10 = 10.0 ** np.arange(MAX_POWER + 1)
_DOT, _MINUS, _PLUS, _ZERO, _COMMA, _NEWLINE = 46, 45, 43, 48, 44, 10


def parse_fields(block: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """The number of each field ``block[starts[i]:ends[i]]`` (non-empty, in order, each
    followed by a delimiter), or None when any field is not one (``np.fromstring``'s
    verdict)."""
    n = starts.size
    values = np.empty(n)
    width = ends - starts
    slow = width > MAX_FIELD
    if not _FAST_BYTES_OR_DELIMITER[block].all():  # blanks, nan, inf: field by field
        # (a blank may sit in a field of blanks only, which is no field here: then the next
        # field, if any, is marked, which costs time only)
        odd = np.searchsorted(ends, np.flatnonzero(~_FAST_BYTES_OR_DELIMITER[block]))
        slow[odd[odd < n]] = True
    # Where the point and the exponent letter sit in each field (its width: none); a field
    # with two of either is slow.
    dot_at, dots = _marks(np.flatnonzero(block == _DOT), starts, ends, width)
    e_at, es = _marks(np.flatnonzero((block | 32) == ord("e")), starts, ends, width)
    first = block[starts]
    signed = (first == _MINUS) | (first == _PLUS)
    after_e = block[np.minimum(starts + e_at + 1, block.size - 1)]
    e_signed = (e_at < width) & ((after_e == _MINUS) | (after_e == _PLUS))
    # Every other byte of a field is then a digit, unless it holds more signs than these.
    sign_bytes = np.flatnonzero((block == _MINUS) | (block == _PLUS))
    signs = np.bincount(np.searchsorted(ends, sign_bytes), minlength=n)
    slow |= (dots > 1) | (es > 1) | (signs != signed.astype(np.int64) + e_signed)
    # One group per layout: width, point, exponent letter, signs (a 16-bit key: radix sort).
    span = MAX_FIELD + 1
    key = ((width * span + dot_at) * span + e_at) * 4 + signed * 2 + e_signed
    key = np.where(slow, 0, key).astype(np.uint16)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    cuts = np.flatnonzero(np.diff(sorted_key)) + 1
    for low, high in zip(np.r_[0, cuts], np.r_[cuts, n], strict=True):
        layout = int(sorted_key[low])
        if layout == 0:
            continue
        rows = order[low:high]
        ok, number = _layout(block, starts[rows], layout)
        values[rows[ok]] = number
        slow[rows[~ok]] = True
    if slow.any():
        rest = _fromstring(block, starts[slow], ends[slow])
        if rest is None:
            return None
        values[slow] = rest
    return values


def _marks(
    at: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For bytes at ``at`` (sorted): the offset of the first in each field (the field's
    width: none) and how many each field holds."""
    field = np.searchsorted(ends, at)
    count = np.bincount(field, minlength=starts.size)
    offset = width.copy()
    first = np.r_[True, field[1:] != field[:-1]] if field.size else field.astype(bool)
    offset[field[first]] = at[first] - starts[field[first]]
    return offset, count


def _layout(block: np.ndarray, starts: np.ndarray, layout: int) -> tuple[np.ndarray, np.ndarray]:
    """Fields of one layout (:func:`parse_fields`' key) at ``starts``: which the fast path
    takes (their digits are digits, within its bounds), and their numbers."""
    span = MAX_FIELD + 1
    rest, e_signed = divmod(layout, 2)
    rest, signed = divmod(rest, 2)
    rest, at_e = divmod(rest, span)
    width, at_dot = divmod(rest, span)
    column = np.arange(width)
    digits = (column >= signed) & (column < at_e) & (column != at_dot)
    exp_digits = column > at_e + e_signed
    n_digits, n_exp = int(digits.sum()), int(exp_digits.sum())
    bad = np.zeros(starts.size, dtype=bool)
    if (
        at_e < at_dot < width  # a point in the exponent
        or not 1 <= n_digits <= MAX_DIGITS
        or (at_e < width and not 1 <= n_exp <= MAX_EXPONENT_DIGITS)
    ):
        return bad, np.zeros(0)  # fromstring decides (more digits, or malformed)
    # The digit columns hold digits: parse_fields checked the signs, points and letters.
    cells = sliding_window_view(block, width)[starts]  # (n, width): one row per field
    mantissa = cells[:, digits] - _ZERO
    value = mantissa.astype(float) @ _POW10[n_digits - 1 :: -1]  # exact: below 2**53
    power = np.full(starts.size, -int((digits & (column > at_dot)).sum()))
    if at_e < width:
        exponent = cells[:, exp_digits] - _ZERO
        shift = exponent.astype(np.int64) @ (10 ** np.arange(n_exp - 1, -1, -1))
        if e_signed:
            shift = np.where(cells[:, at_e + 1] == _MINUS, -shift, shift)
        power += shift
    ok = np.abs(power) <= MAX_POWER
    scale = _POW10[np.minimum(np.abs(power), MAX_POWER)]
    # One correctly rounded operation on exact doubles (Clinger's fast path).
    value = np.where(power >= 0, value * scale, value / scale)
    if signed:
        value = np.where(cells[:, 0] == _MINUS, -value, value)
    return ok, value[ok]


def _fromstring(block: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """``np.fromstring`` of the fields (each with the delimiter after it, a comma), or None
    when one is not a number."""
    if not starts.size:
        return np.zeros(0)
    inside = np.zeros(block.size + 1, dtype=np.int8)
    np.add.at(inside, starts, 1)
    np.add.at(inside, ends, -1)
    keep = np.cumsum(inside[:-1], dtype=np.int32) > 0
    keep[ends] = True  # the delimiter after each field
    text = block[keep]
    text[text == _NEWLINE] = _COMMA
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            numbers = np.fromstring(text.tobytes(), dtype=float, sep=",")  # noqa: NPY201
        except (ValueError, DeprecationWarning):
            return None
    return numbers if numbers.size == starts.size else None
