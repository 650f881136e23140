"""Library errors speak Python: a message marks the names it uses, and a caller (the CLI)
can name them its own way."""

from __future__ import annotations

import pickle

import pytest

from cptopt.exceptions import IdentifiabilityError, InputError, param
from cptopt.search import parse_weights


def test_a_message_shows_python_names_and_renders_a_callers():
    error = InputError(f"{param('lam')} is the S2 memory: not with {param('annealing')} mpl")
    assert str(error) == "lam is the S2 memory: not with annealing mpl"
    assert error.fields == ("lam", "annealing")
    rendered = error.render({"lam": "--lam", "annealing": "--annealing"})
    assert rendered == "--lam is the S2 memory: not with --annealing mpl"
    assert error.render({"lam": "--lam"}) == "--lam is the S2 memory: not with annealing mpl"


def test_values_in_a_message_are_never_taken_for_names():
    value = "{lam}"
    error = InputError(f"{param('weights')} == {value!r}, must be two numbers")
    assert error.fields == ("weights",)
    assert error.render({"lam": "--lam", "weights": "--weights"}) == (
        "--weights == '{lam}', must be two numbers"
    )


def test_marks_survive_pickling_and_subclasses_keep_them():
    error = IdentifiabilityError(f"{param('replay_ratio')} cannot be searched")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is IdentifiabilityError and str(again) == str(error)
    assert again.fields == ("replay_ratio",)


def test_library_functions_name_their_parameters():
    with pytest.raises(InputError) as caught:
        parse_weights("abc")
    assert str(caught.value).startswith("weights == 'abc', must be two numbers")
    assert "--" not in str(caught.value) and caught.value.fields == ("weights",)
