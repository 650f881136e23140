"""Rendering a check report: GitHub workflow commands."""

from __future__ import annotations

from cptopt.limits import CheckReport
from cptopt.report.check import format_github


def test_github_escaping() -> None:
    report = CheckReport.model_validate(
        {
            "status": "error",
            "summary": {"configs": 1, "passed": 0, "failed": 0, "errors": 1},
            "results": [
                {"path": "a,b.yaml", "verdict": "error", "error": "a,b.yaml: x: 100% bad\nnext"}
            ],
        }
    )
    line = format_github(report).splitlines()[0]
    assert line.startswith("::error file=a%2Cb.yaml,title=cptopt check%3A invalid input::")
    assert line.endswith("100%25 bad%0Anext")
