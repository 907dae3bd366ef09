"""Tensor intrinsics loaded for the target at hand only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tuner.metaschedule.intrinsics import modules_for

ROOT = Path(__file__).resolve().parents[2]


def test_an_llvm_target_needs_only_its_architectures_intrinsics() -> None:
    assert modules_for("llvm", "x86_64-pc-linux-gnu") == ("x86",)
    assert modules_for("llvm", "aarch64-linux-gnu") == ("arm_cpu",)
    assert modules_for("llvm", "riscv64-unknown-linux-gnu") == ("riscv_cpu",)
    # Another kind, or an architecture not listed: the whole package, as TVM loads it.
    assert modules_for("cuda", "x86_64-pc-linux-gnu") is None
    assert modules_for("llvm", "hexagon") is None


def test_a_search_starts_without_other_targets_intrinsics_and_can_still_load_them() -> None:
    script = textwrap.dedent(
        """
        import json, sys
        from tvm.s_tir import TensorIntrin, meta_schedule as ms
        from tvm.target import Target
        from tuner.metaschedule.intrinsics import load_tensor_intrinsics
        from tuner.metaschedule.targets import target_config
        from tuner.metaschedule.workloads import workload_module

        cuda = "tvm.s_tir.tensor_intrin.cuda"
        target = Target(target_config("llvm", 1))
        out = {"loaded": load_tensor_intrinsics(target)}
        out["vnni"] = TensorIntrin.get("dot_16x4_vnni") is not None
        ctx = ms.TuneContext(
            workload_module("conv2d:1x8x8x8,8x3x3,pad=1"), target=target,
            space_generator="post-order-apply", task_name="t",
        )
        out["spaces"] = len(ctx.generate_design_space())
        out["cuda_before"] = cuda in sys.modules
        load_tensor_intrinsics(Target({"kind": "cuda", "arch": "sm_80"}))
        out["cuda_after"] = cuda in sys.modules
        out["wmma"] = TensorIntrin.get("wmma_sync_16x16x16_f16f16f32") is not None
        print(json.dumps(out))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["loaded"] == ["x86"] and out["vnni"] and out["spaces"] >= 1
    assert not out["cuda_before"]  # the search started without CUDA's intrinsics
    assert out["cuda_after"] and out["wmma"]  # a CUDA target still gets the whole package
