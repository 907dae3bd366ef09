"""Sibling schedules: a task's search also starts from what the job's other tasks found.

A model's tasks often share an operator at other shapes or with other fused neighbours (a
ResNet's 3x3 convolutions with and without the residual addition, at each stage's
resolution), yet MetaSchedule searches each from scratch: a task's first batches are random
schedules, often ten times slower than its final best. Here a select puts ahead of the
search's candidates up to ``limit`` schedules that the job's other tasks of the same op class
hold as their best, applied to the task the way a schedule library's are
(``tuner.metaschedule.reuse``: trace replay, else anchor-trace transfer, tile sizes refitted
to the task's extents), the most similar shapes first. Once measured they are records of the
task, so the evolutionary search, which draws its initial population from the database's
best records of the workload, mutates them too.

A sibling's best is offered to a task once (``SiblingBest.key``); when the sibling finds a
new best, that one is offered again.

Jobs find their siblings' bests on a ``SiblingBoard``, where each task publishes its new
bests. An engine gives its jobs one board, so that the tasks of every running job on the same
target are siblings (two models with a convolution in common help each other); a job
without it, or a job of ``siblings_from="job"``, has a board of its own. A finished job
retires from the board: its schedules reach later jobs through the schedule library.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tuner.metaschedule.library import LibraryEntry, WorkloadInfo
from tuner.metaschedule.library.sources import trace_digest
from tuner.metaschedule.reuse import apply_schedule, rank_candidates

SIBLING_SOURCE = "sibling"  # the ``source`` of the library entries siblings become


@dataclass(frozen=True, slots=True)
class SiblingBest:
    """A task's best schedule so far, as offered to its siblings: the task, the candidate
    that holds its best, the task's workload (``mod``) and its description, its mean latency
    and trials, and the best's trace (MetaSchedule JSON, ``[instructions, decisions]``)."""

    task: str
    candidate: int
    mod: Any
    info: WorkloadInfo
    workload_hash: str
    latency_s: float
    trials: int
    trace: list[Any]

    @property
    def key(self) -> tuple[str, int]:
        """What a task remembers of an offer: a sibling's new best is a new key."""
        return (self.task, self.candidate)


@dataclass(frozen=True, slots=True)
class SiblingSchedule:
    """A sibling's best applied to a task: the schedule, the sibling it came from, how
    (``replay`` or ``anchor-transfer``) and whether its tile sizes were refitted."""

    schedule: Any
    sibling: str
    method: str
    refitted: bool = False


class SiblingBoard:
    """The newest best schedule of every task of the jobs that share the board, by target.
    Thread safe: each job publishes and reads from the threads its stages run on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bests: dict[tuple[str, str], tuple[str, SiblingBest]] = {}  # (job, task) ->

    def publish(self, job: str, target: str, best: SiblingBest) -> None:
        """``best`` is now the best of ``job``'s task ``best.task`` on ``target`` (the
        target's canonical text: only tasks on the same target are siblings)."""
        with self._lock:
            self._bests[(job, best.task)] = (target, best)

    def bests(self, job: str, task: str, target: str, op_class: str) -> list[SiblingBest]:
        """The bests on offer to ``job``'s ``task``: every other task's on ``target`` whose
        workload has ``op_class``, a task of another job named ``JOB/TASK``."""
        with self._lock:
            published = list(self._bests.items())
        offered = []
        for (owner, name), (where, best) in published:
            if where != target or best.info.op_class != op_class or (owner, name) == (job, task):
                continue
            offered.append(best if owner == job else replace(best, task=f"{owner}/{name}"))
        return offered

    def retire(self, job: str) -> None:
        """``job`` ended: its bests are no longer offered."""
        with self._lock:
            for key in [key for key in self._bests if key[0] == job]:
                del self._bests[key]


def as_entry(best: SiblingBest, target: Mapping[str, Any], folder: str) -> LibraryEntry:
    """``best`` as a library entry for ``target`` (``Target.export()`` form), so that
    ranking and applying treat it like a library's schedule; ``folder`` is the job's
    database folder."""
    return LibraryEntry(
        source=SIBLING_SOURCE,
        source_path=folder,
        database=folder,
        model=None,
        task=best.task,
        workload_hash=best.workload_hash,
        workload=best.info,
        target=dict(target),
        latency_s=best.latency_s,
        trials=best.trials,
        trace=best.trace,
        trace_digest=trace_digest(best.trace),
    )


def sibling_schedules(
    mod: Any,
    info: WorkloadInfo,
    bests: Sequence[SiblingBest],
    target: Any,
    *,
    limit: int,
    folder: str,
    known: set[int],
) -> list[SiblingSchedule]:
    """Up to ``limit`` of ``bests`` applied to the task ``mod`` (described by ``info``) for
    ``target`` (a ``tvm.target.Target``): same op class only, most similar shapes first,
    each one that applies, builds in principle (well formed) and whose structural hash is
    not in ``known`` (hashes of the schedules the task measured; the kept ones are added)."""
    import tvm_ffi

    if limit <= 0 or not bests:
        return []
    exported = target.export()
    by_task = {best.task: best for best in bests}
    entries = [as_entry(best, exported, folder) for best in bests]
    ranking = rank_candidates(info, entries, limit=len(entries), target=target)
    kept: list[SiblingSchedule] = []
    for candidate in ranking.candidates:
        if len(kept) >= limit:
            break
        best = by_task[candidate.entry.task]
        applied = apply_schedule(candidate.entry, mod, target, build=False, source_mod=best.mod)
        if not applied:
            continue
        structural = int(tvm_ffi.structural_hash(applied.mod))
        if structural in known:
            continue
        known.add(structural)
        kept.append(
            SiblingSchedule(applied.schedule, best.task, applied.method or "", applied.refitted)
        )
    return kept
