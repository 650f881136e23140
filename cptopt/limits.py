"""Judge training configs against a team's limits: the library behind ``cptopt check``.

A config passes when the law's prediction for it keeps every limit that is set and, unless
``allow_extrapolation`` is on, stays inside what the pilots covered. Nothing here prints or
exits: :func:`check` returns a :class:`CheckReport`, and :func:`format_text` /
:func:`format_github` render it as text.

Limits (all optional; losses in nats per token)
-----------------------------------------------
- ``max_general_rise``: the final general loss may exceed its pre-CPT value by at most this.
- ``max_final_domain_loss``: the final domain loss must be at most this.
- ``min_domain_gain``: the domain loss must fall by at least this (pre-CPT minus final).
- ``allow_extrapolation``: when false (default), a setting outside the pilots' range is a
  finding; when true it is only a warning.
- ``conservative``: judge the pessimistic end of the prediction interval instead of the
  central prediction (upper end of the final general and domain losses).
- ``level``: central probability of the intervals (default 0.9).
- ``law``: the law file (relative to the file that sets it).

Where limits come from, first match wins per key: keyword arguments (CLI flags), then the
limits file: ``--limits FILE`` if given, else the nearest ``cptopt.toml`` (table ``[check]``
or ``[tool.cptopt.check]``) or ``pyproject.toml`` with a ``[tool.cptopt.check]`` table,
searched from each config's folder upwards. The law: the ``law`` argument, else the config's
``law`` key, else the limits' ``law``, else ``cptopt-law.json`` in the working directory.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cptopt._version import __version__
from cptopt.exceptions import CptoptError, InputError
from cptopt.law.fitted import DEFAULT_LAW_PATH, FittedLaw, load_law
from cptopt.plan import TrainingConfig, load_config
from cptopt.prediction import Prediction, predict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: Version of the JSON layout of :class:`CheckReport`.
REPORT_SCHEMA_VERSION = 1
#: Files searched for limits, in order of precedence within one folder.
LIMITS_FILES = ("cptopt.toml", "pyproject.toml")

Verdict = Literal["pass", "fail", "error"]


class Limits(BaseModel):
    """What a config must satisfy (see the module docstring). ``None`` = not checked."""

    model_config = ConfigDict(extra="forbid")

    max_general_rise: float | None = Field(
        default=None, description="nats: final general loss minus its pre-CPT value, at most"
    )
    max_final_domain_loss: float | None = Field(
        default=None, gt=0, description="nats: final domain loss, at most"
    )
    min_domain_gain: float | None = Field(
        default=None, description="nats: pre-CPT domain loss minus final, at least"
    )
    allow_extrapolation: bool = Field(
        default=False, description="settings outside the pilots' range only warn"
    )
    conservative: bool = Field(
        default=False, description="judge the pessimistic end of the interval"
    )
    level: float = Field(default=0.9, gt=0, lt=1, description="interval probability")
    law: str | None = Field(default=None, description="law file (relative to the limits file)")


class LimitCheck(BaseModel):
    """One limit applied to one config."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the limit's key, e.g. max_general_rise")
    limit: float
    value: float = Field(description="the predicted quantity the limit is compared with")
    passed: bool
    message: str


class ConfigResult(BaseModel):
    """The verdict on one config, with the prediction it rests on."""

    model_config = ConfigDict(extra="forbid")

    path: str
    name: str | None = None
    verdict: Verdict
    law: str | None = Field(default=None, description="law file the config was judged by")
    limits_file: str | None = Field(default=None, description="where the limits came from")
    limits: Limits | None = None
    checks: list[LimitCheck] = Field(default_factory=list)
    findings: list[str] = Field(
        default_factory=list, description="why it fails: broken limits, out-of-range settings"
    )
    warnings: list[str] = Field(
        default_factory=list, description="out-of-range settings when extrapolation is allowed"
    )
    error: str | None = Field(default=None, description="one line: file, key, problem")
    prediction: Prediction | None = None


class CheckSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    configs: int
    passed: int
    failed: int
    errors: int


class CheckReport(BaseModel):
    """The result of :func:`check`: one :class:`ConfigResult` per config, in input order."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = REPORT_SCHEMA_VERSION
    cptopt_version: str = __version__
    status: Verdict = Field(description="error if any config errored, else fail if any failed")
    summary: CheckSummary
    results: list[ConfigResult]

    def exit_code(self, exit_zero: bool = False) -> int:
        """Ruff's convention: 0 all pass, 1 findings (0 with ``exit_zero``), 2 errors."""
        if self.status == "error":
            return 2
        if self.status == "fail" and not exit_zero:
            return 1
        return 0


# --------------------------------------------------------------------------- limits files


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: invalid TOML ({exc})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def _check_table(path: Path, data: dict[str, Any]) -> tuple[tuple[str, ...], Any] | None:
    """The ``[check]`` / ``[tool.cptopt.check]`` table of a parsed TOML file, with its key path."""
    nested = data.get("tool", {}).get("cptopt", {}) if isinstance(data.get("tool"), dict) else {}
    tables: list[tuple[tuple[str, ...], Any]] = []
    if isinstance(nested, dict) and "check" in nested:
        tables.append((("tool", "cptopt", "check"), nested["check"]))
    if path.name != "pyproject.toml" and "check" in data:
        tables.append((("check",), data["check"]))
    if len(tables) > 1:
        raise InputError(f"{path}: give [check] or [tool.cptopt.check], not both")
    return tables[0] if tables else None


def load_limits_file(path: str | Path) -> Limits:
    """Limits from a ``cptopt.toml`` or ``pyproject.toml`` (no table: no limits).

    A relative ``law`` is made relative to the file's folder. Unknown keys, wrong types or
    bad TOML raise a one-line :class:`InputError` naming the file and key.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"limits file not found: {path}")
    found = _check_table(path, _read_toml(path))
    if found is None:
        return Limits()
    prefix, table = found
    if not isinstance(table, dict):
        raise InputError(f"{path}: {'.'.join(prefix)}: must be a table")
    try:
        limits = Limits.model_validate(table)
    except ValidationError as exc:
        raise InputError(_limits_error(str(path), exc, prefix)) from None
    if limits.law is not None:
        limits = limits.model_copy(update={"law": str(path.parent / limits.law)})
    return limits


def _limits_error(source: str, exc: ValidationError, prefix: tuple[str, ...]) -> str:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in (*prefix, *first.get("loc", ())))
    if first.get("type") == "extra_forbidden":
        return f"{source}: {key}: unknown key (allowed: {', '.join(Limits.model_fields)})"
    return f"{source}: {key}: {first.get('msg')} (got {first.get('input')!r:.60})"


def find_limits_file(start: str | Path) -> Path | None:
    """The nearest ``cptopt.toml``, or ``pyproject.toml`` with ``[tool.cptopt.check]``.

    Searched from ``start`` (a folder) up to the file-system root; None when there is none.
    """
    folder = Path(start).resolve()
    for directory in (folder, *folder.parents):
        candidate = directory / "cptopt.toml"
        if candidate.is_file():
            return candidate
        candidate = directory / "pyproject.toml"
        if candidate.is_file() and _check_table(candidate, _read_toml(candidate)) is not None:
            return candidate
    return None


def resolve_limits(
    overrides: Mapping[str, Any] | None = None,
    file_limits: Limits | None = None,
    source: str = "limits",
) -> Limits:
    """Limits from a file, with ``overrides`` (None values ignored) taking precedence."""
    base = (file_limits or Limits()).model_dump(exclude_unset=True)
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    try:
        return Limits.model_validate({**base, **given})
    except ValidationError as exc:
        raise InputError(_limits_error(source, exc, ())) from None


# --------------------------------------------------------------------------------- verdicts


def judge(prediction: Prediction, limits: Limits) -> tuple[list[LimitCheck], list[str]]:
    """Apply ``limits`` to a prediction: the checks made, and out-of-range messages.

    With ``limits.conservative`` the upper end of the final-loss intervals is judged.
    """
    general, domain = prediction.general, prediction.domain
    general_final = general.final_upper if limits.conservative else general.final
    domain_final = domain.final_upper if limits.conservative else domain.final
    which = f"{100 * prediction.level:.0f} % upper bound of the " if limits.conservative else ""
    checks: list[LimitCheck] = []
    if limits.max_general_rise is not None:
        rise = general_final - general.initial
        ok = rise <= limits.max_general_rise
        checks.append(
            LimitCheck(
                name="max_general_rise",
                limit=limits.max_general_rise,
                value=rise,
                passed=ok,
                message=(
                    f"{which}general loss {'changes' if ok else 'rises'} {rise:+.4f} nats "
                    f"({general.initial:.4f} -> {general_final:.4f}), "
                    f"limit max_general_rise = {limits.max_general_rise:g}"
                ),
            )
        )
    if limits.max_final_domain_loss is not None:
        ok = domain_final <= limits.max_final_domain_loss
        checks.append(
            LimitCheck(
                name="max_final_domain_loss",
                limit=limits.max_final_domain_loss,
                value=domain_final,
                passed=ok,
                message=(
                    f"{which}final domain loss {domain_final:.4f}, "
                    f"limit max_final_domain_loss = {limits.max_final_domain_loss:g}"
                ),
            )
        )
    if limits.min_domain_gain is not None:
        gain = domain.initial - domain_final
        ok = gain >= limits.min_domain_gain
        checks.append(
            LimitCheck(
                name="min_domain_gain",
                limit=limits.min_domain_gain,
                value=gain,
                passed=ok,
                message=(
                    f"{which}domain loss falls {gain:.4f} nats "
                    f"({domain.initial:.4f} -> {domain_final:.4f}), "
                    f"limit min_domain_gain = {limits.min_domain_gain:g}"
                ),
            )
        )
    out_of_range = [f"outside the pilots: {flag}" for flag in prediction.flags]
    return checks, out_of_range


def check_config(
    config: TrainingConfig, law: FittedLaw, limits: Limits, path: str = "<config>"
) -> ConfigResult:
    """The verdict on one loaded config (errors in the prediction raise InputError)."""
    prediction = predict(
        law,
        config.schedule,
        config.replay_ratio,
        checkpoint=config.checkpoint,
        tokens_per_step=config.tokens_per_step,
        level=limits.level,
    )
    checks, out_of_range = judge(prediction, limits)
    findings = [item.message for item in checks if not item.passed]
    warnings: list[str] = []
    if limits.allow_extrapolation:
        warnings = out_of_range
    else:
        findings += out_of_range
    return ConfigResult(
        path=path,
        name=config.name,
        verdict="fail" if findings else "pass",
        limits=limits,
        checks=checks,
        findings=findings,
        warnings=warnings,
        prediction=prediction,
    )


class _LawCache:
    """Load each law file once per :func:`check` call; remember load errors too."""

    def __init__(self) -> None:
        self._laws: dict[str, FittedLaw | InputError] = {}

    def get(self, path: str) -> FittedLaw:
        key = str(Path(path).resolve())
        if key not in self._laws:
            try:
                self._laws[key] = load_law(path)
            except InputError as exc:
                self._laws[key] = exc
        found = self._laws[key]
        if isinstance(found, InputError):
            raise found
        return found


def check(
    configs: str | Path | Iterable[str | Path],
    law: FittedLaw | str | Path | None = None,
    *,
    limits_file: str | Path | None = None,
    isolated: bool = False,
    **limits: Any,
) -> CheckReport:
    """Check training configs (YAML paths) against limits; never raises for a bad config.

    Parameters
    ----------
    configs : one path or several.
    law : a fitted law or a law file for every config (default: see the module docstring).
    limits_file : a ``cptopt.toml``/``pyproject.toml`` to read limits from, instead of
        searching from each config's folder upwards.
    isolated : ignore limits files altogether.
    limits : ``max_general_rise``, ``max_final_domain_loss``, ``min_domain_gain``,
        ``allow_extrapolation``, ``conservative``, ``level``; they override the file's.

    A config that cannot be read or predicted gets verdict ``error`` with a one-line message
    naming the file and key. Bad arguments (an unknown limit, a missing ``law`` given here,
    a broken limits file) raise :class:`InputError`.
    """
    paths = [configs] if isinstance(configs, (str, Path)) else list(configs)
    if not paths:
        raise InputError("no configs given")
    unknown = sorted(set(limits) - set(Limits.model_fields))
    if unknown:
        raise InputError(
            f"unknown limit '{unknown[0]}' (allowed: {', '.join(Limits.model_fields)})"
        )
    fixed_law: FittedLaw | None = None
    fixed_label: str | None = None
    if isinstance(law, FittedLaw):
        fixed_law = law
    elif law is not None:
        fixed_law, fixed_label = load_law(law), str(law)
    fixed_file: Limits | None = None
    fixed_source: str | None = None
    if limits_file is not None and not isolated:
        fixed_file, fixed_source = load_limits_file(limits_file), str(limits_file)
    resolve_limits(limits, fixed_file, "arguments")  # bad overrides fail before any config
    laws = _LawCache()
    file_cache: dict[Path, tuple[Limits | None, str | None]] = {}
    results = []
    for raw in paths:
        path = str(raw)
        file_limits, source = fixed_file, fixed_source
        if limits_file is None and not isolated:
            folder = Path(path).parent.resolve()
            if folder not in file_cache:
                found = find_limits_file(folder)
                file_cache[folder] = (
                    (load_limits_file(found), str(found)) if found else (None, None)
                )
            file_limits, source = file_cache[folder]
        effective = resolve_limits(limits, file_limits, source or "arguments")
        result = _check_one(path, fixed_law, effective, source, laws)
        if fixed_label is not None:
            result = result.model_copy(update={"law": fixed_label})
        results.append(result)
    return _report(results)


def _check_one(
    path: str, fixed_law: FittedLaw | None, limits: Limits, source: str | None, laws: _LawCache
) -> ConfigResult:
    law_path: str | None = None
    try:
        config = load_config(path)
        if fixed_law is not None:
            law = fixed_law
        else:
            if config.law is not None:
                law_path, where = config.law, f"{path}: law: "
            elif limits.law is not None:
                law_path, where = limits.law, f"{source}: law: "
            else:
                law_path, where = DEFAULT_LAW_PATH, f"{path}: "
            try:
                law = laws.get(law_path)
            except InputError as exc:
                raise InputError(f"{where}{exc}") from None
        result = check_config(config, law, limits, path)
    except CptoptError as exc:
        message = " ".join(str(exc).split())
        if not message.startswith(path):
            message = f"{path}: {message}"
        return ConfigResult(
            path=path, verdict="error", law=law_path, limits_file=source, error=message
        )
    return result.model_copy(update={"law": law_path, "limits_file": source})


def _report(results: list[ConfigResult]) -> CheckReport:
    counts = {verdict: sum(r.verdict == verdict for r in results) for verdict in get_args(Verdict)}
    status: Verdict = "error" if counts["error"] else "fail" if counts["fail"] else "pass"
    return CheckReport(
        status=status,
        summary=CheckSummary(
            configs=len(results),
            passed=counts["pass"],
            failed=counts["fail"],
            errors=counts["error"],
        ),
        results=results,
    )


# ------------------------------------------------------------------------------- rendering


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
    except (OSError, yaml.YAMLError):
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
