"""Render search results (recommendation, candidate ranking) as rich renderables.

:func:`recommendation_report` renders either kind of recommendation: CPT settings
(:class:`Recommendation`) or a pre-training schedule (:class:`PretrainRecommendation`).
Nothing here prints: the CLI does.
"""

from __future__ import annotations

from functools import singledispatch

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cptopt.report.layout import ByWidth, add_columns, legend, plain_table
from cptopt.search.models import Assessment, CandidateRanking, Recommendation
from cptopt.search.pretrain_models import (
    PretrainAssessment,
    PretrainRecommendation,
    PretrainSetting,
)


def _lr(value: float) -> str:
    return f"{value:.3g}"


def _recovery(item: Assessment) -> str:
    if item.general_turning_step == 0:
        return "never rises"
    if item.general_turning_step is not None:
        return f"at step {item.general_turning_step}"
    return f"no ({item.general_rise:+.3f})"


def _compact(item: Assessment) -> str:
    """``cosine 2% lr 6e-04 r 0.25 T 1000`` (+ decay for WSD, + checkpoint when searched)."""
    s = item.setting
    if s is None:
        return item.schedule
    text = s.family
    if s.decay_fraction is not None:
        text += f" d{s.decay_fraction:.0%}"
    return f"{text} lr {s.peak_lr:.2g} r {s.replay_ratio:.2f} T {s.steps}"


def _prediction_columns(level: float, p_best: bool = False) -> list[tuple[str, str]]:
    """The number columns of a table of settings (P(best) after the objective's interval)."""
    objective = [("objective", "right"), (f"{100 * level:.0f} % (fit)", "right")]
    losses = [("general", "right"), ("domain", "right"), ("gen. recovers", "right")]
    return objective + ([("P(best)", "right")] if p_best else []) + losses


def _prediction_cells(item: Assessment, p_best: float | None = None) -> list[str]:
    """The cells of :func:`_prediction_columns` for one setting."""
    objective = [
        f"{item.objective:.4f}",
        f"{item.objective_lower:.3f}..{item.objective_upper:.3f}",
    ]
    losses = [f"{item.general:.4f}", f"{item.domain:.4f}", _recovery(item)]
    return objective + ([f"{p_best:.2f}"] if p_best is not None else []) + losses


def _assessment_table(
    title: str, items: list[Assessment], level: float, checkpoints: bool = False
) -> RenderableType:
    """Settings with their predictions: a row each, the setting in its own column (wide) or
    listed under the table by its label (narrow)."""
    numbers = _prediction_columns(level)
    wide = add_columns(plain_table(title), [("", "left"), ("setting", "left"), *numbers])
    narrow = add_columns(plain_table(title), [("", "left"), *numbers])
    notes: list[str] = []
    settings: list[tuple[str, ...]] = []
    for item in items:
        setting = _compact(item)
        if checkpoints and item.setting is not None:
            setting += f" @{item.setting.checkpoint}"
        mark = ""
        if item.violations:
            mark = " [red]✗[/]"
            notes += [f"{item.label}: [red]{v}[/]" for v in item.violations]
        if item.flags:
            mark += " [yellow]![/]"
            notes += [f"{item.label}: [yellow]{f}[/]" for f in item.flags]
        cells = _prediction_cells(item)
        wide.add_row(item.label + mark, setting, *cells)
        narrow.add_row(item.label + mark, *cells)
        settings.append((f"{item.label}:", setting))
    return Group(
        ByWidth(wide, (narrow, legend(settings, "setting"))),
        *([Text.from_markup("\n".join(notes))] if notes else []),
    )


def _main_table(result: Recommendation) -> Table:
    rec = result.recommended
    setting = rec.setting
    assert setting is not None
    w_g, w_d = result.weights
    title = f"recommended CPT settings: minimise {w_g:.3g}*L_general + {w_d:.3g}*L_domain"
    main = plain_table(title)
    main.add_column("")
    main.add_column("value", justify="right")
    main.add_column(f"{100 * result.level:.0f} % interval", justify="right")
    main.add_column("at step 0", justify="right")
    rows: list[tuple[str, str, str, str]] = [("schedule", setting.family, "", "")]
    rows.append(("warmup", f"first {setting.warmup_fraction:.0%}", "", ""))
    if setting.decay_fraction is not None:
        rows.append(("decay", f"last {setting.decay_fraction:.0%}", "", ""))
    rows += [
        ("start from", setting.checkpoint, "", ""),
        ("peak LR", _lr(setting.peak_lr), "", ""),
        ("replay ratio", f"{setting.replay_ratio:.3f}", "", ""),
        ("CPT steps", str(setting.steps), "", ""),
    ]
    if rec.tokens is not None:
        rows.append(("tokens", f"{rec.tokens:.4g}", "", ""))
    if rec.domain_epochs is not None:
        rows.append(("domain epochs", f"{rec.domain_epochs:.3g}", "", ""))
    for name in ("general", "domain"):
        rows.append(
            (
                f"{name} loss",
                f"{getattr(rec, name):.4f}",
                f"{getattr(rec, name + '_lower'):.4f}..{getattr(rec, name + '_upper'):.4f}",
                f"{getattr(rec, name + '_initial'):.4f}",
            )
        )
    rows += [
        (
            "objective",
            f"{rec.objective:.4f}",
            f"{rec.objective_lower:.4f}..{rec.objective_upper:.4f}",
            "",
        ),
        ("general back at start", _recovery(rec), "", ""),
        ("inside the pilots' range", "yes" if rec.in_range else "[yellow]no[/]", "", ""),
    ]
    for row in rows:
        main.add_row(*row)
    return main


def _pareto_table(result: Recommendation, many: bool) -> Table:
    front = plain_table("general-vs-domain Pareto front (best setting for each weight)")
    for column in ("w_general", "setting", "general", "domain", ""):
        front.add_column(column, justify="left" if column == "setting" else "right")
    for point in result.pareto or []:
        s = point.setting
        text = s.family + (f" d{s.decay_fraction:.0%}" if s.decay_fraction else "")
        text += f" lr {s.peak_lr:.2g} r {s.replay_ratio:.2f} T {s.steps}"
        if many:
            text += f" @{s.checkpoint}"
        front.add_row(
            f"{point.w_general:.1f}",
            text,
            f"{point.general:.4f}",
            f"{point.domain:.4f}",
            "" if point.in_range else "[yellow]![/]",
        )
    return front


def _search_lines(result: Recommendation) -> list[str]:
    stats, space = result.search, result.space
    lines = [
        f"space: peak LR {space.peak_lr[0]:.3g}..{space.peak_lr[1]:.3g} (log), replay "
        f"{space.replay_ratio[0]:g}..{space.replay_ratio[1]:g}, steps {space.steps[0]}.."
        f"{space.steps[1]} (every {space.step_granularity}), families {', '.join(space.families)}, "
        f"checkpoints {', '.join(space.checkpoints)}",
        f"search: {stats.sampler}, {stats.trials_complete} trials in the study "
        f"({stats.trials_this_process} here, {stats.seed_trials_added} from the vectorised seed "
        f"batch), {stats.search_seconds:.2f} s"
        + (f", resumed study '{stats.study_name}'" if stats.resumed else "")
        + (f", storage {stats.storage}" if stats.storage else ""),
        f"dense cross-check: {stats.dense_points} grid points + local refinement, optimum "
        f"{stats.dense_objective:.6f}; gap of the recommendation {stats.dense_gap:+.2e} "
        f"(relative; study best {_gap(stats.study_gap)} before and "
        f"{_gap(stats.polished_gap)} after the local polish)",
    ]
    return lines + [f"note: {note}" for note in result.notes]


@singledispatch
def recommendation_report(result: Recommendation | PretrainRecommendation) -> RenderableType:
    """The recommended settings, alternatives, baselines, search statistics and notes."""
    raise TypeError(f"not a recommendation: {type(result).__name__}")


@recommendation_report.register
def _cpt_recommendation_report(result: Recommendation) -> RenderableType:
    rec = result.recommended
    parts: list[RenderableType] = [_main_table(result)]
    flag_lines = [
        "intervals: losses = fit uncertainty + eval noise; objective = fit uncertainty only"
    ]
    flag_lines += [f"[yellow]outside the pilots:[/] {f}" for f in rec.flags]
    flag_lines += [f"[red]constraint:[/] {v}" for v in rec.violations]
    parts.append(Text.from_markup("\n".join(flag_lines)))
    many = len(result.space.checkpoints) > 1
    if result.alternatives:
        parts.append(_assessment_table("top alternatives", result.alternatives, result.level, many))
    compare = [rec, *result.baselines]
    parts.append(_assessment_table("compared on the same objective", compare, result.level, many))
    parts.append(
        Text(
            "lr = peak LR, r = replay ratio, T = steps. pilot-like: the best of the pilots' "
            "peak LRs x replay ratios x families at the "
            "longest pilot's steps; thumb: replay 5 % / 10 %, the pilots' highest peak LR, "
            "steps = budget, the recommended shape"
        )
    )
    if result.pareto:
        parts.append(_pareto_table(result, many))
    parts.append(Text("\n".join(_search_lines(result))))
    return Group(*parts)


def _pretrain_main_table(result: PretrainRecommendation) -> Table:
    rec, setting = result.recommended, result.recommended.setting
    main = add_columns(
        plain_table("recommended pre-training schedule: minimise the final loss"),
        [("", "left"), ("value", "right"), (f"{100 * result.level:.0f} % interval", "right")],
    )
    shape = setting.family
    rows = []
    if setting.family == "wsd":
        shape = f"wsd, {setting.decay_shape} decay {setting.decay_fraction:.0%}"
        rows.append(("decay", f"steps {setting.decay_start}..{setting.steps}", ""))
    rows = [
        ("schedule", shape, ""),
        *rows,
        ("peak LR", _lr(setting.peak_lr), ""),
        ("final LR", _lr(setting.final_lr), ""),
        ("warmup steps", str(setting.warmup_steps), ""),
        ("steps", str(setting.steps), ""),
        ("final loss", f"{rec.final:.4f}", f"{rec.final_lower:.4f}..{rec.final_upper:.4f}"),
        ("inside the pilots' range", "yes" if rec.in_range else "[yellow]no[/]", ""),
    ]
    for row in rows:
        main.add_row(*row)
    return main


#: WSD decay shapes in a few letters, for narrow tables.
_SHAPE_ABBREVIATIONS = {"linear": "lin", "cosine": "cos", "exponential": "exp"}


def _pretrain_compact(setting: PretrainSetting, like: PretrainSetting) -> str:
    """``wsd cos 23%``, ``cosine``; the peak LR and steps where they differ from ``like``."""
    text = setting.family
    if setting.family == "wsd" and setting.decay_shape is not None:
        shape = _SHAPE_ABBREVIATIONS.get(setting.decay_shape, setting.decay_shape)
        text += f" {shape} {setting.decay_fraction:.0%}"
    if setting.peak_lr != like.peak_lr:
        text += f" lr {setting.peak_lr:.2g}"
    if setting.steps != like.steps:
        text += f" T {setting.steps}"
    return text


def _pretrain_table(
    title: str, items: list[PretrainAssessment], result: PretrainRecommendation
) -> RenderableType:
    rec = result.recommended
    table = add_columns(
        plain_table(title),
        [
            ("", "left"),
            ("schedule", "left"),
            ("final LR", "right"),
            ("final loss", "right"),
            (f"{100 * result.level:.0f} %", "right"),
            ("vs rec.", "right"),
        ],
    )
    notes = []
    for item in items:
        label = item.label.removeprefix("best ")  # the title says so
        notes += [f"{label}: [yellow]{flag}[/]" for flag in item.flags]
        table.add_row(
            label + (" [yellow]![/]" if item.flags else ""),
            _pretrain_compact(item.setting, rec.setting),
            "-" if item.setting.family == "constant" else _lr(item.setting.final_lr),
            f"{item.final:.4f}",
            f"{item.final_lower:.3f}..{item.final_upper:.3f}",
            f"{item.final - rec.final:+.4f}",
        )
    if not notes:
        return table
    return Group(table, Text.from_markup("\n".join(notes)))


def _pretrain_search_lines(result: PretrainRecommendation) -> list[str]:
    space = result.space
    decay = space.decay_fraction
    lines = [
        f"space: peak LR {space.peak_lr[0]:.3g}..{space.peak_lr[1]:.3g}, steps "
        f"{space.steps[0]}..{space.steps[1]}, warmup {space.warmup_steps}, families "
        f"{', '.join(space.families)}; WSD decays {', '.join(space.decay_shapes)} over "
        f"{decay[0]:.0%}..{decay[1]:.0%} of the steps; final LR {space.final_lr[0]:.3g}.."
        f"{space.final_lr[1]:.3g}",
        f"search: a grid over every family and decay shape, then a zoom on each one's best: "
        f"{result.evaluations} schedules, {result.search_seconds:.2f} s",
    ]
    return lines + [f"note: {note}" for note in result.notes]


@recommendation_report.register
def _pretrain_recommendation_report(result: PretrainRecommendation) -> RenderableType:
    rec = result.recommended
    lines = [
        "intervals: fit uncertainty + eval noise, wider where the schedule anneals unlike "
        "any pilot or runs longer"
    ]
    lines += [f"[yellow]outside the pilots:[/] {flag}" for flag in rec.flags]
    parts: list[RenderableType] = [
        _pretrain_main_table(result),
        Text.from_markup("\n".join(lines)),
    ]
    if result.alternatives:
        title = "the best of every other family and WSD decay shape"
        parts.append(_pretrain_table(title, result.alternatives, result))
    compared = [rec, *result.baselines]
    parts.append(_pretrain_table("compared at the same budget", compared, result))
    parts.append(Text("\n".join(_pretrain_search_lines(result))))
    return Group(*parts)


def _gap(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2e}"


def ranking_report(ranking: CandidateRanking) -> RenderableType:
    """Candidates ranked by the predicted objective, with P(best) and flags: named in the
    table (wide) or by their rank, with the names under the table (narrow)."""
    w_g, w_d = ranking.weights
    title = f"candidates ranked by {w_g:.3g}*L_general + {w_d:.3g}*L_domain"
    numbers = _prediction_columns(ranking.level, p_best=True)
    wide = add_columns(plain_table(title), [("rank", "right"), ("name", "left"), *numbers])
    narrow = add_columns(plain_table(title), [("rank", "right"), *numbers])
    notes = []
    for item in ranking.candidates:
        a = item.assessment
        mark = (" [red]✗[/]" if a.violations else "") + (" [yellow]![/]" if a.flags else "")
        notes += [f"{item.name}: [red]{v}[/]" for v in a.violations]
        notes += [f"{item.name}: [yellow]{f}[/]" for f in a.flags]
        cells = _prediction_cells(a, item.probability_best)
        wide.add_row(str(item.rank), item.name + mark, *cells)
        narrow.add_row(f"{item.rank}{mark}", *cells)
    described = [(f"{c.name}:", c.assessment.schedule) for c in ranking.candidates]
    ranked = [(str(c.rank), f"{c.name}:", c.assessment.schedule) for c in ranking.candidates]
    lines = notes + [f"P(best): {ranking.method}"] + [f"note: {n}" for n in ranking.notes]
    return Group(
        ByWidth((wide, legend(described)), (narrow, legend(ranked, "rank, name: schedule"))),
        Text.from_markup("\n".join(lines)),
    )
