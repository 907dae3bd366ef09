"""Codegen targets: a user's target (a name, JSON text or a dict) as a checked TVM target
config with the host CPU and the device's core count filled in."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import tvm
from tvm.target import Target

from tuner._base import TunerError

TARGET_KINDS = ("llvm",)


def host_cpu() -> str:
    """This machine's CPU name as LLVM knows it (``generic`` if LLVM cannot tell)."""
    codegen = tvm.target.codegen
    name = str(codegen.llvm_get_system_cpu())
    valid = name and codegen.llvm_is_valid_cpu(name, str(codegen.llvm_get_system_triple()))
    return name if valid else "generic"


def target_config(text: str | Mapping[str, Any], num_cores: int) -> dict[str, Any]:
    """A target dict from ``llvm`` or a JSON object, with ``mcpu`` and ``num-cores`` filled in.

    ``mcpu`` "native" or missing becomes the host CPU; ``num-cores`` defaults to the device's
    core count so kernels do not oversubscribe a pinned device. Raises TunerError for a kind
    other than llvm or unreadable JSON.
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
    if config.get("mcpu") in (None, "", "native"):
        config["mcpu"] = host_cpu()
    config.setdefault("num-cores", num_cores)
    if not isinstance(config["num-cores"], int) or config["num-cores"] < 1:
        raise TunerError(
            f"target num-cores must be a positive integer, got {config['num-cores']!r}"
        )
    try:
        Target(config)
    except Exception as exc:
        raise TunerError(f"bad target {config}: {str(exc).splitlines()[-1]}") from None
    return config

