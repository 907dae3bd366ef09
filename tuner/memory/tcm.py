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
    plan_from_decisions,
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

GREEDY_METHOD = (
    "greedy: a step's operands first (streaming those used again farthest ahead when they "
    "do not fit), then drop the tensor used again farthest ahead (Belady)"
)
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
    negative size or one that holds the whole peak)."""
    greedy = greedy_plan(graph, order, tcm_bytes)
    ilp = ilp_plan(graph, order, tcm_bytes, time_limit_s=time_limit_s, cap=greedy)
    return TcmResult(ilp, greedy, compulsory_dram_bytes(graph, tcm_bytes))


def greedy_plan(graph: MemoryGraph, order: Sequence[int], tcm_bytes: int) -> TcmPlan:
    """Step by step: make the node's operands resident (those arriving in the TCM first,
    then the ones used again soonest; the rest stream), then drop the other held tensors
    used again farthest ahead until the rest fits; keep everything else."""
    start = time.perf_counter()
    model = tcm_model(graph, order, tcm_bytes)
    resident, kept = _greedy_decisions(model)
    return plan_from_decisions(
        model,
        resident,
        kept,
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
    """The plan with the fewest DRAM bytes, from an integer linear program: a binary
    resident variable per use, a binary keep variable per gap between two uses, a write
    variable per tensor a node writes, one TCM capacity row per step. Never above ``cap``
    (the greedy plan when None): when HiGHS stops at ``time_limit_s`` without a better
    plan, that plan is returned."""
    start = time.perf_counter()
    model = tcm_model(graph, order, tcm_bytes)
    if cap is None:
        resident, kept = _greedy_decisions(model)
        cap = plan_from_decisions(
            model, resident, kept, optimal=False, method=GREEDY_METHOD, solve_s=0.0
        )
    if cap.optimal:
        return _with(cap, method=f"{cap.method} (meets the compulsory traffic)", start=start)
    decisions, solved = _solve(model, time_limit_s)
    if decisions is not None:
        method = ILP_METHOD if solved else f"{ILP_METHOD}, best found in {time_limit_s:g} s"
        plan = plan_from_decisions(
            model, *decisions, optimal=solved, method=method, solve_s=time.perf_counter() - start
        )
        if plan.dram_bytes <= cap.dram_bytes:
            return plan
    why = "found nothing better" if decisions is not None else "found no plan"
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
        plan.streamed,
    )


def _greedy_decisions(model: TcmModel) -> tuple[list[bool], list[bool]]:
    """(resident per use, kept per gap) of the greedy rule."""
    resident = [False] * len(model.uses)
    kept = [False] * len(model.gaps)
    uses_at: list[list[int]] = [[] for _ in model.order]
    for i, use in enumerate(model.uses):
        uses_at[use.step].append(i)
    gap_after = {gap.first: j for j, gap in enumerate(model.gaps)}
    held: set[int] = set()  # gaps kept so far whose tensor is in the TCM now
    for here in uses_at:
        arriving = {model.gap_before[i] for i in here} & held
        held -= arriving

        def rank(i: int, arriving: set[int | None] = arriving) -> tuple[bool, int, int]:
            gap = gap_after.get(i)
            next_use = model.gaps[gap].before if gap is not None else len(model.order)
            return (model.gap_before[i] not in arriving, next_use, model.uses[i].bytes)

        room = model.tcm_bytes
        for i in sorted(here, key=rank):
            if model.uses[i].bytes <= room:
                resident[i] = True
                room -= model.uses[i].bytes
            elif model.gap_before[i] in arriving:
                kept[model.gap_before[i]] = False
        used = sum(model.gaps[j].bytes for j in held)
        for j in sorted(held, key=lambda j: (-model.gaps[j].before, -model.gaps[j].bytes, j)):
            if used <= room:
                break
            kept[j] = False
            held.discard(j)
            used -= model.gaps[j].bytes
        for i in here:
            gap = gap_after.get(i)
            if resident[i] and gap is not None:
                kept[gap] = True
                held.add(gap)
    return resident, kept


def _solve(
    model: TcmModel, time_limit_s: float
) -> tuple[tuple[list[bool], list[bool]] | None, bool]:
    """((resident, kept), proved optimal) from HiGHS; (None, False) without a solution."""
    n_uses, n_gaps = len(model.uses), len(model.gaps)
    written = sorted({u.tensor for u in model.uses if u.writes})
    write_var = {name: n_uses + n_gaps + i for i, name in enumerate(written)}
    n_vars = n_uses + n_gaps + len(written)
    # Reads cost their bytes unless the gap before them was kept: a constant minus keeps.
    cost = np.zeros(n_vars)
    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    lower: list[float] = []
    upper: list[float] = []

    def row(entries: list[tuple[int, float]], low: float, high: float) -> None:
        index = len(lower)
        for col, value in entries:
            rows.append(index)
            cols.append(col)
            values.append(value)
        lower.append(low)
        upper.append(high)

    for j, gap in enumerate(model.gaps):
        cost[n_uses + j] = -gap.bytes
        row([(n_uses + j, 1.0), (gap.first, -1.0)], -np.inf, 0.0)  # keep <= resident before
        row([(n_uses + j, 1.0), (gap.first + 1, -1.0)], -np.inf, 0.0)  # and after
    for name, var in write_var.items():
        cost[var] = model.sizes[name]
        row([(var, 1.0), (model.first_use[name], 1.0)], 1.0, np.inf)  # streamed out
        for j in model.gaps_of.get(name, ()):
            row([(var, 1.0), (n_uses + j, 1.0)], 1.0, np.inf)  # dropped before a read
    per_step: list[list[tuple[int, float]]] = [[] for _ in model.order]
    for i, use in enumerate(model.uses):
        per_step[use.step].append((i, float(use.bytes)))
    for j, gap in enumerate(model.gaps):
        for step in range(gap.after + 1, gap.before):
            per_step[step].append((n_uses + j, float(gap.bytes)))
    for entries in per_step:
        if sum(value for _, value in entries) > model.tcm_bytes:
            row(entries, -np.inf, float(model.tcm_bytes))
    low = np.zeros(n_vars)
    high = np.ones(n_vars)
    for i, use in enumerate(model.uses):
        if use.bytes > model.tcm_bytes:
            high[i] = 0.0
    for name, var in write_var.items():
        if name in model.outputs:
            low[var] = 1.0
    integrality = np.zeros(n_vars)
    integrality[: n_uses + n_gaps] = 1
    constraints = []
    if lower:
        matrix = coo_array((values, (rows, cols)), shape=(len(lower), n_vars)).tocsr()
        constraints.append(LinearConstraint(matrix, lower, upper))
    result = milp(
        cost,
        integrality=integrality,
        bounds=Bounds(low, high),
        constraints=constraints,
        options={"time_limit": max(time_limit_s, 0.01), "mip_rel_gap": 0.0, "disp": False},
    )
    if result.x is None:
        return None, False
    x = result.x
    resident = [bool(v > 0.5) for v in x[:n_uses]]
    kept = [bool(v > 0.5) for v in x[n_uses : n_uses + n_gaps]]
    return (resident, kept), result.status == 0
