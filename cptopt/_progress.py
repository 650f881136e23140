"""Progress of long work: a callback the library calls with the stage and a count.

``progress(stage, done, total)``: ``stage`` says what runs, in words ("reading logs",
"selecting the general law", ...), ``done`` of ``total`` steps of it are finished. The
library never prints; the CLI shows the latest stages on its spinner. A callback may be
called from several threads at once (the general and the domain law are selected side by
side).
"""

from __future__ import annotations

from collections.abc import Callable

#: ``progress(stage, done, total)``.
Progress = Callable[[str, int, int], None]


def report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    """Call ``progress`` if there is one."""
    if progress is not None:
        progress(stage, done, total)
