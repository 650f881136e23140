"""Render a check report: text for people, GitHub workflow commands for pull requests."""

from __future__ import annotations

import re
from pathlib import Path

from cptopt.limits import CheckReport


def format_text(report: CheckReport) -> str:
    """People's format: one PASS/FAIL line per config, reasons indented, a summary line.

    Configs in error are summarised only (their one-line errors belong on stderr).
    """
    lines: list[str] = []
    for result in report.results:
        if result.verdict == "error":
            continue
        prediction = result.prediction
        head = f"{result.verdict.upper():4}  {result.path}"
        if prediction is not None:
            head += (
                f"  general {prediction.general.initial:.4f} -> {prediction.general.final:.4f}"
                f" ({prediction.general_rise:+.4f}), domain {prediction.domain.initial:.4f}"
                f" -> {prediction.domain.final:.4f}"
            )
        lines.append(head)
        lines += [f"      {message}" for message in result.findings]
        lines += [f"      warning: {message}" for message in result.warnings]
    summary = report.summary
    noun = "config" if summary.configs == 1 else "configs"
    lines.append(
        f"{summary.configs} {noun} checked: {summary.passed} passed, {summary.failed} failed, "
        f"{summary.errors} error{'s' if summary.errors != 1 else ''}"
    )
    return "\n".join(lines) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


#: Which config key an out-of-range message is about (for annotation line numbers).
_FLAG_KEYS = (
    ("outside the pilots: peak LR", ("schedule.peak_lr", "learning_rate", "schedule.lr")),
    ("outside the pilots: replay", ("replay_ratio",)),
    ("outside the pilots: tokens per step", ("tokens_per_step",)),
    ("outside the pilots: checkpoint", ("checkpoint",)),
    ("outside the pilots:", ("schedule.steps", "max_steps", "schedule.lr")),
)


def key_line(path: str | Path, dotted_key: str) -> int | None:
    """1-based line of ``dotted_key`` (e.g. ``schedule.peak_lr``) in a YAML file, or None."""
    import yaml

    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line = None
    for part in dotted_key.split("."):
        if not isinstance(node, yaml.MappingNode):
            return None
        for key_node, value_node in node.value:
            if key_node.value == part:
                line, node = key_node.start_mark.line + 1, value_node
                break
        else:
            return None
    return line


def _annotation(level: str, path: str, title: str, message: str, line: int | None) -> str:
    where = f"file={_escape_property(path)}"
    if line is not None:
        where += f",line={line}"
    return f"::{level} {where},title={_escape_property(title)}::{_escape_data(message)}"


def _line_for(path: str, message: str) -> int | None:
    keys: tuple[str, ...] = ()
    if message.startswith("outside the pilots:"):
        keys = next(k for prefix, k in _FLAG_KEYS if message.startswith(prefix))
    else:
        match = re.match(re.escape(path) + r": ([A-Za-z_][\w.]*):", message)
        if match:
            keys = (match.group(1),)
    for key in keys:
        line = key_line(path, key)
        if line is not None:
            return line
    return None


def format_github(report: CheckReport) -> str:
    """GitHub Actions workflow commands: one annotation per finding, warning and error.

    Each points at the config file (and at the offending key's line where one is known),
    so the pull request shows it inline. A plain summary line follows.
    """
    lines: list[str] = []
    for result in report.results:
        name = result.name or Path(result.path).stem
        if result.error is not None:
            lines.append(
                _annotation(
                    "error",
                    result.path,
                    "cptopt check: invalid input",
                    result.error,
                    _line_for(result.path, result.error),
                )
            )
        for check_item in result.checks:
            if not check_item.passed:
                lines.append(
                    _annotation(
                        "error",
                        result.path,
                        f"cptopt check {name}: {check_item.name}",
                        check_item.message,
                        None,
                    )
                )
        for message in result.findings:
            if message.startswith("outside the pilots:"):
                lines.append(
                    _annotation(
                        "error",
                        result.path,
                        f"cptopt check {name}: extrapolation",
                        message + " (set allow_extrapolation to accept)",
                        _line_for(result.path, message),
                    )
                )
        for message in result.warnings:
            lines.append(
                _annotation(
                    "warning",
                    result.path,
                    f"cptopt check {name}: extrapolation",
                    message,
                    _line_for(result.path, message),
                )
            )
    summary = report.summary
    lines.append(
        f"cptopt check: {summary.configs} configs, {summary.passed} passed, "
        f"{summary.failed} failed, {summary.errors} errors"
    )
    return "\n".join(lines) + "\n"
