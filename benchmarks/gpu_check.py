"""A model tuned for a GPU: tuneloom with a ``cuda`` target, end to end, on this machine's GPU.

Writes the ONNX zoo CNN (``--batch``, ``--image``) into a scratch folder, tunes it with
``tuneloom tune MODEL --target cuda --trials T --time-budget S`` (a fresh process, its own
store; candidates built on every CPU core, each timed on the GPU), then runs ``tuneloom
evaluate MODEL --target cuda --db STORE --baseline onnxruntime``: the model compiled untuned
(TVM's DLight default GPU schedules for every kernel) and with the tuned schedules, each timed
on the GPU in its own fresh process, the outputs compared with ONNX Runtime's (on the CPU).
Prints the GPU, the tuning wall time and trials, how busy the GPU and the build cores were,
and tuned vs untuned on the same GPU in one run. ``--target llvm`` runs the same on the CPU
(to try the script on a machine without a GPU).

    python benchmarks/gpu_check.py [--trials 96] [--time-budget 150] [--batch 8] [--image 64]
        [--target cuda] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuneloom.commands.bench import tuneloom_json  # noqa: E402


def tuneloom(*argv: str) -> dict[str, Any]:
    """Run the CLI in a fresh process from the repository; its JSON document."""
    return tuneloom_json(*argv, cwd=ROOT)


def device_facts(target: str) -> dict[str, Any]:
    """The device the kernels run on, as TVM sees it."""
    import tvm

    if target != "cuda":
        return {"kind": "cpu"}
    gpu = tvm.cuda(0)
    if not gpu.exist:
        raise SystemExit("no CUDA GPU here (try --target llvm)")
    return {
        "kind": "cuda",
        "name": gpu.device_name,
        "compute_version": gpu.compute_version,
        "multiprocessors": gpu.multi_processor_count,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=96, help="the model's trial budget")
    parser.add_argument("--time-budget", type=float, default=150.0, help="seconds of tuning")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image", type=int, default=64, help="input height and width")
    parser.add_argument("--target", default="cuda", choices=("cuda", "llvm"))
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import onnx

    from tuner.models.zoo import build_onnx

    result: dict[str, Any] = {"device": device_facts(args.target)}
    with tempfile.TemporaryDirectory(prefix="tuneloom-gpu-check-") as scratch:
        work = Path(scratch)
        model = work / f"cnn-b{args.batch}-{args.image}.onnx"
        onnx.save(build_onnx("cnn", batch=args.batch, image_size=args.image), str(model))
        store = work / "store.db"
        tuned = tuneloom(
            "tune", str(model), "--target", args.target, "--trials", str(args.trials),
            "--time-budget", f"{args.time_budget:g}s", "--db", str(store), "--no-library",
            "--json",
        )  # fmt: skip
        job = tuned["jobs"][0]
        result["tune"] = {
            "wall_s": tuned["wall_s"],
            "state": job["state"],
            "detail": job["detail"],
            "trials": sum(t["trials"] for t in job["tasks"]),
            "tasks": {t["name"]: t["best_latency_s"] for t in job["tasks"]},
            "resources_busy_s": {r: v["busy_s"] for r, v in tuned["resources"].items()},
        }
        evaluated = tuneloom(
            "evaluate", str(model), "--target", args.target, "--db", str(store),
            "--baseline", "onnxruntime", "--repeat", str(args.repeat), "--json",
        )  # fmt: skip
        result["evaluate"] = {
            key: evaluated.get(key)
            for key in (
                "tvm_untuned_ms", "tvm_tuned_ms", "speedup_over_untuned", "baselines",
                "outputs_match", "max_abs_error", "errors",
            )
        }  # fmt: skip
    print(json.dumps(result, indent=2 if args.json else None))
    evaluation = result["evaluate"]
    if not args.json and evaluation["tvm_tuned_ms"]:
        print(
            f"{result['device'].get('name', 'cpu')}: untuned {evaluation['tvm_untuned_ms']:.4f} ms,"
            f" tuned {evaluation['tvm_tuned_ms']:.4f} ms "
            f"({evaluation['speedup_over_untuned']:.2f}x) after {result['tune']['wall_s']:.0f} s"
        )
    return 0 if evaluation["outputs_match"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
