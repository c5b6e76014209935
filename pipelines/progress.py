"""Rich progress for long stages: a callback that advances one step per finished part."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

console = Console(stderr=True)


@contextmanager
def fraction(title: str) -> Iterator[Callable[[int, int], None]]:
    """Yield `update(done, total)` for a stage that learns its size as it goes."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(title, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@contextmanager
def steps(title: str, total: int) -> Iterator[Callable[[str], None]]:
    """Yield `tick(name)`; each call marks one of `total` parts done."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} {task.fields[part]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(title, total=total, part="")

        def tick(name: str) -> None:
            bar.update(task, advance=1, part=name)

        yield tick


@contextmanager
def transfer(title: str) -> Iterator[Callable[[int, int], None]]:
    """Yield `update(done_bytes, total_bytes)` for a stage that reads a file in parts. The
    bar goes when the stage ends (its summary follows; an error stays one line)."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(title, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
