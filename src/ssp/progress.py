"""Progress bars and one-line summaries, the same for every long-running command."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


@contextmanager
def progress_bar(description: str, total: int | None, enabled: bool = True) -> Iterator:
    """Yield ``advance(n)``; draws a bar on a terminal and stays quiet otherwise."""
    if not enabled:
        yield lambda n=1: None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if total:
        columns += [TaskProgressColumn(), TimeRemainingColumn()]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


def summary(line: str) -> None:
    """The one line a command prints when it finishes, on stdout so scripts can read it."""
    print(line, file=sys.stdout, flush=True)
