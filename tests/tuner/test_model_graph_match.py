"""Layer matching and repeated blocks on synthetic graphs (pure, no TVM)."""

from __future__ import annotations

from tuner.models.blocks import block_labels
from tuner.models.layer_match import FrameworkOp, KernelSig, match_layers


def op(name: str, kind: str, lowers: tuple[str, ...], ins: tuple[str, ...], size: int,
       view: bool = False) -> FrameworkOp:  # fmt: skip
    return FrameworkOp(name, kind, lowers, (name,), ins, (name,), (size,), view)


def test_a_chain_matches_layer_by_layer_and_swallows_fused_activations() -> None:
    ops = [
        op("conv_a", "Conv", ("conv2d", "add"), ("x",), 64),
        op("relu_a", "Relu", ("relu",), ("conv_a",), 64),
        op("pool", "MaxPool", ("max_pool2d",), ("relu_a",), 16),
        op("flat", "Flatten", (), ("pool",), 16, view=True),
        op("fc", "Gemm", ("matmul", "add"), ("flat",), 10),
    ]
    kernels = [
        KernelSig(("conv2d", "add", "relu"), frozenset({12, 64}), ()),
        KernelSig(("max_pool2d",), frozenset({64, 16}), (0,)),
        KernelSig(("matmul", "add"), frozenset({16, 10}), (1,)),
    ]
    matches = match_layers(kernels, ops)
    assert [m.layers for m in matches] == [("conv_a", "relu_a"), ("pool",), ("fc",)]
    assert not any(m.ambiguous for m in matches)


def test_parallel_identical_branches_are_ambiguous_and_data_flow_decides_the_rest() -> None:
    # x -> left (conv) and right (conv), same kind and size; then a conv that reads left.
    ops = [
        op("left", "Conv", ("conv2d",), ("x",), 32),
        op("right", "Conv", ("conv2d",), ("x",), 32),
        op("after_left", "Conv", ("conv2d",), ("left",), 32),
        op("sum", "Add", ("add",), ("after_left", "right"), 32),
    ]
    kernels = [
        KernelSig(("conv2d",), frozenset({32}), ()),
        KernelSig(("conv2d",), frozenset({32}), ()),
        KernelSig(("conv2d",), frozenset({32}), (0,)),
        KernelSig(("add",), frozenset({32}), (1, 2)),
    ]
    matches = match_layers(kernels, ops)
    assert matches[0].ambiguous and set(matches[0].layers) == {"left", "right"}
    # The third kernel reads the first one's output: only after_left agrees with that.
    assert (matches[2].layers, matches[2].ambiguous) == (("after_left",), False)
    assert (matches[3].layers, matches[3].ambiguous) == (("sum",), False)


def test_a_kernel_no_layer_fits_gets_none() -> None:
    ops = [op("conv", "Conv", ("conv2d",), ("x",), 8)]
    kernels = [KernelSig(("softmax",), frozenset({8}), ()), KernelSig(("conv2d",), frozenset({8}))]
    matches = match_layers(kernels, ops)
    assert matches[0].layers == () and matches[1].layers == ("conv",)


def test_repeated_blocks_share_one_label_and_the_rest_none() -> None:
    seq = ["stem", *(["a", "b", "c"] * 4), "head", "x", "y"]
    labels = block_labels(seq)
    assert labels[0] is None and labels[-3:] == [None, None, None]
    assert set(labels[1:13]) == {"block 0: 3 kernels x 4"}
    assert block_labels(["a", "b", "c", "d"]) == [None] * 4
    # Two separate runs get two labels; the longer cover wins at each start.
    two = block_labels(["p", "p", "p", "q", "r", "q", "r"])
    assert two == ["block 0: 1 kernels x 3"] * 3 + ["block 1: 2 kernels x 2"] * 4
