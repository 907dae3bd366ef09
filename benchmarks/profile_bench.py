"""Profile fidelity: the per-kernel profile's sum against the end-to-end latency, per zoo model.

For every zoo model (``ZOO`` and ``LARGE_ZOO``) the untuned model (no tuning: the figure needs
no tuning budget, and untuned kernels are the slow, long ones a profile is read for first) is
compiled for llvm and profiled in a fresh process on one core, one thread
(``tuner.models.profile``: hooked runs alternate with ``time_evaluator`` rounds). Printed per
model: fused kernel calls per run, the end-to-end latency, the kernels' sum (VM builtins
included), the gap (end-to-end minus sum, in % of end-to-end), the VM builtins' share, and
the time to build the model's fused graph (``model_graph``: the graph event's content).

    python benchmarks/profile_bench.py [--json] [--models cnn,deep] [--core 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuner.metaschedule.targets import target_config  # noqa: E402
from tuner.models.compiled import compile_and_save  # noqa: E402
from tuner.models.graph import model_graph  # noqa: E402
from tuner.models.loaders import load_model  # noqa: E402
from tuner.models.profile import profile_saved_model  # noqa: E402
from tuner.models.zoo import LARGE_ZOO, ZOO  # noqa: E402


def measure(name: str, core: int) -> dict[str, Any]:
    """One model's row (see the module docstring)."""
    target = target_config("llvm", 1)
    model = load_model(f"zoo:{name}")
    started = time.perf_counter()
    graph = model_graph(model, target)
    graph_s = time.perf_counter() - started
    kernel_tasks = {n.kernel: n.task for n in graph.nodes if n.task}
    with tempfile.TemporaryDirectory(prefix="profile-bench-") as scratch:
        folder = compile_and_save(model, target, scratch, hookable=True)
        profile = profile_saved_model(
            folder, model, variant="untuned", kernel_tasks=kernel_tasks, threads=1, cores=[core]
        )
    builtins = sum(k.total_secs for k in profile.kernels if k.name.startswith("vm.builtin."))
    end = profile.end_to_end_secs
    return {
        "model": name,
        "kernel_calls": len(graph.nodes),
        "end_to_end_ms": end * 1e3,
        "kernel_sum_ms": profile.kernel_sum_secs * 1e3,
        "gap_pct": 100 * profile.gap_secs / end,
        "builtins_pct": 100 * builtins / end,
        "graph_s": graph_s,
        "runs": profile.runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--models", default=",".join(ZOO + LARGE_ZOO))
    parser.add_argument("--core", type=int, default=1, help="the CPU to profile on")
    args = parser.parse_args()
    rows = [measure(name, args.core) for name in args.models.split(",") if name]
    if args.json:
        print(json.dumps({"variant": "untuned", "threads": 1, "rows": rows}, indent=2))
        return 0
    print("untuned, 1 thread on one core; gap = end-to-end minus the kernels' sum")
    print(f"{'model':<12}{'calls':>6}{'e2e ms':>10}{'sum ms':>10}{'gap %':>8}{'builtins %':>11}"
          f"{'graph s':>9}")  # fmt: skip
    for r in rows:
        print(
            f"{r['model']:<12}{r['kernel_calls']:>6}{r['end_to_end_ms']:>10.3f}"
            f"{r['kernel_sum_ms']:>10.3f}{r['gap_pct']:>8.1f}{r['builtins_pct']:>11.1f}"
            f"{r['graph_s']:>9.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
