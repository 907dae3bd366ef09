"""Progress bars of the long commands (`tune`, `wait`, `import`, `evaluate`), drawn with rich.

The only module that knows the library. Bars go to stderr and only to a terminal:
``terminal()`` gives no console (so nothing is drawn) when stdout or stderr is not a
terminal, or when the command prints JSON. Bars are cleared when their ``with`` block ends.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column


def terminal(json_output: bool = False) -> Console | None:
    """stderr as a console to draw progress on, or None: with ``json_output`` (--json), or
    when stdout or stderr is not a terminal (output piped or redirected)."""
    if json_output or not (_isatty(sys.stdout) and _isatty(sys.stderr)):
        return None
    return Console(file=sys.stderr)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


class _Bar:
    """A rich progress display on ``console`` while the ``with`` block runs; nothing at all
    when ``console`` is None or not a terminal."""

    def __init__(
        self,
        console: Console | None,
        columns: Sequence[ProgressColumn],
        label: str,
        total: int | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.enabled = console is not None and console.is_terminal
        self._progress: Progress | None = None
        if self.enabled:
            self._progress = Progress(
                *columns, console=console, transient=True, refresh_per_second=4
            )
        self._task: Any = None

    def __enter__(self) -> Any:
        if self._progress is not None:
            self._task = self._progress.add_task(self.label, total=self.total, **self._fields())
            self._prepare()
            self._progress.start()
        return self

    def _prepare(self) -> None:
        """Fill the first frame before it is drawn."""

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _fields(self) -> dict[str, Any]:
        return {}

    def _update(self, **changes: Any) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, **changes)


class TrialsProgress(_Bar):
    """``label ━━━━━── done/total trials · N running · elapsed``, read from ``jobs()``
    (``JobInfo``s: ``trials_done``, ``trials_total``, ``state``) every ``period_s``."""

    def __init__(
        self,
        jobs: Callable[[], Sequence[Any]],
        label: str,
        *,
        console: Console | None,
        period_s: float = 0.5,
    ) -> None:
        super().__init__(
            console,
            [
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("trials · {task.fields[running]} running"),
                TimeElapsedColumn(),
            ],
            label,
        )
        self.jobs = jobs
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tuneloom-progress", daemon=True)

    def _fields(self) -> dict[str, Any]:
        return {"running": 0}

    def __enter__(self) -> TrialsProgress:
        super().__enter__()
        if self.enabled:
            self._thread.start()
        return self

    def _prepare(self) -> None:
        self.poll()

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()
        super().__exit__(*exc)

    def poll(self) -> None:
        """Read the jobs once and show what they say."""
        jobs = self.jobs()
        self._update(
            completed=sum(j.trials_done for j in jobs),
            total=sum(j.trials_total for j in jobs) or None,
            running=sum(1 for j in jobs if j.state == "running"),
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.poll()


class StepsProgress(_Bar):
    """``label ━━━── done/total unit · what now · elapsed`` for a known number of steps;
    with ``total`` None, a spinner and what is being done."""

    def __init__(
        self, label: str, total: int | None, *, console: Console | None, unit: str = "steps"
    ) -> None:
        columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
        if total is not None:
            columns += [BarColumn(), MofNCompleteColumn(), TextColumn(unit)]
        # What is being done gives way first when the terminal is narrow.
        now = Column(no_wrap=True, overflow="ellipsis", ratio=1)
        columns += [TextColumn("{task.fields[now]}", table_column=now), TimeElapsedColumn()]
        super().__init__(console, columns, label, total)

    def _fields(self) -> dict[str, Any]:
        return {"now": ""}

    def __enter__(self) -> StepsProgress:
        return super().__enter__()

    def doing(self, what: str) -> None:
        """Say what the command is doing now."""
        self._update(now=what)

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more steps done."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, steps)
