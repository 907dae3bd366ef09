"""Fewest DRAM bytes for an order with a TCM of a given size: an exact integer linear
program (HiGHS through ``scipy.optimize.milp``) beside a greedy baseline, and the
compulsory traffic as the lower bound. The model is ``tcm_model``'s."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from tuner.memory.graph import MemoryGraph
from tuner.memory.tcm_model import (
    TcmModel,
    TcmPlan,
    compulsory_dram_bytes,
    plan_from_keeps,
    tcm_model,
)

__all__ = [
    "TcmPlan",
    "TcmResult",
    "compulsory_dram_bytes",
    "greedy_plan",
    "ilp_plan",
    "plan_tcm",
]

GREEDY_METHOD = "greedy: drop the tensor used again farthest ahead first (Belady)"
ILP_METHOD = "integer linear program (HiGHS)"


@dataclass(frozen=True, slots=True)
class TcmResult:
    """The integer program's plan, the greedy one, and the compulsory traffic (a lower
    bound on both)."""

    ilp: TcmPlan
    greedy: TcmPlan
    compulsory_dram_bytes: int


def plan_tcm(
    graph: MemoryGraph, order: Sequence[int], tcm_bytes: int, *, time_limit_s: float = 60.0
) -> TcmResult:
    """Both plans for ``order`` with a TCM of ``tcm_bytes`` (ValueError, one line, for a
    size that is not positive or that holds the whole peak)."""
    greedy = greedy_plan(graph, order, tcm_bytes)
    ilp = ilp_plan(graph, order, tcm_bytes, time_limit_s=time_limit_s, cap=greedy)
    return TcmResult(ilp, greedy, compulsory_dram_bytes(graph))


def greedy_plan(graph: MemoryGraph, order: Sequence[int], tcm_bytes: int) -> TcmPlan:
    """Keep every tensor in the TCM until a step needs the room, then drop the tensors used
    again farthest ahead first (largest first among equals)."""
    start = time.perf_counter()
    model = tcm_model(graph, order, tcm_bytes)
    return plan_from_keeps(
        model,
        _belady_keeps(model),
        optimal=False,
        method=GREEDY_METHOD,
        solve_s=time.perf_counter() - start,
    )


def ilp_plan(
    graph: MemoryGraph,
    order: Sequence[int],
    tcm_bytes: int,
    *,
    time_limit_s: float = 60.0,
    cap: TcmPlan | None = None,
) -> TcmPlan:
    """The plan with the fewest DRAM bytes, from an integer linear program: a binary keep
    variable per gap between two uses of a tensor, a spill variable per tensor, one TCM
    capacity row per step. Never above ``cap`` (the greedy plan when None): when HiGHS
    stops at ``time_limit_s`` without a better plan, that plan is returned."""
    start = time.perf_counter()
    model = tcm_model(graph, order, tcm_bytes)
    if cap is None:
        cap = plan_from_keeps(
            model, _belady_keeps(model), optimal=False, method=GREEDY_METHOD, solve_s=0.0
        )
    if cap.optimal:
        return _with(cap, method=f"{cap.method} (meets the compulsory traffic)", start=start)
    kept, solved = _solve_keeps(model, time_limit_s)
    if kept is not None:
        method = ILP_METHOD if solved else f"{ILP_METHOD}, best found in {time_limit_s:g} s"
        plan = plan_from_keeps(
            model, kept, optimal=solved, method=method, solve_s=time.perf_counter() - start
        )
        if plan.dram_bytes <= cap.dram_bytes:
            return plan
    why = "found nothing better" if kept is not None else "found no plan"
    return _with(
        cap,
        method=f"{cap.method} (the integer program {why} within {time_limit_s:g} s)",
        start=start,
    )


def _with(plan: TcmPlan, *, method: str, start: float) -> TcmPlan:
    return TcmPlan(
        plan.dram_bytes,
        plan.placement,
        plan.loads,
        plan.spills,
        plan.optimal,
        method,
        time.perf_counter() - start,
    )


def _belady_keeps(model: TcmModel) -> list[bool]:
    """Walk the steps holding every tensor between its uses while it fits; before a step
    that overflows, drop the held tensors whose next use is farthest."""
    gap_at = {(gap.tensor, gap.after): i for i, gap in enumerate(model.gaps)}
    kept = [True] * len(model.gaps)
    held: dict[int, int] = {}  # gap index -> its next use, for the gaps in the TCM now
    for step, names in enumerate(model.step_tensors):
        held = {i: before for i, before in held.items() if before > step}
        room = model.tcm_bytes - model.step_bytes[step]
        used = sum(model.gaps[i].bytes for i in held)
        for i in sorted(held, key=lambda i: (-held[i], -model.gaps[i].bytes, i)):
            if used <= room:
                break
            kept[i] = False
            used -= model.gaps[i].bytes
            del held[i]
        for name in names:
            gap = gap_at.get((name, step))
            if gap is not None:
                held[gap] = model.gaps[gap].before
    return kept


def _solve_keeps(model: TcmModel, time_limit_s: float) -> tuple[list[bool] | None, bool]:
    """(keep decisions, proved optimal) from HiGHS; (None, False) without a solution."""
    n_gaps = len(model.gaps)
    spilled = sorted({g.tensor for g in model.gaps if g.tensor in model.produced} - model.outputs)
    spill_var = {name: n_gaps + i for i, name in enumerate(spilled)}
    n_vars = n_gaps + len(spilled)
    # Minimize the bytes of dropped gaps (reloads) and of spills: -keep + spill, plus a constant.
    cost = np.zeros(n_vars)
    rows, cols, values, lower, upper = [], [], [], [], []
    for i, gap in enumerate(model.gaps):
        cost[i] = -gap.bytes
        if gap.tensor in spill_var:  # spill >= 1 - keep
            row = len(lower)
            rows += [row, row]
            cols += [i, spill_var[gap.tensor]]
            values += [1.0, 1.0]
            lower.append(1.0)
            upper.append(np.inf)
    for name, var in spill_var.items():
        cost[var] = model.sizes[name]
    spanning: list[list[int]] = [[] for _ in model.order]
    for i, gap in enumerate(model.gaps):
        for step in range(gap.after + 1, gap.before):
            spanning[step].append(i)
    for step, gaps in enumerate(spanning):
        if (
            gaps
            and sum(model.gaps[i].bytes for i in gaps) > model.tcm_bytes - model.step_bytes[step]
        ):
            row = len(lower)
            rows += [row] * len(gaps)
            cols += gaps
            values += [float(model.gaps[i].bytes) for i in gaps]
            lower.append(-np.inf)
            upper.append(float(model.tcm_bytes - model.step_bytes[step]))
    integrality = np.zeros(n_vars)
    integrality[:n_gaps] = 1
    constraints = []
    if lower:
        matrix = coo_array((values, (rows, cols)), shape=(len(lower), n_vars)).tocsr()
        constraints.append(LinearConstraint(matrix, lower, upper))
    result = milp(
        cost,
        integrality=integrality,
        bounds=Bounds(0, 1),
        constraints=constraints,
        options={"time_limit": max(time_limit_s, 0.01), "mip_rel_gap": 0.0, "disp": False},
    )
    if result.x is None:
        return None, False
    return [bool(x > 0.5) for x in result.x[:n_gaps]], result.status == 0
