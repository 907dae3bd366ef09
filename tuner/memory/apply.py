"""Run a model in a chosen operator order and measure what TVM's memory planner then
allocates.

``reorder_module`` permutes the bindings of the fused module's ``main`` (the module
``relax_graph.fused_module`` returns, whose calls are the ``MemoryGraph``'s nodes).
``planned_memory`` lowers a fused module with the passes ``compile_relax`` runs after fusion
(``StaticPlanBlockMemory`` among them) and reads the storage the VM will allocate.
``compile_module`` and ``run_module`` build and run it; ``outputs_match`` checks that two
orders compute the same outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.target import Target

from tuner.memory.relax_graph import as_target, binding_sites, is_fused, node_sites
from tuner.models._base import LoadedModel
from tuner.models.compiled import flatten_outputs
from tuner.models.inputs import random_array, random_inputs
from tuner.models.pipeline import lowering_passes

PLANNER = "StaticPlanBlockMemory"
ALLOC_STORAGE = "vm.builtin.alloc_storage"


# ---------------------------------------------------------------- reordering
def reorder_module(mod: tvm.IRModule, order: Sequence[int]) -> tvm.IRModule:
    """A copy of the fused module ``mod`` whose ``main`` runs its nodes in ``order`` (node
    indices, as in ``memory_graph(mod, target)``). Bindings that are not calls (views,
    tuples) follow right after the last binding they read. ValueError when ``order`` is not
    a permutation of the nodes, runs a node before a node it reads, or moves a node to
    another binding block."""
    if not is_fused(mod):
        raise ValueError("reorder the fused module (relax_graph.fused_module), not the raw one")
    mod = relax.transform.RewriteDataflowReshape()(mod)
    func = mod["main"]
    nodes = list(node_sites(func))
    order = [int(i) for i in order]
    if sorted(order) != list(range(len(nodes))):
        raise ValueError(f"order must be a permutation of the {len(nodes)} node indices")
    blocks = [nodes[i].block for i in order]
    if blocks != sorted(blocks):
        raise ValueError("order moves a node out of its binding block")
    new_blocks = []
    for b, block in enumerate(func.body.blocks):
        wanted = [nodes[i].binding for i in order if nodes[i].block == b]
        new_blocks.append(type(block)(_reordered(block, wanted)))
    body = relax.SeqExpr(new_blocks, func.body.body)
    new_func = relax.Function(func.params, body, func.ret_ty, func.is_pure, func.attrs, func.span)
    out = mod.clone()
    out.update_func(mod.get_global_var("main"), new_func)
    return out


def _reordered(block: Any, node_bindings: list[Any]) -> list[Any]:
    """``block``'s bindings with its calls in the order of ``node_bindings``."""
    defined = {binding.var for binding in block.bindings}
    reads = {
        binding: {v for v in relax.analysis.free_vars(binding.value) if v in defined}
        for binding in block.bindings
    }
    is_node = {binding for binding in node_bindings}
    waiting = [b for b in block.bindings if b not in is_node]
    done: set[Any] = set()
    out: list[Any] = []

    def place_ready() -> None:
        placed = True
        while placed:
            placed = False
            for binding in list(waiting):
                if reads[binding] <= done:
                    waiting.remove(binding)
                    out.append(binding)
                    done.add(binding.var)
                    placed = True

    place_ready()
    for binding in node_bindings:
        missing = reads[binding] - done
        if missing:
            names = ", ".join(sorted(str(v.name) for v in missing))
            raise ValueError(f"order runs {binding.var.name} before {names}, which it reads")
        out.append(binding)
        done.add(binding.var)
        place_ready()
    if waiting:
        raise ValueError(f"bindings left unplaced: {', '.join(str(b.var.name) for b in waiting)}")
    return out


# ---------------------------------------------------------------- planned memory
@dataclass(frozen=True)
class PlannedMemory:
    """What the compiled VM allocates per call of ``main`` (bytes).

    ``total_bytes``: every ``vm.alloc_storage`` in the lowered ``main``, i.e. the storage the
    VM allocates per call for everything that is neither a model input nor a weight (inputs
    are passed in, weights live in the constant pool). It is ``planned_bytes`` (the storages
    ``StaticPlanBlockMemory`` shares among the intermediate tensors) plus ``output_bytes``
    (the model outputs, which the planner leaves to be allocated on their own).
    ``storage_sizes`` are the storages in allocation order; ``calls`` are the kernels in the
    order ``main`` runs them.
    """

    total_bytes: int
    planned_bytes: int
    output_bytes: int
    storage_sizes: tuple[int, ...]
    calls: tuple[str, ...]


def planned_memory(mod: tvm.IRModule, target: Target | Mapping[str, Any]) -> PlannedMemory:
    """The real planned memory of the fused module ``mod`` for ``target``.

    ``mod`` goes through exactly the passes ``compile_relax`` applies after fusion
    (``lowering_passes``), so ``StaticPlanBlockMemory`` plans it as it plans a compiled
    model; the figures are read from the module it produces, not modelled: the sizes of
    the ``R.memory.alloc_storage`` it emits (and the ``R.builtin.alloc_tensor`` of the
    outputs) and, after the last pass, of every ``R.vm.alloc_storage`` the VM executes.
    ``main`` has no control flow, so each of those runs once per call: ``run_module``
    observes the same total from the running VM. The VM frees a storage after its last
    use, so the memory held at one instant can be lower than the total; the total is what
    the plan reserves, and what a static arena would need.
    """
    target = as_target(target)
    planned = lowered = mod
    with target, tvm.transform.PassContext(opt_level=3):
        for one_pass in lowering_passes(target):
            lowered = one_pass(lowered)
            if one_pass.info.name == PLANNER:
                planned = lowered
    planned_sizes = _call_sizes(planned["main"], "relax.memory.alloc_storage")
    outputs = _output_bytes(planned["main"])
    storages = _call_sizes(lowered["main"], "relax.vm.alloc_storage")
    return PlannedMemory(
        total_bytes=sum(storages),
        planned_bytes=sum(planned_sizes),
        output_bytes=outputs,
        storage_sizes=tuple(storages),
        calls=tuple(_kernel_calls(lowered["main"])),
    )


def _calls(func: relax.Function) -> list[Any]:
    return [
        site.binding.value
        for site in binding_sites(func)
        if isinstance(site.binding.value, relax.Call)
    ]


def _call_sizes(func: relax.Function, op_name: str) -> list[int]:
    """The first (shape) argument's single extent of every call to ``op_name``."""
    sizes = []
    for call in _calls(func):
        if isinstance(call.op, tvm.ir.Op) and call.op.name == op_name:
            (size,) = call.args[0].values
            sizes.append(int(size))
    return sizes


def _output_bytes(func: relax.Function) -> int:
    total = 0
    for call in _calls(func):
        if isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.builtin.alloc_tensor":
            count = int(np.prod([int(d) for d in call.args[0].values]))
            dtype = tvm.DataType(str(call.ty.dtype))
            total += count * ((dtype.bits * dtype.lanes + 7) // 8)
    return total


def _kernel_calls(func: relax.Function) -> list[str]:
    return [str(c.op.name_hint) for c in _calls(func) if isinstance(c.op, tvm.ir.GlobalVar)]


# ---------------------------------------------------------------- building and running
def compile_module(mod: tvm.IRModule, target: Target | Mapping[str, Any]) -> Any:
    """The fused module built for ``target`` with ``lowering_passes`` (untuned kernels)."""
    target = as_target(target)

    @tvm.transform.module_pass(opt_level=0, name="LowerFusedModule")
    def lower(m: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        return tvm.transform.Sequential(lowering_passes(target))(m)

    with target, tvm.transform.PassContext(opt_level=3):
        return relax.build(mod, target=target, relax_pipeline=lower)


def run_module(executable: Any, args: Sequence[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Run ``main`` once on the CPU: its outputs, and the bytes of storage the VM allocated
    during the call (every ``vm.builtin.alloc_storage`` it executed)."""
    vm = relax.VirtualMachine(executable, tvm.cpu())
    allocated: list[int] = []

    def watch(_func: Any, name: str, before: bool, _ret: Any, *call_args: Any) -> int:
        if before and name == ALLOC_STORAGE:
            allocated.append(int(call_args[1][0]))
        return 0  # no change to the run

    vm.set_instrument(watch)
    result = vm["main"](*[tvm.runtime.tensor(np.ascontiguousarray(a)) for a in args])
    return flatten_outputs(result), sum(allocated)


def outputs_match(
    model: LoadedModel | None,
    mod_a: tvm.IRModule,
    mod_b: tvm.IRModule,
    *,
    target: Target | Mapping[str, Any] | None = None,
    seed: int = 0,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> bool:
    """Whether two fused modules of ``model`` give the same outputs (``np.allclose``) on the
    same random inputs (``random_inputs(model, seed)``; without a model, from ``main``'s
    parameter types)."""
    target = as_target(target or {"kind": "llvm", "num-cores": 1})
    args = _random_args(model, mod_a, seed)
    got_a, _ = run_module(compile_module(mod_a, target), args)
    got_b, _ = run_module(compile_module(mod_b, target), args)
    return len(got_a) == len(got_b) and all(
        a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=atol)
        for a, b in zip(got_a, got_b, strict=True)
    )


def _random_args(model: LoadedModel | None, mod: tvm.IRModule, seed: int) -> list[np.ndarray]:
    if model is not None:
        feeds: Mapping[str, np.ndarray] = random_inputs(model, seed)
        return [feeds[spec.name] for spec in model.inputs]
    func = mod["main"]
    num_input = func.attrs.get("num_input") if func.attrs else None
    params = list(func.params)[: int(num_input) if num_input is not None else None]
    rng = np.random.default_rng(seed)
    return [
        random_array(tuple(int(d) for d in p.ty.shape.values), str(p.ty.dtype), rng) for p in params
    ]
