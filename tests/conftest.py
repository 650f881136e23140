"""Shared fixtures: the bundled real data and a law fitted once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "data" / "cpt-code"
PILOTS = ROOT / "examples" / "pilots"
CONFIGS = ROOT / "examples" / "configs"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def unannealed_manifest() -> Path:
    return PILOTS / "unannealed.yaml"


@pytest.fixture(scope="session")
def fitted_law(unannealed_manifest):
    """The law fitted to the unannealed scenario's five real pilots (default settings)."""
    from cptopt import fit

    return fit(unannealed_manifest)


@pytest.fixture(scope="session")
def law_file(fitted_law, tmp_path_factory) -> Path:
    """``fitted_law`` saved to a temporary law file."""
    path = tmp_path_factory.mktemp("law") / "law.json"
    fitted_law.save(path)
    return path
