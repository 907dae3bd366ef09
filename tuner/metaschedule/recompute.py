"""No candidate that recomputes a producer over and over: a post-processor for CPU searches.

MetaSchedule samples where a producer that is not inlined (a convolution's padding, most
often) is computed: at the root, or at any loop of its consumer, reduction loops included.
Computed inside the consumer's inner loops, the producer runs again for every iteration of
the loops around it: the padding of a 3x3 convolution computed under its innermost reduction
loops ran 255 times per element it writes, and every such candidate ran 20-60x slower than
the task's best. The cost model, trained on a few dozen of a task's records, cannot tell,
and an evolutionary search that drifts there spends whole batches on them.

``recompute_factor`` counts it on the scheduled function: for every block that is neither
the root nor a reduction, the times it runs (the product of the loops around it and its own)
over the elements of the buffer it writes. A tiled schedule recomputes some halo (factors of
1-7 among the fastest schedules measured); of 2,440 candidates measured in ten CNN runs, none
above ``RECOMPUTE_LIMIT`` came within 1.29x of its workload's best (``recompute_bench.py`` in
``benchmarks/README.md``). ``LimitRecompute`` rejects the schedules above it, so the search
samples and mutates again instead of proposing them.
"""

from __future__ import annotations

import math
from typing import Any

from tvm import s_tir, tirx
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

RECOMPUTE_LIMIT = 16.0  # most times a producer may run per element it writes
DATA_PARALLEL = 0  # ``IterVar.iter_type`` of a spatial block iterator


def recompute_factor(func: Any) -> float:
    """The most times any data-parallel block of ``func`` (a scheduled ``PrimFunc``) runs per
    element of the buffer it writes: 1.0 when every such block runs once per element; blocks
    whose loop extents or buffer shape are not constants are left out."""
    worst = 1.0
    for block, runs in _block_runs(func.body, 1):
        if runs is None or block.name_hint == "root" or len(block.writes) != 1:
            continue
        if any(int(var.iter_type) != DATA_PARALLEL for var in block.iter_vars):
            continue
        elements = _elements(block.writes[0].source.shape)
        if elements:
            worst = max(worst, runs / elements)
    return worst


def module_recompute_factor(mod: Any) -> float:
    """The largest ``recompute_factor`` of the ``PrimFunc``s of ``mod`` (1.0 without any)."""
    funcs = [f for f in mod.functions.values() if isinstance(f, tirx.PrimFunc)]
    return max((recompute_factor(f) for f in funcs), default=1.0)


def _block_runs(stmt: Any, runs: int | None) -> list[tuple[Any, int | None]]:
    """Each block under ``stmt`` with how many times it runs (None: not a constant)."""
    if isinstance(stmt, tirx.For):
        extent = stmt.extent
        inner = runs * int(extent) if runs is not None and isinstance(extent, tirx.IntImm) else None
        return _block_runs(stmt.body, inner)
    if isinstance(stmt, tirx.SeqStmt):
        return [item for s in stmt.seq for item in _block_runs(s, runs)]
    if isinstance(stmt, s_tir.SBlockRealize):
        block = stmt.block
        inner = 1 if block.name_hint == "root" else runs
        return [(block, runs), *_block_runs(block.body, inner)]
    if isinstance(stmt, tirx.IfThenElse):
        found = _block_runs(stmt.then_case, runs)
        if stmt.else_case is not None:
            found += _block_runs(stmt.else_case, runs)
        return found
    body = getattr(stmt, "body", None)
    return _block_runs(body, runs) if body is not None else []


def _elements(shape: Any) -> int | None:
    dims = [int(d) if isinstance(d, tirx.IntImm) else None for d in shape]
    return None if None in dims else math.prod(dims)  # type: ignore[arg-type]


@derived_object
class LimitRecompute(ms.postproc.PyPostproc):
    """Rejects a schedule whose ``recompute_factor`` exceeds ``limit``."""

    def __init__(self, limit: float = RECOMPUTE_LIMIT) -> None:
        super().__init__()
        self.limit = limit

    def _initialize_with_tune_context(self, context: Any) -> None:
        pass

    def apply(self, sch: s_tir.Schedule) -> bool:
        return module_recompute_factor(sch.mod) <= self.limit

    def clone(self) -> LimitRecompute:
        return LimitRecompute(self.limit)
