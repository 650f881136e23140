"""Render a fitted law as rich renderables (the CLI prints them; nothing here prints).

Values with uncertainties follow the PDG rounding rule: the error keeps two significant
digits when its three leading digits are 100-354, otherwise one, and the value is shown to
the same decimal place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import singledispatch

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cptopt.law.averaged import is_averaged
from cptopt.law.fitted import CptLaw, PretrainRunsLaw, SelectionRow, SetFit
from cptopt.report.layout import ByWidth, add_columns, plain_table, two_line
from cptopt.report.names import short_names


def pdg_format(value: float, error: float | None) -> str:
    """``value +/- error`` rounded by the PDG rule (plain ``%.4g`` without an error)."""
    # an error at rounding level (an average's weights, the same in every replica) is none
    if error is None or not math.isfinite(error) or error <= 1e-12 * abs(value):
        return f"{value:.4g}"
    exponent = math.floor(math.log10(error))
    leading = int(error / 10 ** (exponent - 2))
    digits = 2 if leading <= 354 else 1
    decimals = -(exponent - digits + 1)
    if leading >= 950:
        decimals -= 1
    if decimals > 6 or max(abs(value), error) >= 1e6:
        return f"{value:.3g} ± {error:.2g}"
    if decimals < 0:  # round to tens, hundreds, ...
        return f"{round(value, decimals):.0f} ± {round(error, decimals):.0f}"
    return f"{value:.{decimals}f} ± {error:.{decimals}f}"


def _percent(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f} %"


def _parameter_table(fit: SetFit, name: str | None = None) -> RenderableType:
    title = f"{name or fit.validation_set + ' loss'}: parameters"
    columns = [
        ("name", "left"),
        ("value ± stderr", "right"),
        ("rel. err", "right"),
        ("bounds", "right"),
        ("flags", "left"),
    ]
    wide = add_columns(plain_table(title), columns)
    narrow = add_columns(plain_table(title), columns)
    narrow.columns[0].no_wrap = True  # an average's names (weight.relax^q) must stay whole
    for parameter in fit.parameters:
        flags = []
        if parameter.at_bound:
            flags.append("at bound")
        if parameter.name in fit.weakly_identified:
            flags.append("weakly identified")
        rel = parameter.relative_stderr
        cells = [
            pdg_format(parameter.value, parameter.stderr),
            "-" if rel is None else "> 999 %" if rel > 9.99 else f"{100 * rel:.0f} %",
            f"[{parameter.min:g}, {parameter.max:g}]",
        ]
        wide.add_row(parameter.name, *cells, _flags(flags))
        short = [flag.replace("weakly identified", "weak") for flag in flags]
        narrow.add_row(parameter.name, *cells, _flags(short))
    for name, value in fit.derived.items():
        wide.add_row(name, f"{value:.4g}", "", "derived", "")
        narrow.add_row(name, f"{value:.4g}", "", "derived", "")
    weak = "weak = weakly identified (stderr > |value|)" if fit.weakly_identified else None
    return ByWidth(wide, (narrow, *([Text(weak)] if weak else [])))


def _flags(flags: list[str]) -> str:
    return ", ".join(f"[yellow]{flag}[/]" for flag in flags)


def _run_table(law: CptLaw) -> RenderableType:
    names, legend = short_names([run.name for run in law.general.runs])
    title = "fit error per pilot (|pred/obs - 1|; CV = law refitted without that pilot)"
    caption = "\n".join(legend) or None
    numbers = [
        (f"{validation_set}{part}", "right")
        for validation_set in ("general", "domain")
        for part in (" mean", " final", " CV mean")
    ]
    wide = add_columns(plain_table(title, caption), [("pilot", "left"), *numbers])
    narrow = add_columns(plain_table(title, caption), [("pilot", "left"), *two_line(numbers)])
    domain_runs = {run.name: run for run in law.domain.runs}
    for run, short in zip(law.general.runs, names, strict=True):
        other = domain_runs.get(run.name)
        cells = [short]
        for item in (run, other):
            if item is None:
                cells += ["-", "-", "-"]
            else:
                cells += [
                    _percent(item.mean_abs_error),
                    _percent(item.final_error),
                    _percent(item.cv_mean_abs_error),
                ]
        wide.add_row(*cells)
        narrow.add_row(*cells)
    return ByWidth(wide, narrow)


#: The PT-phase point policies in words.
_PT_POINTS = {"all": "all logged", "checkpoint": "checkpoint only", "none": "none"}


#: Rows of the fit-quality table every law has: label, value of a set's fit.
_QUALITY_ROWS: list[tuple[str, Callable[[SetFit], str]]] = [
    ("R²", lambda f: f"{f.r2:.4f}"),
    ("mean |rel. error|", lambda f: _percent(f.mean_abs_error)),
    ("leave-one-pilot-out CV", lambda f: _percent(f.cv_error)),
    ("eval noise (robust SD)", lambda f: _percent(f.noise)),
    ("2x length extrapolation RMS", lambda f: _percent(f.length_rms)),
    ("best starts agree", lambda f: "yes" if f.starts_agree else "[yellow]no[/]"),
]


def _drive(fit: SetFit) -> str:
    if is_averaged(fit.form):
        return "per member (^q: sum of LR^q)"
    return "sum of LR^q" if fit.lr_power else "LR area"


#: Rows of the fit-quality table of a CPT law (before :data:`_QUALITY_ROWS`).
_CPT_ROWS: list[tuple[str, Callable[[SetFit], str]]] = [
    ("replay form", lambda f: f.form),
    ("shift driven by", _drive),
    ("PT-phase points used", lambda f: _PT_POINTS[f.pt_points]),
    ("points (PT-phase)", lambda f: f"{f.n_points} ({f.n_pretrain_points})"),
]
#: ... and of a law fitted to pre-training pilots.
_PRETRAIN_ROWS: list[tuple[str, Callable[[SetFit], str]]] = [
    ("points (after the warmup)", lambda f: f"{f.n_points}"),
]


def _summary_table(
    law: CptLaw | PretrainRunsLaw, rows: list[tuple[str, Callable[[SetFit], str]]]
) -> Table:
    """The fit-quality table: a column per validation set, ``rows`` then the common ones."""
    table = add_columns(
        plain_table("fit quality"),
        [("", "left"), *((name, "right") for name in law.validation_sets)],
    )
    for label, getter in [*rows, *_QUALITY_ROWS]:
        table.add_row(label, *(getter(fit) for fit in law.set_fits))
    return table


@singledispatch
def fit_report(law: CptLaw | PretrainRunsLaw) -> RenderableType:
    """The fit-quality report: settings, summary, parameters, per-pilot errors, warnings."""
    raise TypeError(f"not a fitted law: {type(law).__name__}")


@fit_report.register
def _cpt_fit_report(law: CptLaw) -> RenderableType:
    corpus = (
        f", domain corpus {law.domain_tokens:.4g} tokens (repeats discounted)"
        if law.domain_tokens
        else ""
    )
    header = Text(
        f"law '{law.forms_description}', {law.annealing_description}, replay terms: "
        f"{'yes' if law.replay_terms else 'no (replay fixed)'}, "
        f"PT history: {'known' if law.pretrain.known else 'unknown (black-box)'}, "
        f"domain PT power law: {law.domain_forward}{corpus}"
    )
    parts: list[RenderableType] = [header]
    if law.selection:
        parts.append(selection_table(law))
    parts += [
        _summary_table(law, _CPT_ROWS),
        *map(_parameter_table, law.set_fits),
        _run_table(law),
    ]
    if law.info:
        parts.append(Text("\n".join(f"note: {line}" for line in law.info)))
    return Group(*parts, *_warning_text(law))


def _warning_text(law: CptLaw | PretrainRunsLaw) -> list[Text]:
    warnings = fit_warnings(law)
    if not warnings:
        return []
    return [Text("\n".join(f"warning: {w}" for w in warnings), style="yellow")]


@fit_report.register
def _pretrain_fit_report(law: PretrainRunsLaw) -> RenderableType:
    """The fit report of a law fitted to pre-training pilots (one validation loss)."""
    header = Text(
        f"pre-training law L0 + A*S1^-alpha - C1*annealing, {law.annealing_description}, "
        f"fitted to {len(law.loss.runs)} pre-training runs (one validation loss; no CPT "
        "phase, no domain set)"
    )
    parts: list[RenderableType] = [header]
    if law.selection:
        parts.append(pretrain_selection_table(law))
    parts += [
        _summary_table(law, _PRETRAIN_ROWS),
        _parameter_table(law.loss, "loss"),
        _pretrain_runs(law),
    ]
    if law.anneal is not None:
        gap = (
            f"; intervals widen by {100 * law.depth_sd:.2f} % (log SD) per unit of anneal-depth "
            "gap to the pilots (from their left-out runs)"
            if law.depth_sd
            else ""
        )
        parts.append(
            Text(f"the pilots' lowest LR after their warmup: {law.anneal.lowest_lr:.3g}{gap}")
        )
    return Group(*parts, *_warning_text(law))


def _pretrain_runs(law: PretrainRunsLaw) -> Table:
    names, legend = short_names([run.name for run in law.loss.runs])
    title = (
        "fit error per run after its warmup (|pred/obs - 1|; CV = law refitted without that run)"
    )
    table = add_columns(
        plain_table(title, "\n".join(legend) or None),
        [
            ("run", "left"),
            *((name, "right") for name in ("points", "mean", "worst", "final", "CV mean")),
        ],
    )
    for run, short in zip(law.loss.runs, names, strict=True):
        errors = (run.mean_abs_error, run.max_abs_error, run.final_error, run.cv_mean_abs_error)
        table.add_row(short, str(run.n_points), *map(_percent, errors))
    return table


def pretrain_selection_table(law: PretrainRunsLaw) -> RenderableType:
    """The annealing memories a fit to pre-training pilots compared, with their CV: a row
    per memory (wide), or a column per memory and a row per run (narrow: any number of
    runs fits)."""
    names, legend = short_names([run.name for run in law.loss.runs])
    title = (
        "annealing memories (chosen by leave-one-run-out CV: mean |rel. error| of each "
        "left-out run; ✓ = chosen)"
    )
    columns = [("memory", "left"), ("params", "right"), ("CV mean", "right")]
    wide = add_columns(plain_table(title), [*columns, *((f"CV {name}", "right") for name in names)])
    labels = [f"{_memory_label(row)}{' ✓' if row.chosen else ''}" for row in law.selection]
    narrow = add_columns(
        plain_table(title, "\n".join(legend) or None),
        [("memory", "left"), *((label, "right") for label in labels)],
    )
    per_run = [
        [row.cv_per_pilot.get(str(index)) for index in range(len(names))] for row in law.selection
    ]
    for label, row, values in zip(labels, law.selection, per_run, strict=True):
        # pre-training CVs are ~0.1 %: two digits would tie them
        wide.add_row(label, str(row.n_params), *(_percent(v, 3) for v in [row.cv_mean, *values]))
    narrow.add_row("params", *(str(row.n_params) for row in law.selection))
    narrow.add_row("CV mean", *(_percent(row.cv_mean, 3) for row in law.selection))
    for index, name in enumerate(names):  # the CV of each left-out run, by its name
        narrow.add_row(name, *(_percent(values[index], 3) for values in per_run))
    return ByWidth(wide, narrow)


def _memory_label(row: SelectionRow) -> str:
    """A selection row's annealing memory, short."""
    if row.annealing == "mpl1":
        return "mpl ζ=1"
    if row.annealing == "mpl":
        return "mpl tied" if row.tied else "mpl"
    return f"λ {row.lam:g}"


def selection_table(law: CptLaw) -> RenderableType:
    """The variants a fit with ``form="auto"`` compared, with the CV errors each
    comparison of the selection used."""
    title = (
        "law variants (leave-one-pilot-out CV: the memory on the shared-replay folds; "
        "with the auto form each set is the average of its members, a/b, weighted by their "
        "CV; ✓ = chosen)"
    )
    labels = [("variant", "left"), ("memory", "left"), ("params", "right")]
    numbers = [
        ("CV general", "right"),
        ("CV domain", "right"),
        ("CV mean", "right"),
        ("CV shared-replay", "right"),
    ]
    wide = add_columns(plain_table(title), [*labels, *numbers])
    narrow = add_columns(
        plain_table(title),
        [*labels, *two_line(numbers)],
    )
    for row in law.selection:
        marks = [name for name in ("general", "domain") if getattr(row, f"chosen_{name}")]
        mark = " ✓" if row.chosen or len(marks) == 2 else f" ✓ {marks[0]}" if marks else ""
        power = " + LR^q" if row.lr_power and not is_averaged(row.form) else ""
        cells = [
            f"{row.form}{power}{mark}",
            _memory_label(row),
            str(row.n_params),
            _percent(row.cv_general),
            _percent(row.cv_domain),
            _percent(row.cv_mean),
            _percent(row.cv_memory),
        ]
        wide.add_row(*cells)
        narrow.add_row(*cells)
    return ByWidth(wide, narrow)


def fit_warnings(law: CptLaw | PretrainRunsLaw) -> list[str]:
    """Plain-language warnings about the fit (bounds, identifiability, notes)."""
    warnings = list(law.notes)
    for fit in law.set_fits:
        name = fit.validation_set
        if fit.at_bound:
            warnings.append(
                f"{name}: parameters at a bound: {', '.join(fit.at_bound)} "
                "(the data pins them to a limit; their error bars are not meaningful)"
            )
        weak = [param for param in fit.weakly_identified if param not in fit.at_bound]
        if weak:
            warnings.append(f"{name}: weakly identified (stderr > |value|): {', '.join(weak)}")
        if not fit.starts_agree:
            warnings.append(f"{name}: the best starts disagree; fit with more starts")
        if fit.cv_error is None:
            warnings.append(
                f"{name}: fewer than 3 pilots: no cross-validation, no intervals "
                "from the fit's uncertainty"
            )
    return warnings
