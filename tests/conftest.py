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


@pytest.fixture(scope="session")
def pretrain_manifest() -> Path:
    """The bundled pre-training pilots: the MPL paper's three fit runs of a 25M model."""
    return PILOTS / "pretrain.yaml"


@pytest.fixture(scope="session")
def pretrain_law(pretrain_manifest):
    """The law fitted to the bundled pre-training pilots (default settings: the annealing
    memory chosen by leave-one-run-out CV)."""
    from cptopt import fit

    return fit(pretrain_manifest)


@pytest.fixture(scope="session")
def pretrain_law_file(pretrain_law, tmp_path_factory) -> Path:
    """``pretrain_law`` saved to a temporary law file."""
    path = tmp_path_factory.mktemp("pretrain-law") / "law.json"
    pretrain_law.save(path)
    return path
