"""A model's graph after fusion as ``collectors.modelgraph.ModelGraph``: what a ``graph``
event holds.

The nodes and edges are those of the memory planner's graph (``tuner.memory.relax_graph``:
``main``'s calls after fusion in binding order, which is the order the VM runs them, reshapes
as views): node ``n{i}`` is the ``i``-th call, an edge joins the call producing a tensor to
each call reading it. Each node carries its kernel (the PrimFunc, or the extern it calls),
its anchor operator (``tasks.anchor_op``), its fused operators, its output shapes, its tuning
task (``kernels.kernel_task_names``), the source layers it came from
(``layer_match.match_layers`` on ``framework_graph.framework_ops``) and its repeated block
(``blocks.block_labels``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import tvm
from tvm import relax
from tvm.target import Target

from collectors.modelgraph import KernelNode, ModelGraph
from tuner.memory.relax_graph import as_target, fused_module, memory_graph, node_sites
from tuner.models._base import LoadedModel
from tuner.models.blocks import block_labels
from tuner.models.framework_graph import framework_ops
from tuner.models.kernels import extracted_tasks, kernel_task_names
from tuner.models.layer_match import KernelSig, LayerMatch, match_layers
from tuner.models.tasks import anchor_op, fused_ops

MATCHING_NOTE = (
    "layers matched by operator kind, tensor size and data flow (the frontend keeps no "
    "source names); ambiguous: several layers fit equally"
)


def model_graph(
    model: LoadedModel,
    target: Target | Mapping[str, Any],
    *,
    tasks: Iterable[tuple[str, Any]] | None = None,
) -> ModelGraph:
    """The fused graph of ``model`` for ``target``. ``tasks`` are ``(task name, workload
    module)`` pairs naming the tasks as the store does (a job's tasks); by default the tasks
    MetaSchedule extracts. Raises ModelError as ``memory_graph`` does (dynamic shapes)."""
    target = as_target(target)
    mod = fused_module(model, target)
    memory = memory_graph(mod, target, name=model.name)
    sites = list(node_sites(mod["main"]))
    task_of = kernel_task_names(mod, tasks if tasks is not None else extracted_tasks(mod, target))
    numel = _input_sizes(mod["main"])
    kernels: list[dict[str, Any]] = []
    anchors: dict[str, str] = {}
    for node, site in zip(memory.nodes, sites, strict=True):
        shapes = _shapes(site.binding.var.ty)
        numel.update({t: _count(s) for t, s in zip(node.outputs, shapes, strict=False)})
        kernel = node.op
        func = mod.functions.get(mod.get_global_var(kernel)) if _has(mod, kernel) else None
        is_prim = isinstance(func, tvm.tirx.PrimFunc)
        kernels.append(
            {
                "kernel": kernel,
                "op": anchors.setdefault(kernel, _anchor(func, kernel)) if is_prim else kernel,
                "fused": _fused(kernel) if is_prim else (),
                "shapes": shapes,
                "task": task_of.get(kernel),
                "sizes": frozenset(numel[t] for t in (*node.inputs, *node.outputs) if t in numel),
            }
        )
    preds = [memory.predecessors(i) for i in range(len(memory.nodes))]
    for k, p in zip(kernels, preds, strict=True):
        k["preds"] = p
    matches = _layers(model, kernels)
    signatures = [
        (k["kernel"], k["shapes"], tuple(i - p for p in preds[i])) for i, k in enumerate(kernels)
    ]
    blocks = block_labels(signatures)
    nodes = tuple(
        KernelNode(
            id=f"n{i}",
            kernel=k["kernel"],
            op=k["op"],
            task=k["task"],
            fused=tuple(k["fused"]),
            shapes=k["shapes"],
            layers=m.layers,
            ambiguous=m.ambiguous,
            block=blocks[i],
        )
        for i, (k, m) in enumerate(zip(kernels, matches, strict=True))
    )
    edges = tuple((f"n{p}", f"n{i}") for i in range(len(nodes)) for p in preds[i])
    has_layers = framework_ops(model) is not None
    detail = MATCHING_NOTE if has_layers else "no framework graph: layers not matched"
    return ModelGraph(model.name, nodes, edges, framework=model.framework, detail=detail)


def _layers(model: LoadedModel, kernels: list[dict[str, Any]]) -> list[LayerMatch]:
    ops = framework_ops(model)
    if ops is None:
        return [LayerMatch() for _ in kernels]
    sigs = [KernelSig(tuple(k["fused"]), k["sizes"], k["preds"]) for k in kernels]
    return match_layers(sigs, ops)


def _has(mod: tvm.IRModule, name: str) -> bool:
    return any(gv.name_hint == name for gv in mod.get_global_vars())


def _anchor(func: Any, kernel: str) -> str:
    """``tasks.anchor_op`` of a kernel; a reduction's block named after a Relax variable
    (``lv27_red``) gives the kernel's first operator instead."""
    op = anchor_op(tvm.IRModule({"main": func}), kernel)
    return _fused(kernel)[0] if re.match(r"^lv\d*", op) else op


def _fused(kernel: str) -> tuple[str, ...]:
    """The fused operators of a kernel: ``fused_conv2d1_add_relu`` -> conv2d, add, relu; a
    kernel of one operator (``max_pool2d1``, ``adaptive_pool_avg``) is that operator."""
    if kernel.startswith("fused_"):
        return tuple(fused_ops(kernel).split("+"))
    return (re.sub(r"\d+$", "", kernel),)


def _shapes(info: Any) -> tuple[tuple[int, ...], ...]:
    """Static output shapes of a binding (a tensor, or the tensors of a tuple)."""
    if isinstance(info, relax.TupleType):
        return tuple(s for field in info.fields for s in _shapes(field))
    shape = getattr(info, "shape", None)
    values = getattr(shape, "values", None)
    if values is None:
        return ()
    return (tuple(int(d) for d in values),)


def _count(shape: tuple[int, ...]) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


def _input_sizes(func: relax.Function) -> dict[str, int]:
    sizes = {}
    for param in func.params:
        shapes = _shapes(param.ty)
        if len(shapes) == 1:
            sizes[str(param.name)] = _count(shapes[0])
    return sizes
