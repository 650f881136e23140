"""Render a check report: text for people, GitHub workflow commands for pull requests."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path

from cptopt.exceptions import CptoptError
from cptopt.limits import CheckReport


def format_text(report: CheckReport, width: int | None = None) -> str:
    """People's format: one PASS/FAIL line per config, reasons indented, a summary line.

    Configs in error and skipped files are counted only (their lines belong on stderr).
    With ``width`` (a terminal's) a line that does not fit wraps between words, its
    continuation indented: a path or a number is never split.
    """
    lines: list[tuple[str | None, str]] = []  # (indent, text); None: never wrapped
    for result in report.results:
        if result.verdict in ("error", "skipped"):
            continue
        prediction = result.prediction
        head = f"{result.verdict.upper():4}  {result.path}"
        if prediction is not None:
            summary = (
                f"general {prediction.general.initial:.4f} -> {prediction.general.final:.4f}"
                f" ({prediction.general_rise:+.4f}), domain {prediction.domain.initial:.4f}"
                f" -> {prediction.domain.final:.4f}"
            )
            if width is None or len(head) + 2 + len(summary) <= width:
                head += f"  {summary}"
            else:  # the verdict and the file on a line of their own
                lines.append((None, head))
                head = ""
                lines.append((_INDENT, summary))
        if head:
            lines.append((None, head))  # the verdict and the file stay on one line
        lines += [(_INDENT, message) for message in result.findings]
        lines += [(_INDENT, f"warning: {message}") for message in result.warnings]
    lines.append(("", summary_line(report)))
    return "\n".join(_wrapped(indent, text, width) for indent, text in lines) + "\n"


def summary_line(report: CheckReport) -> str:
    """``5 configs checked: 2 passed, 3 failed, 0 errors`` (``; 3 files skipped ...``)."""
    counts = report.summary
    noun = "config" if counts.configs == 1 else "configs"
    line = (
        f"{counts.configs} {noun} checked: {counts.passed} passed, {counts.failed} failed, "
        f"{counts.errors} error{'s' if counts.errors != 1 else ''}"
    )
    if counts.skipped:
        files = "file" if counts.skipped == 1 else "files"
        line += f"; {counts.skipped} {files} skipped (not training configs)"
    return line


#: Where a config's reasons start (under its file name).
_INDENT = " " * 6


def _wrapped(indent: str | None, text: str, width: int | None) -> str:
    """``indent + text``, wrapped at ``width`` between words (continuations indented 2 more)."""
    if width is None or indent is None:
        return (indent or "") + text
    return textwrap.fill(
        text,
        width,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=False,
        break_on_hyphens=False,
    )


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


def format_github(report: CheckReport, render: Callable[[CptoptError], str] | None = None) -> str:
    """GitHub Actions workflow commands: one annotation per finding, warning and error,
    and a notice per skipped file.

    Each points at the config file (and at the offending key's line where one is known),
    so the pull request shows it inline. A plain summary line follows. ``render`` writes
    an error's or a skip note's message (the command line names the fields it marks as
    its options; default: as Python names them).
    """
    lines: list[str] = []
    for result in report.results:
        name = result.name or Path(result.path).stem
        text = result.error or result.note
        if text is not None and render is not None and result.problem is not None:
            text = render(result.problem)
        if result.note is not None and text is not None:
            lines.append(_annotation("notice", result.path, "cptopt check: skipped", text, None))
        if result.error is not None and text is not None:
            lines.append(
                _annotation(
                    "error",
                    result.path,
                    "cptopt check: invalid input",
                    text,
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
    counts = report.summary
    skipped = f", {counts.skipped} skipped (not training configs)" if counts.skipped else ""
    lines.append(
        f"cptopt check: {counts.configs} configs, {counts.passed} passed, "
        f"{counts.failed} failed, {counts.errors} errors{skipped}"
    )
    return "\n".join(lines) + "\n"
