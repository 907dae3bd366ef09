"""Reconstructed measurement timelines for logs that carry timestamps and costs.

AutoTVM and Ansor logs record, per measurement, the wall time it finished (``timestamp``) and
the seconds the whole measurement took (``all_cost``: build and run together; the logs do not
split them). The heuristic, kept simple on purpose:

1. Each measurement occupies ``[timestamp - all_cost, timestamp]``.
2. Measurements are taken in file order. A new batch starts when the workload changes or when a
   measurement starts more than ``gap_s`` seconds after the current batch's latest end (tuners
   measure a batch back to back, then pause to train their cost model and pick the next batch).
3. A batch becomes one ``profile`` stage from its earliest start to its latest end on the
   file's imported device (``device:imported:<file fingerprint>:0``; logs come from different
   machines), with the batch size as ``candidates``. A batch that would overlap the
   previous one on that device starts where the previous one ended, when that still leaves it
   a positive length.

The result is approximate and is always labelled "reconstructed".
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_GAP_S = 2.0


def imported_resource(source: str, index: int = 0) -> str:
    """The device an imported file's stages run on: ``device:imported:<fingerprint>:0``;
    the ``index``-th target of a log with several runs on ``...:<index>``."""
    return f"device:imported:{source.rsplit(':', 1)[-1][:6]}:{index}"


@dataclass
class Batch:
    """Measurements of one workload taken back to back."""

    task: str
    iteration: int
    start: float
    end: float
    count: int = 0


class BatchTimeline:
    """Groups measurements into batches as they stream by; memory is one batch."""

    def __init__(self, gap_s: float = DEFAULT_GAP_S) -> None:
        if gap_s < 0:
            raise ValueError(f"gap_s must be >= 0, got {gap_s}")
        self.gap_s = gap_s
        self._current: Batch | None = None
        self._iterations: dict[str, int] = {}
        self._device_free_at: float | None = None

    def add(self, task: str, ts: float, all_cost: float | None) -> tuple[int, Batch | None]:
        """Place one measurement; returns its batch index in ``task`` and a batch it closed."""
        start = ts - all_cost if all_cost is not None and all_cost > 0 else ts
        current = self._current
        if current is not None and current.task == task and start <= current.end + self.gap_s:
            if start < current.start:
                current.start = start
            if ts > current.end:
                current.end = ts
            current.count += 1
            return current.iteration, None
        closed = self._close()
        iteration = self._iterations.get(task, -1) + 1
        self._iterations[task] = iteration
        self._current = Batch(task, iteration, start, ts, 1)
        return iteration, closed

    def finish(self) -> Batch | None:
        """Close the last open batch."""
        return self._close()

    def _close(self) -> Batch | None:
        batch = self._current
        self._current = None
        if batch is None:
            return None
        free_at = self._device_free_at
        if free_at is not None and batch.start < free_at < batch.end:
            batch.start = free_at
        self._device_free_at = batch.end if free_at is None else max(free_at, batch.end)
        return batch
