"""Codegen targets: a user's target (a name, JSON text or a dict) as a checked TVM target
config with the host CPU and the device's core count filled in.

Two kinds: ``llvm`` (kernels for this host's CPU, profiled on its device cores) and ``cuda``
(kernels for NVIDIA GPUs, profiled on this host's GPUs; the host code is llvm for this CPU).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import tvm
from tvm.target import Target

from tuner._base import TunerError

TARGET_KINDS = ("llvm", "cuda")
CPU_KIND, GPU_KIND = "llvm", "cuda"
# Per-block limits every CUDA GPU since compute capability 2.0 has (48 KiB of shared memory
# without opting in to more): a cuda target without a GPU here is searched within them.
CUDA_DEFAULT_LIMITS = {"max_threads_per_block": 1024, "max_shared_memory_per_block": 49152}


def host_cpu() -> str:
    """This machine's CPU name as LLVM knows it (``generic`` if LLVM cannot tell)."""
    codegen = tvm.target.codegen
    name = str(codegen.llvm_get_system_cpu())
    valid = name and codegen.llvm_is_valid_cpu(name, str(codegen.llvm_get_system_triple()))
    return name if valid else "generic"


def target_config(text: str | Mapping[str, Any], num_cores: int) -> dict[str, Any]:
    """A target dict from ``llvm``, ``cuda`` or a JSON object, with the CPU filled in.

    For llvm, ``mcpu`` "native" or missing becomes the host CPU and ``num-cores`` defaults to
    the device's core count so kernels do not oversubscribe a pinned device. For cuda, the
    ``host`` (default llvm) gets the same, and a missing ``arch`` and per-block limits
    (``max_threads_per_block``, ``max_shared_memory_per_block``, which MetaSchedule's GPU
    rules need) become the first GPU's when this machine has one (``sm_90`` for compute
    capability 9.0), else the limits every CUDA GPU has. Raises TunerError for
    another kind or unreadable JSON.
    """
    if isinstance(text, Mapping):
        config = dict(text)
    else:
        spec = (text or "").strip()
        if spec.startswith("{"):
            try:
                config = json.loads(spec)
            except json.JSONDecodeError as exc:
                raise TunerError(f"bad target {spec!r}: not valid JSON ({exc.msg})") from None
            if not isinstance(config, dict):
                raise TunerError(f"bad target {spec!r}: expected a JSON object")
        else:
            config = {"kind": spec}
    kind = config.get("kind")
    if kind not in TARGET_KINDS:
        raise TunerError(
            f"unknown target {kind!r}: supported kinds are {', '.join(TARGET_KINDS)} "
            '(a name, or a JSON object like {"kind": "llvm", "mcpu": "skylake"})'
        )
    if kind == GPU_KIND:
        host = config.get("host", CPU_KIND)
        if not isinstance(host, str | Mapping):
            raise TunerError(f"a cuda target's host must be llvm or an object, got {host!r}")
        config["host"] = _cpu_config({"kind": host} if isinstance(host, str) else dict(host), 1)
        config.update({k: v for k, v in _gpu_limits().items() if k not in config})
    else:
        config = _cpu_config(config, num_cores)
    try:
        Target(config)
    except Exception as exc:
        raise TunerError(f"bad target {config}: {str(exc).splitlines()[-1]}") from None
    return config


def _cpu_config(config: dict[str, Any], num_cores: int) -> dict[str, Any]:
    """An llvm config with ``mcpu`` (the host CPU for "native" or none) and ``num-cores``."""
    if config.get("kind") != CPU_KIND:
        raise TunerError(f"a cuda target's host must be llvm, got {config.get('kind')!r}")
    if config.get("mcpu") in (None, "", "native"):
        config["mcpu"] = host_cpu()
    config.setdefault("num-cores", num_cores)
    if not isinstance(config["num-cores"], int) or config["num-cores"] < 1:
        raise TunerError(
            f"target num-cores must be a positive integer, got {config['num-cores']!r}"
        )
    return config


def _gpu_limits() -> dict[str, Any]:
    """What MetaSchedule's GPU rules need of a cuda target: the first GPU's (TVM's defaults
    for threads and shared memory per block without a GPU, when cross-compiling)."""
    if not cuda_devices():
        return dict(CUDA_DEFAULT_LIMITS)
    gpu = tvm.cuda(0)
    return {
        "arch": "sm_" + str(gpu.compute_version).replace(".", ""),
        "max_threads_per_block": int(gpu.max_threads_per_block),
        "max_shared_memory_per_block": int(gpu.max_shared_memory_per_block),
        "thread_warp_size": int(gpu.warp_size),
    }


def is_gpu(config: Mapping[str, Any]) -> bool:
    """Whether a target config's kernels run on a GPU (a cuda target)."""
    return config.get("kind") == GPU_KIND


def cuda_devices() -> int:
    """How many CUDA GPUs this process sees (0 without a GPU or a CUDA driver)."""
    count = 0
    while tvm.cuda(count).exist:
        count += 1
    return count
