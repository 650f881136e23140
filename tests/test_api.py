"""The public API: ``import cptopt`` gives the functions and the types a user needs, and
``help(cptopt)`` reads as a short manual (the types are listed, not rendered in full)."""

from __future__ import annotations

import pydoc

import cptopt


def test_every_public_name_resolves():
    for name in cptopt.__all__:
        assert getattr(cptopt, name) is not None, name
    # what a manifest author writes, and what a law file is
    assert cptopt.ColumnMap(general="val").general == "val"
    assert cptopt.CptLaw is cptopt.law.CptLaw and cptopt.LawFitter is cptopt.fitting.LawFitter


def test_help_is_a_short_manual_that_names_every_type():
    text = pydoc.render_doc(cptopt, renderer=pydoc.plaintext)
    assert len(text.splitlines()) < 300  # 5,416 lines before the types were listed only
    assert "model_config" not in text and "model_validate" not in text
    types = [name for name in cptopt.__all__ if name[0].isupper() and not name.isupper()]
    missing = [name for name in types if name not in text]
    assert not missing, missing
