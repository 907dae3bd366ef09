"""Which fused kernels of a model could run on channel slices (for ``channel_split``).

Read from the TIR of each node's fused function (``relax_graph.fused_module``): a kernel
whose blocks are a depthwise convolution (a grouped convolution whose weight has one input
channel per group) and elementwise blocks (adds, ReLU, in-place sums) is **channel-wise**;
one with a full convolution (``conv2d_nhwc``) and elementwise blocks **reduces** over the
channels of its first tensor argument (the data); anything else (a mean, a matmul, a
concatenation) is not split.
"""

from __future__ import annotations

import re
from typing import Any

import tvm
from tvm import relax

from tuner.memory.channel_split import Split
from tuner.memory.graph import MemoryGraph
from tuner.memory.relax_graph import CALL_OPS, node_sites

ELEMENTWISE = ("root", "pad_temp", "T_add", "T_multiply", "T_subtract", "compute", "accumulate")
DEPTHWISE = "group_conv2d_nhwc"
FULL = "conv2d_nhwc"
_BLOCK = re.compile(r'T\.sblock\("(\w+)"')


def channel_kinds(mod: tvm.IRModule, graph: MemoryGraph) -> dict[int, Split]:
    """Per node of ``graph`` (``memory_graph(mod)``) that could run on channel slices, how:
    ``Split()`` when channel-wise, ``Split(reduces=data)`` when it reduces over ``data``'s
    channels. Nodes that cannot be split are absent."""
    kinds: dict[int, Split] = {}
    for index, site in enumerate(node_sites(mod["main"])):
        call = site.binding.value
        if not isinstance(call.op, tvm.ir.Op) or call.op.name not in CALL_OPS:
            continue
        callee = mod[call.args[0]]
        if not isinstance(callee, tvm.tirx.PrimFunc):
            continue
        blocks = set(_BLOCK.findall(callee.script()))
        convs = blocks - {b for b in blocks if b.startswith(ELEMENTWISE)}
        node = graph.nodes[index]
        if not convs or (convs == {DEPTHWISE} and _one_channel_per_group(call)):
            kinds[index] = Split()
        elif convs == {FULL} and node.inputs:
            kinds[index] = Split(reduces=node.inputs[0])
    return kinds


def _one_channel_per_group(call: Any) -> bool:
    """The call's weight (its first constant argument, HWIO or HWOI) has one input
    channel per group: a depthwise convolution."""
    args = call.args[1].fields if isinstance(call.args[1], relax.Tuple) else []
    for arg in args:
        if isinstance(arg, tvm.ir.expr.Constant):
            shape = [int(d) for d in arg.ty.shape.values]
            return len(shape) == 4 and min(shape[2:]) == 1
    return False
