"""The channel-wise partitioning model on ``zoo:randwire-b`` (real TVM graph): which kernels
could run on channel slices, and the least peak that slicing them gives (the bound
``benchmarks/channel_split_bound.py`` prints)."""

from __future__ import annotations

import pytest

from tuner.memory.channel_kinds import channel_kinds
from tuner.memory.channel_split import (
    Split,
    largest_region,
    recompute_per_reader,
    split_channels,
    without_inputs,
)
from tuner.memory.order import min_peak_order
from tuner.memory.relax_graph import memory_graph
from tuner.memory.rewrite import rewrite_for_memory
from tuner.models.loaders import load_model

TARGET = {"kind": "llvm", "num-cores": 1}
KIB = 1024
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def randwire_b():
    rewritten = rewrite_for_memory(load_model("zoo:randwire-b"), TARGET)
    graph = without_inputs(memory_graph(rewritten.mod, TARGET, name="randwire-b"))
    return graph, channel_kinds(rewritten.mod, graph)


def test_depthwise_and_elementwise_kernels_run_per_slice_and_convolutions_reduce(
    randwire_b,
) -> None:
    graph, kinds = randwire_b
    by_name = {graph.nodes[i].name: kind for i, kind in kinds.items()}
    assert by_name["lv"] == Split(reduces="image")  # the stem: a full 3x3 convolution
    assert by_name["lv1"] == Split()  # a depthwise 3x3 convolution plus its bias
    assert by_name["lv2"] == Split(reduces="lv1")  # pointwise convolution, bias, ReLU
    assert by_name["lv8"] == Split(reduces="lv7")  # ... plus a residual: lv4 per channel
    assert by_name["partial_sum0"] == Split()  # an in-place sum
    assert "lv128" not in by_name and "gv" not in by_name  # the mean, the logits


def test_slicing_alone_keeps_64_kib_and_recomputing_the_stem_reaches_56(randwire_b) -> None:
    """Stem kept, halves: every kernel per slice or by output channels, least peak 64 KiB
    (exact), as unsplit. Stem recomputed per reader, quarters, every pointwise convolution
    accumulated over its input slices, lv14 in place of lv4: at most 56 KiB (an order
    found, not proven least: 127 nodes are above the exact search's limit)."""
    graph, kinds = randwire_b
    region = largest_region(graph)
    plain = {i: kinds[i] for i in region if i in kinds}
    halves = min_peak_order(split_channels(graph, plain, 2), time_limit_s=30)
    assert halves.exact
    assert halves.peak_bytes == 64 * KIB

    stem = next(i for i, n in enumerate(graph.nodes) if n.name == "lv")
    copied = recompute_per_reader(graph, stem)
    by_name = {graph.nodes[i].name: kinds[i] for i in region if i in kinds}
    splits = {}
    for index, node in enumerate(copied.nodes):
        kind = by_name.get(node.name.split("@")[0])
        if kind is None:
            continue
        if kind.reduces is not None and copied.tensors[kind.reduces].producer is not None:
            into = "lv4" if node.name == "lv14" else None
            kind = Split(kind.reduces, accumulate=True, into=into)
        splits[index] = kind
    quarters = min_peak_order(split_channels(copied, splits, 4), time_limit_s=30)
    assert quarters.peak_bytes <= 56 * KIB
    assert quarters.lower_bound_bytes <= quarters.peak_bytes < halves.peak_bytes
