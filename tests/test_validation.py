"""Shared input checks (``_validation``): the YAML loader's bounds, finiteness of JSON data,
and pydantic errors as one line."""

from __future__ import annotations

import math

import pytest
from pydantic import BaseModel

from cptopt._validation import (
    MAX_YAML_ALIAS_NODES,
    MAX_YAML_DEPTH,
    first_non_finite,
    load_yaml_mapping,
    validate,
)
from cptopt.exceptions import InputError


def _bomb(levels: int, width: int = 9) -> str:
    """The classic alias bomb: each level lists the previous one ``width`` times."""
    lines = ["a0: &a0 [" + ",".join(["lol"] * width) + "]"]
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nversion: *a{levels - 1}\n"


@pytest.mark.parametrize("levels", [9, 11])
def test_an_alias_bomb_is_refused_before_it_expands(tmp_path, levels):
    path = tmp_path / "m.yaml"
    path.write_text(_bomb(levels))
    assert len(path.read_bytes()) < 560  # 9 ** 11 nodes once expanded
    with pytest.raises(InputError, match=r"m\.yaml: line 6 aliases expand the file by more "):
        load_yaml_mapping(path)


def test_a_merge_key_bomb_is_refused(tmp_path):
    path = tmp_path / "m.yaml"
    levels = [f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 9)}]}}" for i in range(1, 11)]
    path.write_text("a0: &a0 {x: 1, y: 2}\n" + "\n".join(levels) + "\n")
    with pytest.raises(InputError, match="alias bomb"):
        load_yaml_mapping(path)


def _aliases(count: int, size: int = 999) -> str:
    """A file whose ``count`` aliases each add ``size + 1`` nodes (a list of ``size``)."""
    return f"base: &b [{', '.join(['1'] * size)}]\ncopies: [{', '.join(['*b'] * count)}]\n"


def test_aliases_may_add_up_to_the_bound(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(_aliases(MAX_YAML_ALIAS_NODES // 1000))  # exactly the bound
    data = load_yaml_mapping(path)
    assert len(data["copies"]) == 100 and data["copies"][0] == [1] * 999
    path.write_text(_aliases(MAX_YAML_ALIAS_NODES // 1000 + 1))
    with pytest.raises(InputError, match=f"more than {MAX_YAML_ALIAS_NODES} nodes"):
        load_yaml_mapping(path)


def test_ordinary_anchors_still_work(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        "columns: &columns {general: loss_general, domain: loss_domain}\n"
        "runs:\n  - {log: a.csv, columns: *columns}\n  - {log: b.csv, columns: *columns}\n"
    )
    runs = load_yaml_mapping(path)["runs"]
    assert (
        runs[0]["columns"]
        == runs[1]["columns"]
        == {"general": "loss_general", "domain": "loss_domain"}
    )


def test_deep_nesting_and_recursive_aliases_are_one_line(tmp_path):
    path = tmp_path / "m.yaml"
    inside = MAX_YAML_DEPTH - 1  # the file's top-level mapping is the first level
    path.write_text("version: " + "[" * (inside + 1) + "]" * (inside + 1))
    with pytest.raises(InputError, match=f"collections nested more than {MAX_YAML_DEPTH} deep"):
        load_yaml_mapping(path)
    path.write_text("version: " + "[" * inside + "]" * inside)
    nested = load_yaml_mapping(path)["version"]
    for _ in range(inside - 1):
        (nested,) = nested
    assert nested == []
    path.write_text("version: " + "[" * 100_000 + "]" * 100_000)  # crashed libyaml's composer
    with pytest.raises(InputError, match="nested more than"):
        load_yaml_mapping(path)
    path.write_text("version: &a [1, *a]\n")
    with pytest.raises(InputError, match=r"line 1 alias \*a refers to a collection that holds it"):
        load_yaml_mapping(path)


def test_first_non_finite_names_the_path():
    assert first_non_finite({"a": [1.0, 2, {"b": [0.5]}], "c": "text", "d": None}) is None
    assert first_non_finite({"general": {"values": [1.0, math.nan]}}) == "general.values[1] is NaN"
    assert first_non_finite({"j": [[1.0], [2.0, -math.inf]]}) == "j[1][1] is -Infinity"
    assert first_non_finite([{"x": math.inf}]) == "[0].x is Infinity"
    assert first_non_finite({"lr": [0.1] * 10_000 + [math.nan]}) == "lr[10000] is NaN"


class _Run(BaseModel):
    log: str


class _Manifest(BaseModel):
    runs: list[_Run]


def test_error_lines_name_list_items_by_index():
    with pytest.raises(InputError) as error:
        validate(_Manifest, {"runs": [{"log": "a"}, {"log": 3}]}, "m.yaml")
    assert str(error.value).startswith("m.yaml: runs.1.log: Input should be a valid string")
