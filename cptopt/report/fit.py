"""Render a fitted law as rich renderables (the CLI prints them; nothing here prints).

Values with uncertainties follow the PDG rounding rule: the error keeps two significant
digits when its three leading digits are 100-354, otherwise one, and the value is shown to
the same decimal place.
"""

from __future__ import annotations

import math

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cptopt.law.fitted import FittedLaw, SetFit
from cptopt.report.names import short_names


def pdg_format(value: float, error: float | None) -> str:
    """``value +/- error`` rounded by the PDG rule (plain ``%.4g`` without an error)."""
    if error is None or not math.isfinite(error) or error <= 0:
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


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _parameter_table(fit: SetFit) -> Table:
    table = Table(title=f"{fit.validation_set} loss: parameters", title_justify="left")
    table.add_column("name")
    table.add_column("value ± stderr", justify="right")
    table.add_column("rel. err", justify="right")
    table.add_column("bounds", justify="right")
    table.add_column("flags")
    for parameter in fit.parameters:
        flags = []
        if parameter.at_bound:
            flags.append("[yellow]at bound[/]")
        if parameter.name in fit.weakly_identified:
            flags.append("[yellow]weakly identified[/]")
        rel = parameter.relative_stderr
        table.add_row(
            parameter.name,
            pdg_format(parameter.value, parameter.stderr),
            "-" if rel is None else "> 999 %" if rel > 9.99 else f"{100 * rel:.0f} %",
            f"[{parameter.min:g}, {parameter.max:g}]",
            ", ".join(flags),
        )
    for name, value in fit.derived.items():
        table.add_row(name, f"{value:.4g}", "", "derived", "")
    return table


def _run_table(law: FittedLaw) -> Table:
    names, legend = short_names([run.name for run in law.general.runs])
    table = Table(
        title="fit error per pilot (|pred/obs - 1|; CV = law refitted without that pilot)",
        title_justify="left",
        caption="\n".join(legend) or None,
        caption_justify="left",
    )
    table.add_column("pilot", no_wrap=True, min_width=max(map(len, names), default=5))
    for validation_set in ("general", "domain"):
        table.add_column(f"{validation_set} mean", justify="right")
        table.add_column(f"{validation_set} final", justify="right")
        table.add_column(f"{validation_set} CV mean", justify="right")
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
        table.add_row(*cells)
    return table


#: The PT-phase point policies in words.
_PT_POINTS = {"all": "all logged", "checkpoint": "checkpoint only", "none": "none"}


def _summary_table(law: FittedLaw) -> Table:
    table = Table(title="fit quality", title_justify="left")
    table.add_column("")
    table.add_column("general", justify="right")
    table.add_column("domain", justify="right")
    rows = [
        ("replay form", lambda f: f.form),
        ("shift driven by", lambda f: "sum of LR^q" if f.lr_power else "LR area"),
        ("PT-phase points used", lambda f: _PT_POINTS[f.pt_points]),
        ("points (PT-phase)", lambda f: f"{f.n_points} ({f.n_pretrain_points})"),
        ("R²", lambda f: f"{f.r2:.4f}"),
        ("mean |rel. error|", lambda f: _percent(f.mean_abs_error)),
        ("leave-one-pilot-out CV", lambda f: _percent(f.cv_error)),
        ("eval noise (robust SD)", lambda f: _percent(f.noise)),
        ("2x length extrapolation RMS", lambda f: _percent(f.length_rms)),
        ("best starts agree", lambda f: "yes" if f.starts_agree else "[yellow]no[/]"),
    ]
    for label, getter in rows:
        table.add_row(label, getter(law.general), getter(law.domain))
    return table


def fit_report(law: FittedLaw) -> RenderableType:
    """The fit-quality report: settings, summary, parameters, per-pilot errors, warnings."""
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
        _summary_table(law),
        _parameter_table(law.general),
        _parameter_table(law.domain),
        _run_table(law),
    ]
    if law.info:
        parts.append(Text("\n".join(f"note: {line}" for line in law.info)))
    warnings = fit_warnings(law)
    if warnings:
        parts.append(Text("\n".join(f"warning: {w}" for w in warnings), style="yellow"))
    return Group(*parts)


def selection_table(law: FittedLaw) -> Table:
    """The variants ``--law auto`` compared, with the CV errors each stage used."""
    table = Table(
        title="law variants (chosen by leave-one-pilot-out CV: the memory on the shared-replay "
        "folds, then each set's replay form and LR power on its own CV; ✓ = chosen)",
        title_justify="left",
    )
    columns = ("variant", "memory", "params", "CV general", "CV domain", "CV mean")
    for column in (*columns, "CV shared-replay"):
        table.add_column(column, justify="right" if column != "variant" else "left")
    for row in law.selection:
        marks = [name for name in ("general", "domain") if getattr(row, f"chosen_{name}")]
        mark = " ✓" if row.chosen or len(marks) == 2 else f" ✓ {marks[0]}" if marks else ""
        memory = f"λ {row.lam:g}" if row.annealing != "mpl" else "mpl tied" if row.tied else "mpl"
        power = " + LR^q" if row.lr_power else ""
        table.add_row(
            f"{row.form}{power}{mark}",
            memory,
            str(row.n_params),
            _percent(row.cv_general),
            _percent(row.cv_domain),
            _percent(row.cv_mean),
            _percent(row.cv_memory),
        )
    return table


def fit_warnings(law: FittedLaw) -> list[str]:
    """Plain-language warnings about the fit (bounds, identifiability, notes)."""
    warnings = list(law.notes)
    for fit in (law.general, law.domain):
        if fit.at_bound:
            warnings.append(
                f"{fit.validation_set}: parameters at a bound: {', '.join(fit.at_bound)} "
                "(the data pins them to a limit; their error bars are not meaningful)"
            )
        weak = [name for name in fit.weakly_identified if name not in fit.at_bound]
        if weak:
            warnings.append(
                f"{fit.validation_set}: weakly identified (stderr > |value|): {', '.join(weak)}"
            )
        if not fit.starts_agree:
            warnings.append(f"{fit.validation_set}: the best starts disagree; try more --starts")
        if fit.cv_error is None:
            warnings.append(
                f"{fit.validation_set}: fewer than 3 pilots: no cross-validation, no intervals "
                "from the fit's uncertainty"
            )
    return warnings
