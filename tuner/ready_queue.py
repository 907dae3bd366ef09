"""Waiting stages per pool in a policy's fixed queue order, kept incrementally.

A policy whose queue order never depends on the time (``Policy.static_key``) decides a
dispatch pass the same way whatever else waits: each free resource of a pool takes the first
waiting stage of that pool. ``ReadyQueue`` keeps those stages in one heap per pool, so a
pass costs O(log n) per stage started instead of sorting every waiting stage of every job.

The order is the one ``policies.Interleaved`` computes from scratch: by ``(rank, key,
order, position)`` where ``key`` is the policy's static key, ``order`` the job's submission
order, ``position`` the stage's place among its job's waiting stages, and ``rank`` (with
rounds) the stage's place in its job's own queue, so a job gets one stage per round.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

from tuner._base import StageRequest

QueueKey = Callable[[StageRequest, int], tuple[float, ...]]

Entry = tuple[tuple[object, ...], int, str, StageRequest]  # (sort key, generation, job, stage)


class ReadyQueue:
    """Waiting stages by pool, in queue order. Replace a job's stages with ``update`` whenever
    they change (a stage waits, starts, or the job may no longer run); ``take`` pops the
    first stages of a pool."""

    def __init__(self, key: QueueKey, *, rounds: bool) -> None:
        self.key = key
        self.rounds = rounds
        self._heaps: dict[str, list[Entry]] = {}
        self._generation: dict[str, int] = {}
        self._count: dict[str, int] = {}  # waiting stages per job
        self._live = 0
        self._stored = 0

    def __len__(self) -> int:
        """Stages waiting."""
        return self._live

    def update(self, job: str, order: int, waiting: Sequence[StageRequest]) -> None:
        """Make ``waiting`` (in the job's own order) the job's only waiting stages."""
        generation = self._generation.get(job, 0) + 1
        self._generation[job] = generation
        self._live += len(waiting) - self._count.get(job, 0)
        self._count[job] = len(waiting)
        if waiting:
            keyed = sorted(
                (
                    (self.key(stage, order), position, stage)
                    for position, stage in enumerate(waiting)
                ),
                key=lambda item: (item[0], item[1]),
            )
            for rank, (key, position, stage) in enumerate(keyed):
                sort_key = (rank if self.rounds else 0, key, order, position)
                heapq.heappush(
                    self._heaps.setdefault(stage.pool, []), (sort_key, generation, job, stage)
                )
                self._stored += 1
        if self._stored > 2 * self._live + 256:
            self._compact()

    def take(self, pool: str, n: int) -> list[tuple[tuple[object, ...], StageRequest]]:
        """Pop up to ``n`` first stages of ``pool``, with their sort keys. The caller starts
        them and then calls ``update`` for their jobs."""
        heap = self._heaps.get(pool)
        out: list[tuple[tuple[object, ...], StageRequest]] = []
        while heap and len(out) < n:
            sort_key, generation, job, stage = heapq.heappop(heap)
            self._stored -= 1
            if self._generation.get(job) == generation:
                out.append((sort_key, stage))
        return out

    def pools(self) -> list[str]:
        """Pools that may have stages waiting."""
        return [pool for pool, heap in self._heaps.items() if heap]

    def _compact(self) -> None:
        """Drop superseded entries (each ``update`` leaves the job's old ones behind)."""
        for pool, heap in self._heaps.items():
            kept = [e for e in heap if self._generation.get(e[2]) == e[1]]
            heapq.heapify(kept)
            self._heaps[pool] = kept
        self._stored = sum(len(h) for h in self._heaps.values())
