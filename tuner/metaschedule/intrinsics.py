"""MetaSchedule's tensor intrinsics, loaded for the target at hand only.

Every ``TuneContext`` imports ``tvm.s_tir.tensor_intrin``, whose package ``__init__`` builds
the intrinsics of every target TVM knows (CUDA's, ROCm's, Arm's, Hexagon's...), seconds of CPU
before the first search of a run can start (``benchmarks/startup_bench.py`` measures it). An
llvm target needs only its own architecture's. ``load_tensor_intrinsics(target)`` registers the
package without running its ``__init__`` and imports only the modules the target's
architecture uses, so ``TuneContext``'s own import finds the package already loaded. A target
of any other kind, or an architecture not listed, gets the whole package as TVM loads it.
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
import sys
import threading
from typing import Any

PACKAGE = "tvm.s_tir.tensor_intrin"
# The intrinsic modules an llvm target of each architecture (its triple's first part) uses.
MODULES_BY_ARCH: dict[str, tuple[str, ...]] = {
    "x86_64": ("x86",),
    "i686": ("x86",),
    "aarch64": ("arm_cpu",),
    "arm64": ("arm_cpu",),
    "armv7": ("arm_cpu",),
    "riscv64": ("riscv_cpu",),
    "riscv32": ("riscv_cpu",),
}
_ARCH_BY_MACHINE = {"amd64": "x86_64", "x86": "i686", "arm64": "aarch64"}

_lock = threading.Lock()
_partial = False  # the package was registered without its __init__


def load_tensor_intrinsics(target: Any) -> tuple[str, ...]:
    """Make the tensor intrinsics ``target`` (a ``tvm.target.Target``) may use available;
    returns the intrinsic modules now loaded (``("*",)``: the whole package)."""
    modules = modules_for(target.kind.name, _triple(target))
    with _lock:
        if modules is None or (PACKAGE in sys.modules and not _partial):
            _load_whole_package()
            return ("*",)
        _register_package()
        for name in modules:
            importlib.import_module(f"{PACKAGE}.{name}")
        prefix = PACKAGE + "."
        return tuple(sorted(m.removeprefix(prefix) for m in sys.modules if m.startswith(prefix)))


def modules_for(kind: str, triple: str) -> tuple[str, ...] | None:
    """The intrinsic modules a target of ``kind`` for ``triple`` uses (None: load them all)."""
    if kind != "llvm":
        return None
    arch = triple.split("-", 1)[0].lower()
    return MODULES_BY_ARCH.get(arch)


def _triple(target: Any) -> str:
    triple = target.attrs.get("mtriple") if hasattr(target, "attrs") else None
    if triple:
        return str(triple)
    machine = platform.machine().lower()
    return _ARCH_BY_MACHINE.get(machine, machine)


def _register_package() -> None:
    """Put the package in ``sys.modules`` without running its ``__init__``."""
    global _partial
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None:
        raise ImportError(f"{PACKAGE} is not installed")
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    parent, _, child = PACKAGE.rpartition(".")
    setattr(sys.modules[parent], child, package)
    _partial = True


def _load_whole_package() -> None:
    """The whole package as TVM loads it (also after a partial load: its ``__init__`` runs
    now and imports the modules not loaded yet)."""
    global _partial
    package = sys.modules.get(PACKAGE)
    if package is None:
        importlib.import_module(PACKAGE)
    elif _partial:
        spec = package.__spec__
        spec.loader.exec_module(package)  # type: ignore[union-attr]
    _partial = False
