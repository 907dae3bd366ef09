"""Graph-level memory planning, measured side by side in one run.

1. Models: every zoo model and ``--randwire-seeds`` more randomly wired networks. For each, the
   peak activation memory of TVM's order and of the least-peak order (``min_peak_order``),
   modelled (the graph's liveness, model inputs included) and measured (the storage the
   compiled VM allocates per call after TVM's ``StaticPlanBlockMemory``, ``planned_memory``),
   whether the order is proven optimal, the solve time, and that both orders compute the same
   outputs. Beside it the order TVM's planner allocates the least for (``least_planned_order``,
   searched on the simulated planner), simulated and measured, with its lower bound. Beside
   those the model **rewritten** for memory (``rewritten_orders``: sums of three or more
   tensors accumulated in place, concatenations partitioned, separable convolutions run on
   channel slices; each rewrite tried, the one needing the least storage kept), its
   least-peak and least-planned orders measured the same way, its modelled least peak and
   lower bound, whether it is applied (less storage than every order without it), and that
   its outputs equal the original's. Then the
   DRAM traffic with a TCM of 1/4 and 1/8 of TVM's modelled peak for the least-peak order: ILP
   plan vs greedy plan vs the compulsory traffic (``plan_tcm``; kernels stream what is not in
   the TCM), with the solve time and whether the ILP proved optimality within its limit.
2. Scaling: solve time vs graph size on ``random_dag(n, seed)`` graphs, exact (the default
   search) and heuristic only (``exact_limit=0``), with the heuristic's peak over the exact one.

    python benchmarks/memory_bench.py [--json] [--models cnn,randwire] [--randwire-seeds 2,3]
        [--sizes 10,20,30,40,60,80] [--seeds 3] [--time-limit 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuner.memory.apply import outputs_match, planned_memory, reorder_module  # noqa: E402
from tuner.memory.relax_graph import fused_module, memory_graph  # noqa: E402
from tuner.memory.sizes import format_bytes  # noqa: E402
from tuner.metaschedule.targets import target_config  # noqa: E402
from tuner.models.loaders import load_model  # noqa: E402
from tuner.models.zoo import RANDWIRE, ZOO, RandWireSpec, build_randwire  # noqa: E402

TCM_FRACTIONS = (4, 8)  # TCM = TVM's modelled peak / fraction


def model_row(
    name: str, model: Any, target: dict[str, Any], time_limit_s: float, tcm_limit_s: float
) -> dict[str, Any]:
    """Modelled and measured peaks of TVM's order, the least-peak order and the
    least-planned order, and the TCM traffic."""
    from tuner.memory.order import min_peak_order
    from tuner.memory.planned_order import least_planned_order, search_starts
    from tuner.memory.rewritten_order import rewritten_orders

    fused = fused_module(model, target)
    graph = memory_graph(fused, target, name=name)
    best = min_peak_order(graph, time_limit_s=time_limit_s)
    planned = least_planned_order(graph, search_starts(graph, best.order))
    reordered = reorder_module(fused, best.order)
    least = reorder_module(fused, planned.order)
    tvm_planned, best_planned = planned_memory(fused, target), planned_memory(reordered, target)
    least_planned = planned_memory(least, target)
    baseline = min(best_planned.total_bytes, least_planned.total_bytes)
    rewritten = rewritten_orders(
        model, fused, target, baseline_bytes=baseline, time_limit_s=time_limit_s
    )
    best_ours = min(baseline, rewritten.measured_bytes if rewritten.applied else baseline)
    row: dict[str, Any] = {
        "model": name,
        "nodes": len(graph.nodes),
        "weight_bytes": graph.weight_bytes,
        "modelled_tvm_bytes": best.tvm_order_peak_bytes,
        "modelled_best_bytes": best.peak_bytes,
        "modelled_ratio": best.peak_bytes / best.tvm_order_peak_bytes,
        "measured_tvm_bytes": tvm_planned.total_bytes,
        "measured_best_bytes": best_planned.total_bytes,
        "measured_ratio": best_planned.total_bytes / tvm_planned.total_bytes,
        "exact": best.exact,
        "lower_bound_bytes": best.lower_bound_bytes,
        "method": best.method,
        "solve_s": best.solve_s,
        "least_planned_simulated_bytes": planned.planned_bytes,
        "least_planned_measured_bytes": least_planned.total_bytes,
        "least_planned_ratio": least_planned.total_bytes / tvm_planned.total_bytes,
        "least_planned_lower_bound_bytes": planned.lower_bound_bytes,
        "least_planned_start": planned.start,
        "least_planned_evaluations": planned.evaluations,
        "least_planned_solve_s": planned.solve_s,
        "rewrites": rewritten.rewrites,
        "rewritten_applied": rewritten.applied,
        "rewritten_reason": rewritten.reason,
        "rewritten_modelled_bytes": rewritten.peak_bytes,
        "rewritten_lower_bound_bytes": rewritten.lower_bound_bytes,
        "rewritten_exact": rewritten.exact,
        "rewritten_tvm_order_measured_bytes": rewritten.tvm_order_measured_bytes,
        "rewritten_least_peak_measured_bytes": rewritten.least_peak_measured_bytes,
        "rewritten_least_planned_measured_bytes": rewritten.least_planned_measured_bytes,
        "rewritten_measured_bytes": rewritten.measured_bytes,
        "rewritten_outputs_match": rewritten.outputs_match,
        "rewritten_order_from": rewritten.order_from,
        "rewritten_alternatives": [dict(a) for a in rewritten.alternatives],
        "best_measured_bytes": best_ours,
        "best_ratio": tvm_planned.total_bytes / best_ours,
        "outputs_match": outputs_match(model, fused, reordered, target=target)
        and outputs_match(model, fused, least, target=target)
        and rewritten.outputs_match is not False,
        "tcm": [
            tcm_row(graph, best.order, best.tvm_order_peak_bytes // f, f"1/{f}", tcm_limit_s)
            for f in TCM_FRACTIONS
        ],
    }
    return row


def tcm_row(
    graph: Any, order: Any, tcm_bytes: int, size: str, time_limit_s: float
) -> dict[str, Any]:
    """DRAM traffic of the ILP and greedy TCM plans against the compulsory traffic, for a
    TCM of ``tcm_bytes`` (``size`` says how it was chosen)."""
    from tuner.memory.tcm import plan_tcm

    row: dict[str, Any] = {"size": size, "tcm_bytes": tcm_bytes, "ilp_time_limit_s": time_limit_s}
    try:
        plan = plan_tcm(graph, order, tcm_bytes, time_limit_s=time_limit_s)
    except ValueError as exc:  # a TCM that holds the whole peak
        return {**row, "skipped": str(exc)}
    ilp, greedy, compulsory = (
        plan.ilp.dram_bytes,
        plan.greedy.dram_bytes,
        plan.compulsory_dram_bytes,
    )
    row.update(
        ilp_dram_bytes=ilp,
        greedy_dram_bytes=greedy,
        compulsory_dram_bytes=compulsory,
        ilp_over_compulsory=_ratio(ilp, compulsory),
        greedy_over_ilp=_ratio(greedy, ilp),
        ilp_optimal=plan.ilp.optimal,
        ilp_method=plan.ilp.method,
        ilp_solve_s=plan.ilp.solve_s,
        greedy_solve_s=plan.greedy.solve_s,
    )
    return row


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def scaling_rows(sizes: list[int], seeds: int, time_limit_s: float) -> list[dict[str, Any]]:
    """Per graph size: median solve time exact and heuristic, how many were proven optimal,
    and the heuristic's peak over the exact search's."""
    from tuner.memory.order import min_peak_order
    from tuner.memory.synthetic import random_dag

    rows = []
    for n in sizes:
        exact_s, heuristic_s, ratios, proven = [], [], [], 0
        for seed in range(seeds):
            graph = random_dag(n, seed)
            exact = min_peak_order(graph, time_limit_s=time_limit_s)
            heuristic = min_peak_order(graph, time_limit_s=time_limit_s, exact_limit=0)
            exact_s.append(exact.solve_s)
            heuristic_s.append(heuristic.solve_s)
            ratios.append(heuristic.peak_bytes / exact.peak_bytes if exact.peak_bytes else 1.0)
            proven += exact.exact
        rows.append({
            "nodes": n,
            "graphs": seeds,
            "exact_solve_s": statistics.median(exact_s),
            "exact_max_solve_s": max(exact_s),
            "proven_optimal": proven,
            "heuristic_solve_s": statistics.median(heuristic_s),
            "heuristic_over_exact_peak": max(ratios),
        })  # fmt: skip
    return rows


def models_to_run(names: list[str], randwire_seeds: list[int]) -> list[tuple[str, Any]]:
    """(label, loaded model) for the zoo names and the extra randomly wired networks (the
    wiring of ``zoo:randwire`` drawn from other seeds)."""
    models = [(name, load_model(f"zoo:{name}")) for name in names]
    base = RANDWIRE["randwire"]
    for seed in randwire_seeds:
        spec = RandWireSpec(base.graph, base.nodes, base.stages, wiring_seed=seed)
        label = f"randwire-seed{seed}"
        models.append((label, load_model(build_randwire(spec), name=label)))
    return models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(ZOO), help="zoo names (default: all)")
    parser.add_argument("--randwire-seeds", default="2,3", help="extra randomly wired nets")
    parser.add_argument("--sizes", default="10,20,30,40,60,80", help="random DAG sizes")
    parser.add_argument("--seeds", type=int, default=3, help="random DAGs per size")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve")
    parser.add_argument("--tcm-time-limit", type=float, default=60.0, help="ILP seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    target = target_config("llvm", 1)
    names = [n for n in args.models.split(",") if n]
    seeds = [int(s) for s in args.randwire_seeds.split(",") if s]
    started = time.perf_counter()
    rows = [
        model_row(label, model, target, args.time_limit, args.tcm_time_limit)
        for label, model in models_to_run(names, seeds)
    ]
    sizes = [int(n) for n in args.sizes.split(",") if n]
    result = {
        "target": target,
        "models": rows,
        "scaling": scaling_rows(sizes, args.seeds, args.time_limit),
        "wall_s": time.perf_counter() - started,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print_result(result)
    return 0 if all(r["outputs_match"] for r in rows) else 1


def print_result(result: dict[str, Any]) -> None:
    fmt = format_bytes
    print("activation memory: TVM's order -> least-peak order (ratio), modelled and measured;")
    print("least planned: the order searched on TVM's planner, measured (ratio, lower bound)")
    header = (
        f"{'model':<18}{'nodes':>6}{'modelled':>30}{'measured (TVM plan)':>32}"
        f"{'least planned':>34}{'exact':>7}{'solve s':>9}  outputs"
    )
    print(header)
    for r in result["models"]:
        modelled = (
            f"{fmt(r['modelled_tvm_bytes'])} -> {fmt(r['modelled_best_bytes'])} "
            f"({r['modelled_ratio']:.2f})"
        )
        measured = (
            f"{fmt(r['measured_tvm_bytes'])} -> {fmt(r['measured_best_bytes'])} "
            f"({r['measured_ratio']:.2f})"
        )
        least = (
            f"{fmt(r['least_planned_measured_bytes'])} ({r['least_planned_ratio']:.2f}, "
            f">= {fmt(r['least_planned_lower_bound_bytes'])})"
        )
        same = "same" if r["outputs_match"] else "DIFFER"
        print(
            f"{r['model']:<18}{r['nodes']:>6}{modelled:>30}{measured:>32}{least:>34}"
            f"{'yes' if r['exact'] else 'no':>7}{r['solve_s']:>9.2f}  {same}"
        )
    print(
        "\nrewritten for memory (sums accumulated in place; separable convolutions on channel "
        "slices): measured TVM's order of the rewritten model, its best order, modelled least "
        "peak; best of ours = TVM / best (the rewrite kept: the least storage of those tried)"
    )
    print(
        f"{'model':<18}{'rewrites':>24}{'TVM order':>12}{'best order':>12}{'modelled':>12}"
        f"{'applied':>9}{'TVM / best of ours':>20}"
    )
    for r in result["models"]:
        kinds = ", ".join(f"{n} {k}" for k, n in r["rewrites"].items()) or "none"
        if r["rewritten_measured_bytes"] is None:
            cells = f"{'-':>12}{'-':>12}{'-':>12}"
        else:
            cells = (
                f"{fmt(r['rewritten_tvm_order_measured_bytes']):>12}"
                f"{fmt(r['rewritten_measured_bytes']):>12}"
                f"{fmt(r['rewritten_modelled_bytes']):>12}"
            )
        print(
            f"{r['model']:<18}{kinds:>24}{cells}{'yes' if r['rewritten_applied'] else 'no':>9}"
            f"{r['best_ratio']:>20.2f}"
        )
        for other in r["rewritten_alternatives"]:
            kinds = ", ".join(f"{n} {k}" for k, n in other["rewrites"].items())
            print(f"{'':<18}  also tried: {kinds}: {fmt(other['measured_bytes'])}")
    print(
        "\nDRAM traffic of the least-peak order with a TCM of TVM's modelled peak / 4 and / 8 "
        "(kernels stream what is not in the TCM)"
    )
    print(
        f"{'model':<18}{'TCM':>18}{'ILP':>12}{'greedy':>12}{'compulsory':>12}"
        f"{'greedy/ILP':>12}{'ILP s':>8}  proven"
    )
    for r in result["models"]:
        for t in r["tcm"]:
            label = f"{fmt(t['tcm_bytes'])} ({t['size']})"
            if "skipped" in t:
                print(f"{r['model']:<18}{label:>18}  skipped: {t['skipped']}")
                continue
            ratio = t["greedy_over_ilp"]
            proven = "yes" if t["ilp_optimal"] else f"no (limit {t['ilp_time_limit_s']:g} s)"
            print(
                f"{r['model']:<18}{label:>18}{fmt(t['ilp_dram_bytes']):>12}"
                f"{fmt(t['greedy_dram_bytes']):>12}{fmt(t['compulsory_dram_bytes']):>12}"
                f"{'-' if ratio is None else f'{ratio:.2f}':>12}{t['ilp_solve_s']:>8.1f}  "
                f"{proven}"
            )
    print("\nsolve time vs graph size (random_dag; medians; heuristic = exact_limit=0)")
    columns = ("nodes", 6), ("exact s", 10), ("max s", 10), ("proven", 8), ("heuristic s", 13)
    print("".join(f"{name:>{width}}" for name, width in columns) + f"{'heur/exact':>12}")
    for s in result["scaling"]:
        print(
            f"{s['nodes']:>6}{s['exact_solve_s']:>10.3f}{s['exact_max_solve_s']:>10.3f}"
            f"{s['proven_optimal']:>5}/{s['graphs']:<2}{s['heuristic_solve_s']:>13.3f}"
            f"{s['heuristic_over_exact_peak']:>12.3f}"
        )
    print(f"\nwall {result['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
