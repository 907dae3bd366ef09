"""A one-line progress bar on stderr for terminals: trials measured of the total."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any


class TrialsProgress:
    """Redraws ``label [####----] done/total trials  N running  elapsed`` every
    ``period_s`` from ``jobs()`` (``JobInfo``s) while the ``with`` block runs; draws nothing
    when not ``enabled`` (stderr is not a terminal)."""

    def __init__(
        self,
        jobs: Callable[[], Sequence[Any]],
        label: str,
        *,
        enabled: bool = True,
        period_s: float = 0.5,
    ) -> None:
        self.jobs = jobs
        self.label = label
        self.enabled = enabled
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tuneloom-progress", daemon=True)
        self._started = time.perf_counter()

    def __enter__(self) -> TrialsProgress:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        self._stop.set()
        self._thread.join()
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()

    def line(self) -> str:
        """The bar as it is now."""
        jobs = self.jobs()
        done = sum(j.trials_done for j in jobs)
        total = sum(j.trials_total for j in jobs) or 1
        running = sum(1 for j in jobs if j.state == "running")
        width = 30
        filled = int(width * min(1.0, done / total))
        bar = "#" * filled + "-" * (width - filled)
        elapsed = time.perf_counter() - self._started
        return f"{self.label} [{bar}] {done}/{total} trials  {running} running  {elapsed:6.1f} s"

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            sys.stderr.write("\r" + self.line())
            sys.stderr.flush()
