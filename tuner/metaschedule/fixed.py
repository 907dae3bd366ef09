"""The schedules of a task with nothing to search, as measurable candidates.

A kernel whose design spaces hold no decision (an addition, a ReLU, a concatenation) is
not searched, and left unscheduled it compiles to a scalar loop with 64-bit index
arithmetic (an addition of 4,096 floats: ~4.6 us instead of ~0.45 us). ``fixed_schedules``
gives the few schedules worth measuring once instead; the driver measures them in the
task's one batch and the database keeps the fastest (sometimes the unscheduled function:
a concatenation can run faster without a schedule).
"""

from __future__ import annotations

from typing import Any

import tvm_ffi
from tvm.s_tir import Schedule
from tvm.s_tir import meta_schedule as ms

from tuner.metaschedule.spaces import space_generator

# Besides the design spaces, on a CPU: the one vector loop and the unscheduled function.
CPU_EXTRAS = 2


def most_fixed_schedules(spaces: int) -> int:
    """The most schedules ``fixed_schedules`` gives a task with ``spaces`` design spaces
    without decisions (0 for a task that is searched: ``spaces`` 0)."""
    return spaces + CPU_EXTRAS if spaces else 0


def fixed_schedules(mod: Any, target: Any, name: str, *, cpu: bool = True) -> list[Schedule]:
    """A task's design spaces (without decisions) post-processed as MetaSchedule does for
    the candidates it measures; for a CPU (``cpu``) also the whole loop nest as one
    vectorized and unrolled loop (when the function allows it), then the unscheduled
    function. Duplicates and spaces that post-processing rejects are left out."""
    context = ms.TuneContext(
        mod, target=target, space_generator=space_generator(target), task_name=name
    )
    schedules = []
    for space in context.generate_design_space():
        if all(postproc.apply(space) for postproc in context.space_generator.postprocs):
            schedules.append(space)
    if cpu:
        flat = one_vector_loop(mod)
        if flat is not None:
            schedules.append(flat)
        schedules.append(Schedule(mod))
    seen: set[int] = set()
    unique = []
    for sch in schedules:
        key = tvm_ffi.structural_hash(sch.mod)
        if key not in seen:
            seen.add(key)
            unique.append(sch)
    return unique


def one_vector_loop(mod: Any, lanes: int = 16, unroll: int = 4) -> Schedule | None:
    """``mod`` with every block inlined into its last one, whose loops become one loop
    of ``lanes``-wide vectors unrolled ``unroll`` times; None when the function does not
    allow it (a block that cannot be inlined, a reduction)."""
    try:
        sch = Schedule(mod)
        *producers, last = sch.get_child_blocks(sch.get_sblock("root"))
        for block in producers:
            sch.compute_inline(block)
        loop = sch.fuse(*sch.get_loops(last))
        outer, inner = sch.split(loop, [None, lanes])
        sch.vectorize(inner)
        _, unrolled = sch.split(outer, [None, unroll])
        sch.unroll(unrolled)
    except Exception:  # the schedule primitives reject it: the other schedules remain
        return None
    return sch
