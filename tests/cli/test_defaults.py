"""The command line's copies of the library's defaults (``cptopt.cli._defaults``) are the
library's own: the copies exist only so that option declarations import no stage."""

from __future__ import annotations

import pytest

from cptopt import _validation, design, fitting, law, pilots, report
from cptopt.cli import _defaults

COPIES = [
    ("DEFAULT_LAW_PATH", law.DEFAULT_LAW_PATH),
    ("DEFAULT_STARTS", fitting.DEFAULT_STARTS),
    ("MAX_SEED", _validation.MAX_SEED),
    ("MAX_STARTS", _validation.MAX_STARTS),
    ("DEFAULT_TOLERANCE", design.DEFAULT_TOLERANCE),
    ("DEFAULT_P_BEST", design.DEFAULT_P_BEST),
    ("DEFAULT_DPI", report.DEFAULT_DPI),
    ("LOG_FORMATS", pilots.FORMATS),
]


@pytest.mark.parametrize(("name", "library"), COPIES, ids=[name for name, _ in COPIES])
def test_each_copy_is_the_library_value(name, library):
    copy = getattr(_defaults, name)
    assert type(copy) is type(library)
    if isinstance(library, float):
        assert copy == pytest.approx(library, rel=1e-12)
    else:
        assert copy == library


def test_every_copy_is_checked():
    copied = {name for name in vars(_defaults) if name.isupper()}
    assert copied == {name for name, _ in COPIES}
