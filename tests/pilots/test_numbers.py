"""The CSV reader's numbers: parsed in numpy, bit for bit what ``np.fromstring`` gives."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cptopt.pilots.logs import _numbers
from cptopt.pilots.logs._numbers import parse_fields


def _fromstring(tokens: list[str]) -> np.ndarray | None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            parsed = np.fromstring((",".join(tokens) + ",").encode(), sep=",")  # noqa: NPY201
        except (ValueError, DeprecationWarning):
            return None
    return parsed if parsed.size == len(tokens) else None


def _parsed(tokens: list[str]) -> np.ndarray | None:
    block = np.frombuffer(("\n".join(tokens) + "\n").encode(), dtype=np.uint8)
    ends = np.flatnonzero(block == ord("\n"))
    return parse_fields(block, np.r_[0, ends[:-1] + 1], ends)


def _agree(tokens: list[str]) -> None:
    expected, got = _fromstring(tokens), _parsed(tokens)
    assert (expected is None) == (got is None), tokens[:5]
    if expected is not None:
        np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64))  # bits


VALUES = np.concatenate(
    [
        np.random.default_rng(0).lognormal(-8, 5, 3000),
        -np.random.default_rng(1).lognormal(0, 3, 1000),
        np.random.default_rng(2).integers(0, 10**7, 1000).astype(float),
        [0.0, 1.0, 3e-5, 2.5e-300],
    ]
)


@pytest.mark.parametrize("fmt", ["%.6g", "%.5f", "%.17g", "%r", "%.3e", "%.15g", "%+.4f", "%.10E"])
def test_formatted_numbers_parse_to_the_same_bits(fmt):
    _agree([fmt % value for value in VALUES])


def test_short_fields_take_the_fast_path(monkeypatch):
    """Up to 15 digits and 10**22: no field is left to np.fromstring."""
    left = []
    monkeypatch.setattr(_numbers, "_fromstring", lambda *args: left.append(args[1].size))
    plain = VALUES[(np.abs(VALUES) > 1e-15) & (np.abs(VALUES) < 1e15)]
    tokens = [f"{value:.6g}" for value in plain] + ["12", "-0", "5.", ".5", "1E+05", "+7"]
    assert _parsed(tokens) is not None and left == []


ODD = [
    "-0", "+0", "0.", ".5", "-.5", "1e5", "1E+05", "1e-05", "1e400", "-1e-400", "nan", "-inf",
    "Infinity", ".", "-", "+", "e5", "1e", "1e+", "1..2", "1e5e5", "1-2", "--1", "+-1",
    "1.5e3.2", "0.0000000000000001", "123456789012345678", "1e-0005", "12e22", "12e23",
    "9007199254740993", " 1", "1 ", ".e1", "1.e1", "-1.E-1",
]  # fmt: skip


@pytest.mark.parametrize("token", ODD)
def test_odd_fields_get_fromstrings_verdict(token):
    _agree([token])
    _agree(["1.5", token, "2"])


def test_random_fields_of_number_bytes_get_fromstrings_verdict():
    rng = np.random.default_rng(3)
    alphabet = np.array(list("0123456789+-.eE"))
    for _ in range(3000):
        _agree(["".join(rng.choice(alphabet, rng.integers(1, 9)))])
