"""The schedule a GPU kernel gets without tuning: TVM's DLight rules, as a measurable candidate.

A model compiled for a GPU schedules every kernel the tuning database lacks with DLight's
default rules (matmul, GEMV, reductions, a thread-binding fallback). Those schedules are good:
after a short search MetaSchedule's best can still be slower, and the tuned model then runs
slower than the untuned one. ``default_schedule`` gives a task's DLight schedule as a traced
``Schedule`` that the driver measures in the task's first batch, so the database's best for
every task is never worse than the default.
"""

from __future__ import annotations

from typing import Any

from tvm.ir import IRModule
from tvm.s_tir import Schedule
from tvm.target import Target


def default_schedule(mod: IRModule, target: Target) -> Schedule | None:
    """DLight's schedule of the task ``mod`` (its ``main``) for the GPU ``target``, traced
    so that a tuning record can replay it; None when no rule applies or one fails."""
    from tvm.s_tir import dlight as dl

    rules: list[Any] = [
        dl.gpu.Matmul(),
        dl.gpu.GEMV(),
        dl.gpu.Reduction(),
        dl.gpu.GeneralReduction(),
        dl.gpu.Fallback(),
    ]
    func = mod["main"]
    with target:
        for rule in rules:
            try:
                found = rule.apply(func, target, False)
            except Exception:  # a rule that does not fit this kernel: try the next
                continue
            schedule = found[0] if isinstance(found, list) and found else found
            if isinstance(schedule, Schedule) and schedule.trace is not None:
                return _on_task(schedule, mod)
    return None


def _on_task(schedule: Schedule, mod: IRModule) -> Schedule:
    """The schedule replayed on ``mod`` itself, as the database will replay its record."""
    replayed = Schedule(mod)
    schedule.trace.apply_to_schedule(replayed, remove_postproc=False)
    return replayed
