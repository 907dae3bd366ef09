"""`tuneloom memory`: the operator order with the least peak memory, checked against TVM."""

from __future__ import annotations

import argparse
from typing import Any

from tuneloom.cli import UserError, emit_result
from tuneloom.commands.options import add_model_options, model_settings

DESCRIPTION = """\
Read MODEL's dataflow graph after fusion (one node per fused kernel, the bytes of every tensor
between them), find the order of its kernels with the least peak memory, run the model in that
order and measure what TVM's own memory planner (StaticPlanBlockMemory) then allocates, beside
TVM's order. The outputs of both orders are compared on the same random inputs (exit 1 if they
differ). Peak memory is activation memory: weights are reported apart; the modelled peak counts
the model inputs, the measured figure is the storage the compiled VM allocates per call (inputs
are passed in). The order TVM's planner allocates the least for is searched too (on a
simulation of that planner) and measured the same way. So is the model rewritten for memory
(concatenations read by convolutions partitioned into per-part convolutions, sums of three
or more tensors accumulated in place as soon as their terms exist), ordered both ways: the
rewrite is applied only when it needs less storage than every order without it, with
outputs equal to the original's within 1e-4 (exit 1 if they differ). --tcm SIZE plans a fast
on-chip memory of that size for the least-peak order (ILP and greedy DRAM traffic, and the
traffic no plan can avoid; kernels stream operands that are not in it from and to DRAM, so
any size has a plan); --limit SIZE says whether each order's measured memory fits under SIZE.
Sizes take bytes or units: 65536, 64K, 1.5MiB, 2MB.
"""


TVM_ORDER = "TVM's order"
LEAST_PEAK = "least peak"
LEAST_PLANNED = "least planned"
REWRITTEN = "rewritten"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "memory",
        help="Reorder a model's kernels for the least peak memory; measure it with TVM.",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="zoo name or model file")
    parser.add_argument("--tcm", metavar="SIZE", help="plan a fast memory (TCM) of SIZE")
    parser.add_argument("--limit", metavar="SIZE", help="say whether each order fits in SIZE")
    parser.add_argument(
        "--target", default="llvm", help="codegen target: llvm or a JSON object (as for tune)"
    )
    add_model_options(parser)
    parser.add_argument(
        "--db",
        metavar="STORE",
        help="append the memory plan to this store as a memory event (the dashboard's Memory "
        "page shows it)",
    )
    parser.add_argument(
        "--job",
        metavar="ID",
        help="with --db: the job to file it under (default: the newest job of MODEL in the "
        "store, else a job memory:MODEL of its own)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def size_option(text: str | None, flag: str) -> int | None:
    """The bytes of a SIZE option (None when not given); UserError naming ``flag``."""
    from tuner.memory.sizes import parse_size

    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise UserError(f"{flag}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    tcm_bytes = size_option(args.tcm, "--tcm")
    limit_bytes = size_option(args.limit, "--limit")
    settings = model_settings(args)

    from tuner.metaschedule.targets import target_config
    from tuner.models.loaders import load_model

    if args.job and not args.db:
        raise UserError("--job needs --db STORE")
    target = target_config(args.target, 1)
    model = load_model(args.model, **settings)
    result = memory_report(model, target, tcm_bytes=tcm_bytes, limit_bytes=limit_bytes)
    plan = result.pop("_plan")
    if args.db:
        result["stored"] = store_plan(args.db, args.job, args.model, plan)
    emit_result(args, result, human_summary(result))
    same = result["outputs_match"] and result["rewritten"]["outputs_match"] is not False
    return 0 if same else 1


def store_plan(db: str, job: str | None, model_arg: str, plan: Any) -> dict[str, str]:
    """Append the plan as a ``memory`` event to ``db`` under ``job``; without one, under the
    newest job of the model in the store, else under a job ``memory:MODEL`` submitted for
    it (so the dashboard lists it)."""
    import time
    import uuid

    from collectors.events import JobEvent, MemoryEvent
    from collectors.stores import open_store

    source = f"tuneloom-memory-{uuid.uuid4().hex[:12]}"
    events: list[Any] = []
    now = time.time()
    with open_store(db) as store:
        if job is None:
            jobs = store.jobs()
            mine = jobs[jobs["model"].isin([model_arg, plan.model])] if len(jobs) else jobs
            if len(mine):
                job = str(mine.sort_values("submitted_ts")["job"].iloc[-1])
            else:
                job = f"memory:{model_arg}"
                events.append(
                    JobEvent(source=source, seq=0, ts=now, job=job, change="submitted",
                             model=model_arg, name="memory plan")
                )  # fmt: skip
        events.append(
            MemoryEvent(source=source, seq=len(events), ts=now, job=job, model=plan.model,
                        plan=plan.to_json())
        )  # fmt: skip
        store.append(events)
    return {"db": db, "job": job}


def memory_report(
    model: Any, target: dict[str, Any], *, tcm_bytes: int | None, limit_bytes: int | None
) -> dict[str, Any]:
    """Everything the command prints, as one JSON-ready dict."""
    from tuner.memory.apply import outputs_match, planned_memory, reorder_module
    from tuner.memory.relax_graph import fused_module, memory_graph

    fused = fused_module(model, target)
    graph = memory_graph(fused, target, name=model.name)
    best = best_order(graph)
    planned = planned_order(graph, best.order)
    reordered = reorder_module(fused, best.order)
    least_planned = reorder_module(fused, planned.order)
    tvm_planned = planned_memory(fused, target)
    best_planned = planned_memory(reordered, target)
    least_planned_memory = planned_memory(least_planned, target)
    result: dict[str, Any] = {
        "model": model.name,
        "target": target,
        "nodes": len(graph.nodes),
        "weight_bytes": graph.weight_bytes,
        "tvm_order_peak_bytes": best.tvm_order_peak_bytes,
        "optimal_peak_bytes": best.peak_bytes,
        "lower_bound_bytes": best.lower_bound_bytes,
        "exact": best.exact,
        "method": best.method,
        "order": [graph.nodes[i].name for i in best.order],
        "measured": {
            "tvm_order_bytes": tvm_planned.total_bytes,
            "optimal_order_bytes": best_planned.total_bytes,
            "least_planned_order_bytes": least_planned_memory.total_bytes,
            "tvm_order_storages": list(tvm_planned.storage_sizes),
            "optimal_order_storages": list(best_planned.storage_sizes),
            "least_planned_order_storages": list(least_planned_memory.storage_sizes),
        },
        "least_planned": {
            "order": [graph.nodes[i].name for i in planned.order],
            "simulated_bytes": planned.planned_bytes,
            "tvm_order_simulated_bytes": planned.tvm_order_planned_bytes,
            "lower_bound_bytes": planned.lower_bound_bytes,
            "method": planned.method,
            "solve_s": planned.solve_s,
        },
        "outputs_match": outputs_match(model, fused, reordered, target=target)
        and outputs_match(model, fused, least_planned, target=target),
        "notes": list(graph.notes),
    }
    baseline = min(best_planned.total_bytes, least_planned_memory.total_bytes)
    rewritten = rewritten_orders(model, fused, target, baseline)
    result["rewritten"] = rewritten.to_json()
    tcm = None
    if tcm_bytes is not None:
        try:
            plan = tcm_plan(graph, best.order, tcm_bytes)
        except ValueError as exc:  # a TCM every tensor fits in (or a negative size)
            raise UserError(f"--tcm: {exc}") from None
        result["tcm"] = tcm_json(plan, tcm_bytes)
        tcm = (LEAST_PEAK, tcm_bytes, plan)
    from tuner.memory.plan_event import memory_plan

    extra = None
    if rewritten.graph is not None:
        extra = (REWRITTEN, rewritten.graph, rewritten.order, rewritten.measured_bytes)
    result["_plan"] = memory_plan(
        graph,
        {
            TVM_ORDER: (graph.tvm_order, tvm_planned.total_bytes),
            LEAST_PEAK: (best.order, best_planned.total_bytes),
            LEAST_PLANNED: (planned.order, least_planned_memory.total_bytes),
        },
        tcm=tcm,
        rewritten=extra,
    )
    if limit_bytes is not None:
        result["limit"] = {
            "limit_bytes": limit_bytes,
            "fits_tvm_order": tvm_planned.total_bytes <= limit_bytes,
            "fits_optimal_order": best_planned.total_bytes <= limit_bytes,
            "fits_least_planned_order": least_planned_memory.total_bytes <= limit_bytes,
        }
    return result


def best_order(graph: Any) -> Any:
    """``min_peak_order(graph)``: the order with the least modelled peak."""
    from tuner.memory.order import min_peak_order

    return min_peak_order(graph)


def planned_order(graph: Any, least_peak_order: Any) -> Any:
    """``least_planned_order``: the order TVM's planner allocates the least for (simulated),
    searched from TVM's order, the least-peak order and the greedy orders."""
    from tuner.memory.planned_order import least_planned_order, search_starts

    return least_planned_order(graph, search_starts(graph, least_peak_order))


def rewritten_orders(model: Any, fused: Any, target: Any, baseline_bytes: int) -> Any:
    """``rewritten_order.rewritten_orders``: the model rewritten for memory, ordered and
    measured, applied only below ``baseline_bytes``."""
    from tuner.memory.rewritten_order import rewritten_orders as orders

    return orders(model, fused, target, baseline_bytes=baseline_bytes)


def tcm_plan(graph: Any, order: Any, tcm_bytes: int) -> Any:
    """``plan_tcm(graph, order, tcm_bytes)``: the DRAM traffic with a TCM of that size."""
    from tuner.memory.tcm import plan_tcm

    return plan_tcm(graph, order, tcm_bytes)


def tcm_json(plan: Any, tcm_bytes: int) -> dict[str, int]:
    """The DRAM traffic of a ``TcmResult`` (its ILP and greedy plans carry ``dram_bytes``)."""
    return {
        "tcm_bytes": tcm_bytes,
        "ilp_dram_bytes": int(plan.ilp.dram_bytes),
        "greedy_dram_bytes": int(plan.greedy.dram_bytes),
        "compulsory_dram_bytes": int(plan.compulsory_dram_bytes),
    }


def human_summary(result: dict[str, Any]) -> str:
    """A few lines: modelled and measured peaks side by side, outputs, TCM, limit."""
    from tuner.memory.sizes import format_bytes as fmt

    measured = result["measured"]
    bound = fmt(result["lower_bound_bytes"])
    how = "exact" if result["exact"] else f"heuristic, lower bound {bound}"
    lines = [
        f"{result['model']}: {result['nodes']} kernels, weights {fmt(result['weight_bytes'])} "
        "(not counted below)",
        f"{'peak activation memory':<28}{'TVM order':>12}{'best order':>12}{'change':>9}",
        _row("modelled", result["tvm_order_peak_bytes"], result["optimal_peak_bytes"])
        + f"  ({how}, {result['method']})",
        _row(
            "planned by TVM (measured)",
            measured["tvm_order_bytes"],
            measured["optimal_order_bytes"],
        ),
        _row(
            "least planned (measured)",
            measured["tvm_order_bytes"],
            measured["least_planned_order_bytes"],
        )
        + "  (searched on TVM's planner, lower bound "
        + f"{fmt(result['least_planned']['lower_bound_bytes'])})",
        "outputs unchanged by the new order: " + ("yes" if result["outputs_match"] else "NO"),
        rewritten_line(result["rewritten"], measured["tvm_order_bytes"]),
    ]
    if "tcm" in result:
        tcm = result["tcm"]
        lines.append(
            f"TCM {fmt(tcm['tcm_bytes'])}: DRAM traffic ILP {fmt(tcm['ilp_dram_bytes'])}, "
            f"greedy {fmt(tcm['greedy_dram_bytes'])}, compulsory "
            f"{fmt(tcm['compulsory_dram_bytes'])}"
        )
    if "limit" in result:
        limit = result["limit"]

        def verdict(fits: bool, size: int) -> str:
            return f"{'fits' if fits else 'does not fit'} ({fmt(size)})"

        lines.append(
            f"limit {fmt(limit['limit_bytes'])}: TVM's order "
            f"{verdict(limit['fits_tvm_order'], measured['tvm_order_bytes'])}, the best order "
            f"{verdict(limit['fits_optimal_order'], measured['optimal_order_bytes'])}, the "
            "least-planned order "
            f"{verdict(limit['fits_least_planned_order'], measured['least_planned_order_bytes'])}"
        )
    return "\n".join(lines)


def rewritten_line(rewritten: dict[str, Any], tvm_bytes: int) -> str:
    """One line: what was rewritten, its measured storage and whether it is applied."""
    if not rewritten["rewrites"]:
        return f"rewritten: {rewritten['reason']}"
    kinds = ", ".join(
        f"{count} {kind.replace('_', ' ')}" for kind, count in rewritten["rewrites"].items()
    )
    same = {True: "yes", False: "NO", None: "-"}[rewritten["outputs_match"]]
    return (
        _row("rewritten (measured)", tvm_bytes, rewritten["measured_bytes"])
        + f"  ({kinds}; {rewritten['reason']}; outputs unchanged: {same})"
    )


def _row(label: str, tvm: int, best: int) -> str:
    from tuner.memory.sizes import format_bytes as fmt

    change = f"{(best - tvm) / tvm:+.1%}" if tvm else "-"
    return f"  {label:<26}{fmt(tvm):>12}{fmt(best):>12}{change:>9}"
