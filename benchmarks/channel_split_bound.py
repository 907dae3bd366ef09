"""The least peak of a model's graph when its kernels run on channel slices, modelled.

For the model rewritten for memory (``rewrite_for_memory``, the graph whose least peak
``memory_bench.py`` reports), the kernels that touch the largest activations are split into
``parts`` channel slices (``channel_split``: channel-wise kernels per slice; convolutions
split by output channels, accumulated over input slices, or accumulated in place of another
input), every combination of those choices (up to ``FULL_SEARCH_PARTS`` slices; beyond,
coordinate descent over them) is searched with the least-peak search (``min_peak_order``),
with and without recomputing the stem once per reader, and the least peak is printed beside
the unsplit one. Model inputs are counted as 0 bytes: TVM does not
plan them, so this is the floor of what its planner could allocate. The tensors live at the
peak step of the best order say what stops it going lower.

    python benchmarks/channel_split_bound.py [--model randwire-b] [--parts 2,4] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuner.memory.channel_split import (  # noqa: E402
    COPY,
    Split,
    largest_region,
    recompute_per_reader,
    split_channels,
    without_inputs,
)
from tuner.memory.graph import MemoryGraph  # noqa: E402
from tuner.memory.order import min_peak_order  # noqa: E402
from tuner.memory.profile import live_tensors, memory_profile  # noqa: E402

KIB = 1024
FULL_SEARCH_PARTS = 2  # above, coordinate descent over the choices


def choices(graph: MemoryGraph, index: int, kind: Split) -> list[Split]:
    """Every way to split node ``index``: per slice (channel-wise), or for a reduction by
    output channels, accumulated, or accumulated in place of each other planned input."""
    if kind.reduces is None:
        return [kind]
    if graph.tensors[kind.reduces].producer is None:  # reads a model input: split outputs
        return [kind]
    out = [kind, Split(kind.reduces, accumulate=True)]
    for t in graph.nodes[index].inputs:
        tensor = graph.tensors[t]
        if t != kind.reduces and tensor.producer is not None and tensor.bytes:
            out.append(Split(kind.reduces, accumulate=True, into=t))
    return out


def best_split(
    graph: MemoryGraph, kinds: dict[str, Split], parts: int, time_limit_s: float
) -> dict[str, Any]:
    """The least peak over the split choices of the region's nodes: every combination when
    ``parts`` <= ``FULL_SEARCH_PARTS``, else coordinate descent (from every reduction
    accumulated, each node's choices tried in turn while one lowers the peak)."""
    index: dict[str, list[int]] = {}
    for i, n in enumerate(graph.nodes):
        index.setdefault(n.name.split(COPY)[0], []).append(i)
    region = largest_region(graph)
    names = sorted({graph.nodes[i].name.split(COPY)[0] for i in region} & set(kinds))
    options = {name: choices(graph, index[name][0], kinds[name]) for name in names}
    started = time.perf_counter()
    seen: dict[tuple[Split, ...], dict[str, Any] | None] = {}

    def evaluate(combo: dict[str, Split]) -> dict[str, Any] | None:
        key = tuple(combo[name] for name in names)
        if key not in seen:
            splits = {i: combo[name] for name in combo for i in index[name]}
            try:
                split = split_channels(graph, splits, parts)
            except ValueError:  # an accumulation in place of a tensor read after it
                seen[key] = None
            else:
                found = min_peak_order(split, time_limit_s=time_limit_s)
                seen[key] = {
                    "peak_bytes": found.peak_bytes,
                    "exact": found.exact,
                    "combo": dict(combo),
                    "graph": split,
                    "order": found.order,
                }
        return seen[key]

    best: dict[str, Any] | None = None
    if parts <= FULL_SEARCH_PARTS:
        for picked in itertools.product(*options.values()):
            best = _better(best, evaluate(dict(zip(names, picked, strict=True))))
    else:
        combo = {name: opts[1] if len(opts) > 1 else opts[0] for name, opts in options.items()}
        best = evaluate(combo)
        improved = True
        while improved:
            improved = False
            for name in names:
                for option in options[name]:
                    trial = evaluate({**best["combo"], name: option})  # type: ignore[index]
                    if trial is not None and trial["peak_bytes"] < best["peak_bytes"]:  # type: ignore[index]
                        best, improved = trial, True
    assert best is not None
    split, order = best["graph"], best["order"]
    profile = memory_profile(split, order)
    step = profile.index(max(profile))
    live = [t for t in live_tensors(split, order)[step] if split.tensors[t].bytes]
    tried = [r for r in seen.values() if r is not None]
    return {
        "parts": parts,
        "peak_bytes": best["peak_bytes"],
        "exact": best["exact"],
        "search": "every combination" if parts <= FULL_SEARCH_PARTS else "coordinate descent",
        "combinations": len(tried),
        "impossible": len(seen) - len(tried),
        "nodes": len(split.nodes),
        "solve_s": round(time.perf_counter() - started, 1),
        "peak_node": split.nodes[order[step]].name,
        "peak_tensors": {t: split.tensors[t].bytes for t in live},
        "combo": {k: _describe(v) for k, v in best["combo"].items()},
    }


def _better(best: dict[str, Any] | None, other: dict[str, Any] | None) -> dict[str, Any] | None:
    if other is None:
        return best
    if best is None or other["peak_bytes"] < best["peak_bytes"]:
        return other
    return best


def _describe(split: Split) -> str:
    if split.reduces is None:
        return "per slice"
    if not split.accumulate:
        return "by output channels"
    return f"accumulated into {split.into}" if split.into else "accumulated"


def analyse(model_name: str, parts_list: list[int], time_limit_s: float) -> dict[str, Any]:
    from tuner.memory.channel_kinds import channel_kinds
    from tuner.memory.relax_graph import memory_graph
    from tuner.memory.rewrite import rewrite_for_memory
    from tuner.models.loaders import load_model

    target = {"kind": "llvm", "num-cores": 1}
    model = load_model(f"zoo:{model_name}")
    rewritten = rewrite_for_memory(model, target)
    graph = without_inputs(memory_graph(rewritten.mod, target, name=model_name))
    kinds = {graph.nodes[i].name: k for i, k in channel_kinds(rewritten.mod, graph).items()}
    unsplit = min_peak_order(graph, time_limit_s=time_limit_s)
    stems = [
        i
        for i, n in enumerate(graph.nodes)
        if all(graph.tensors[t].producer is None for t in n.inputs)
        and len(n.outputs) == 1
        and len(graph.tensors[n.outputs[0]].consumers) > 1
    ]
    variants = {"kept": graph}
    if stems:
        variants["recomputed per reader"] = recompute_per_reader(graph, stems[0])
    rows = []
    for label, variant in variants.items():
        for parts in parts_list:
            row = best_split(variant, kinds, parts, time_limit_s)
            row["stem"] = label
            rows.append(row)
    return {
        "model": model_name,
        "rewrites": rewritten.rewrites,
        "unsplit_peak_bytes": unsplit.peak_bytes,
        "unsplit_exact": unsplit.exact,
        "split": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="randwire-b")
    parser.add_argument("--parts", default="2,4")
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    parts = [int(p) for p in args.parts.split(",")]
    result = analyse(args.model, parts, args.time_limit)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    unsplit = result["unsplit_peak_bytes"] / KIB
    print(
        f"{result['model']}: least peak without model inputs, unsplit {unsplit:.2f} KiB "
        f"(exact: {result['unsplit_exact']})"
    )
    for row in result["split"]:
        print(
            f"  {row['parts']} parts, stem {row['stem']}: {row['peak_bytes'] / KIB:.2f} KiB "
            f"(exact: {row['exact']}; {row['combinations']} combinations, "
            f"{row['impossible']} impossible, {row['nodes']} nodes, {row['solve_s']} s)"
        )
        live = ", ".join(f"{t} {b / KIB:g}" for t, b in row["peak_tensors"].items())
        print(f"    peak at {row['peak_node']}: {live} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
