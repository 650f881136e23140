"""Tables that fit the terminal: the wide layout where it fits, a narrow one at 80 columns.

Nothing is cut at 80 columns: every table has a narrow layout whose columns hold numbers
that never wrap (the long text moves under the table, keyed by a short label), and a text
cell that is too long wraps instead of ending in an ellipsis.
"""

from __future__ import annotations

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

#: Wider than any table cptopt draws: measures a layout's natural (unwrapped) width.
_UNBOUNDED = 10_000


def natural_width(console: Console, options: ConsoleOptions, renderable: RenderableType) -> int:
    """The width ``renderable`` takes when nothing in it wraps."""
    return Measurement.get(console, options.update_width(_UNBOUNDED), renderable).maximum


class ByWidth:
    """The first of ``layouts`` whose table fits the console unwrapped, else the last one
    (the narrow layout, laid out to fit 80 columns).

    A layout is a renderable, or a tuple whose first item is the table that must fit and
    the rest what follows it (text under a table wraps at any width and is not measured).
    """

    def __init__(self, *layouts: RenderableType | tuple[RenderableType, ...]) -> None:
        self.layouts = [layout if isinstance(layout, tuple) else (layout,) for layout in layouts]

    def choose(self, console: Console, options: ConsoleOptions) -> Group:
        for layout in self.layouts[:-1]:
            if natural_width(console, options, layout[0]) <= options.max_width:
                return Group(*layout)
        return Group(*self.layouts[-1])

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.choose(console, options)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.choose(console, options))


class PathLine:
    """A path, then text: on one line where it fits, else the text on the next line; the
    path is never split, even when wider than the terminal (print it uncropped)."""

    def __init__(self, path: str, text: str) -> None:
        self.path, self.text = path, text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if len(self.path) + 1 + len(self.text) <= options.max_width:
            yield Text(f"{self.path} {self.text}")
        else:
            yield Text(self.path, no_wrap=True, overflow="ignore")
            yield Text(self.text)


def legend(rows: list[tuple[str, ...]], heading: str | None = None) -> RenderableType:
    """Lines under a table (after a ``heading``): the key columns as they are, the last
    column (a description) wrapping under itself, never under the keys."""
    grid = Table.grid(padding=(0, 1))
    width = len(rows[0]) if rows else 1
    for index in range(width):
        grid.add_column(no_wrap=index < width - 1, overflow="fold")
    for row in rows:
        grid.add_row(*row)
    return Group(Text(heading), grid) if heading else grid


def plain_table(title: str | None = None, caption: str | None = None) -> Table:
    """A table without vertical rules (a rule under the header only): the narrow layouts'."""
    return Table(
        title=title,
        caption=caption,
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )


def add_columns(table: Table, columns: list[tuple[str, str]]) -> Table:
    """Columns ``(header, justify)``: right-justified ones hold numbers and never wrap;
    left-justified ones hold text and wrap (fold) rather than end in an ellipsis."""
    for header, justify in columns:
        numeric = justify == "right"
        table.add_column(
            header,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=numeric,
            overflow="fold",
        )
    return table


def two_line(columns: list[tuple[str, str]], at: str = " ") -> list[tuple[str, str]]:
    """Column headers broken into two lines at the first ``at`` (``general\\nCV mean``):
    narrow layouts' headers, no wider than the numbers under them."""
    return [(header.replace(at, "\n" + at.strip(), 1), justify) for header, justify in columns]
