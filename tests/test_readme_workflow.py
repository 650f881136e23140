"""The README's GitHub Actions example installs cptopt from where users get it (issue #14)."""

from __future__ import annotations

from pathlib import Path

import yaml

README = Path(__file__).resolve().parents[1] / "README.md"


def test_workflow_installs_cptopt_from_its_repository():
    text = README.read_text()
    block = text.split("```yaml\nname: cptopt check\n", 1)[1].split("```", 1)[0]
    workflow = yaml.safe_load("name: cptopt check\n" + block)
    steps = workflow["jobs"]["check"]["steps"]
    commands = [step["run"] for step in steps if "run" in step]
    install = next(command for command in commands if command.startswith("pip install"))
    name, _, url = install.removeprefix("pip install").strip().strip('"').partition(" @ ")
    assert name == "cptopt" and url.startswith("git+https://")  # a direct reference, not PyPI
    assert "@" in url.removeprefix("git+https://")  # pinned to a tag or commit
    assert commands[-1].startswith("cptopt check ") and "--format github" in commands[-1]
