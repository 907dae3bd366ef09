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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
