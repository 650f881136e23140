"""Judge training configs against a team's limits: the library behind ``cptopt check``.

A config passes when the law's prediction for it keeps every limit that is set and, unless
``allow_extrapolation`` is on, stays inside what the pilots covered. Nothing here prints or
exits: :func:`check` returns a :class:`CheckReport`; :mod:`cptopt.report.check` renders it
as text or GitHub annotations.

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

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from cptopt._io import read_text
from cptopt._validation import validate
from cptopt._version import __version__
from cptopt.exceptions import CptoptError, InputError, NotATrainingConfig, param
from cptopt.law.fitted import DEFAULT_LAW_PATH, CptLaw, LawRecord, cpt_law, load_cpt_law
from cptopt.plan import TrainingConfig, load_config
from cptopt.prediction import Prediction, predict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: Version of the JSON layout of :class:`CheckReport` (2: files that are not training
#: configs are ``skipped``, with a ``note``).
REPORT_SCHEMA_VERSION = 2
#: Files searched for limits, in order of precedence within one folder.
LIMITS_FILES = ("cptopt.toml", "pyproject.toml")

Verdict = Literal["pass", "fail", "error", "skipped"]


class Limits(BaseModel):
    """What a config must satisfy (see the module docstring). ``None`` = not checked."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

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
    note: str | None = Field(
        default=None, description="why a file was skipped: what it is and what takes it"
    )
    prediction: Prediction | None = None
    #: The error or the note as raised, its fields marked (the CLI names them its way).
    _problem: CptoptError | None = PrivateAttr(default=None)

    @property
    def problem(self) -> CptoptError | None:
        """The exception behind ``error`` or ``note`` (None for a judged config)."""
        return self._problem


class CheckSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    configs: int = Field(description="training configs judged or in error (not skipped)")
    passed: int
    failed: int
    errors: int
    skipped: int = Field(default=0, description="files that are not training configs")


class CheckReport(BaseModel):
    """The result of :func:`check`: one :class:`ConfigResult` per config, in input order."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = REPORT_SCHEMA_VERSION
    cptopt_version: str = __version__
    status: Literal["pass", "fail", "error"] = Field(
        description="error if any config errored, else fail if any failed"
    )
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
        return tomllib.loads(read_text(path, "limits file"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: invalid TOML ({exc})") from None


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
    limits = validate(Limits, table, str(path), prefix)
    if limits.law is not None:
        limits = limits.model_copy(update={"law": str(path.parent / limits.law)})
    return limits


def find_limits_file(start: str | Path) -> Path | None:
    """The nearest ``cptopt.toml``, or ``pyproject.toml`` with ``[tool.cptopt.check]``.

    Searched from ``start`` (a folder) up to the file-system root; None when there is none.
    """
    folder = Path(start).resolve()
    for directory in (folder, *folder.parents):
        for name in LIMITS_FILES:
            candidate = directory / name
            # a pyproject.toml counts only with a [tool.cptopt.check] table
            if candidate.is_file() and (
                name == "cptopt.toml" or _check_table(candidate, _read_toml(candidate)) is not None
            ):
                return candidate
    return None


def resolve_limits(
    overrides: Mapping[str, Any] | None = None,
    file_limits: Limits | None = None,
    source: str = "limits",
) -> Limits:
    """Limits from a file, with ``overrides`` (None values ignored) taking precedence.

    A bad override is named as the caller named it (a keyword; the CLI shows its option),
    not blamed on ``source``: the file's own values were checked when it was read."""
    base = (file_limits or Limits()).model_dump(exclude_unset=True)
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    validate(Limits, given, "", aliases={key: param(key) for key in given})
    return validate(Limits, {**base, **given}, source)


# --------------------------------------------------------------------------------- verdicts


def _limit_check(name: str, limits: Limits, value: float, passed: bool, message: str) -> LimitCheck:
    limit = float(getattr(limits, name))
    text = f"{message}, limit {name} = {limit:g}"
    return LimitCheck(name=name, limit=limit, value=value, passed=passed, message=text)


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
        message = (
            f"{which}general loss {'changes' if ok else 'rises'} {rise:+.4f} nats "
            f"({general.initial:.4f} -> {general_final:.4f})"
        )
        checks.append(_limit_check("max_general_rise", limits, rise, ok, message))
    if limits.max_final_domain_loss is not None:
        ok = domain_final <= limits.max_final_domain_loss
        message = f"{which}final domain loss {domain_final:.4f}"
        checks.append(_limit_check("max_final_domain_loss", limits, domain_final, ok, message))
    if limits.min_domain_gain is not None:
        gain = domain.initial - domain_final
        ok = gain >= limits.min_domain_gain
        message = (
            f"{which}domain loss falls {gain:.4f} nats ({domain.initial:.4f} -> {domain_final:.4f})"
        )
        checks.append(_limit_check("min_domain_gain", limits, gain, ok, message))
    out_of_range = [f"outside the pilots: {flag}" for flag in prediction.flags]
    return checks, out_of_range


def check_config(
    config: TrainingConfig, law: CptLaw, limits: Limits, path: str = "<config>"
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
        self._laws: dict[str, CptLaw | InputError] = {}

    def get(self, path: str) -> CptLaw:
        key = str(Path(path).resolve())
        if key not in self._laws:
            try:
                self._laws[key] = load_cpt_law(path, "check()")
            except InputError as exc:
                self._laws[key] = exc
        found = self._laws[key]
        if isinstance(found, InputError):
            raise found
        return found


def check(
    configs: str | Path | Iterable[str | Path],
    law: CptLaw | str | Path | None = None,
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
    fixed_law: CptLaw | None = None
    fixed_label: str | None = None
    if isinstance(law, LawRecord):
        fixed_law = cpt_law(law, "check()")
    elif law is not None:
        fixed_law, fixed_label = load_cpt_law(law, "check()"), str(law)
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
        result = _check_one(path, fixed_law, effective, source, laws, skip_others=len(paths) > 1)
        if fixed_label is not None and result.verdict != "skipped":
            result = result.model_copy(update={"law": fixed_label})
        results.append(result)
    if all(result.verdict == "skipped" for result in results):
        kinds = "; ".join(
            f"{result.path}: {getattr(result.problem, 'kind', 'not a training config')}"
            for result in results
        )
        raise InputError(f"none of the {len(results)} files is a CPT training config ({kinds})")
    return _report(results)


def _check_one(
    path: str,
    fixed_law: CptLaw | None,
    limits: Limits,
    source: str | None,
    laws: _LawCache,
    skip_others: bool = False,
) -> ConfigResult:
    """The verdict on the config at ``path``; with ``skip_others``, a file that is not a
    training config is skipped (with a note saying what it is) instead of an error."""
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
                raise InputError(f"{where}{exc.template}") from None
        result = check_config(config, law, limits, path)
    except CptoptError as exc:
        message = " ".join(str(exc).split())
        if not message.startswith(path):
            message = f"{path}: {message}"
            exc = InputError(f"{path}: {exc.template}") if isinstance(exc, InputError) else exc
        if skip_others and isinstance(exc, NotATrainingConfig):
            failed = ConfigResult(path=path, verdict="skipped", note=message)
        else:
            failed = ConfigResult(
                path=path, verdict="error", law=law_path, limits_file=source, error=message
            )
        failed._problem = exc
        return failed
    return result.model_copy(update={"law": law_path, "limits_file": source})


def _report(results: list[ConfigResult]) -> CheckReport:
    counts = {verdict: sum(r.verdict == verdict for r in results) for verdict in get_args(Verdict)}
    status: Literal["pass", "fail", "error"] = (
        "error" if counts["error"] else "fail" if counts["fail"] else "pass"
    )
    return CheckReport(
        status=status,
        summary=CheckSummary(
            configs=len(results) - counts["skipped"],
            passed=counts["pass"],
            failed=counts["fail"],
            errors=counts["error"],
            skipped=counts["skipped"],
        ),
        results=results,
    )
