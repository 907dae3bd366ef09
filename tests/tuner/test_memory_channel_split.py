"""Channel-wise partitioning modelled (``tuner.memory.channel_split``): hand-built graphs whose
least peaks with and without splitting are computed by hand."""

from __future__ import annotations

import pytest

from tuner.memory.channel_split import Split, recompute_per_reader, split_channels
from tuner.memory.graph import MemoryGraph, MemoryGraphError, Node, Tensor
from tuner.memory.order import min_peak_order
from tuner.memory.profile import check_order

T = 16  # bytes of a whole tensor in these graphs


def graph(nodes: list[tuple[str, list[str], list[str]]], sizes: dict[str, int]) -> MemoryGraph:
    """Nodes (name, inputs, outputs) in order; tensors no node writes are model inputs,
    tensors no node reads are model outputs."""
    producer = {t: i for i, (_, _, outs) in enumerate(nodes) for t in outs}
    readers: dict[str, list[int]] = {t: [] for t in sizes}
    for i, (_, ins, _) in enumerate(nodes):
        for t in ins:
            readers[t].append(i)
    tensors = {
        t: Tensor(t, size, producer.get(t), tuple(readers[t]), t in producer and not readers[t])
        for t, size in sizes.items()
    }
    return MemoryGraph(tuple(Node(n, "op", tuple(i), tuple(o)) for n, i, o in nodes), tensors)


def least_peak(g: MemoryGraph) -> int:
    result = min_peak_order(g, time_limit_s=10)
    assert result.exact
    check_order(g, result.order)
    return result.peak_bytes


def fan_out() -> MemoryGraph:
    """t (read by two channel-wise nodes a and b) and c = a + b: unsplit, t, a and b are
    live at b's step (3 T)."""
    return graph(
        [
            ("p", ["x"], ["t"]),
            ("a", ["t"], ["ta"]),
            ("b", ["t"], ["tb"]),
            ("c", ["ta", "tb"], ["y"]),
        ],
        {"x": 0, "t": T, "ta": T, "tb": T, "y": T},
    )


def test_channel_slices_free_a_tensor_with_two_readers_piece_by_piece() -> None:
    g = fan_out()
    assert least_peak(g) == 3 * T
    per_slice = {0: Split(reduces="x"), 1: Split(), 2: Split(), 3: Split()}
    # By hand, per slice s: t_s, a_s, b_s (t_s dies), y_s (a_s, b_s die): the slices of the
    # model output y made so far and three slices live, T (k - 1) / k + 3 T / k = T + 2 T / k.
    split = split_channels(g, per_slice, 2)
    assert len(split.nodes) == 8
    assert least_peak(split) == 2 * T
    assert least_peak(split_channels(g, per_slice, 4)) == T + T // 2


def pointwise() -> MemoryGraph:
    """A channel-wise d (a depthwise convolution) then a reduction over its channels
    (a pointwise convolution)."""
    return graph(
        [("d", ["x"], ["t"]), ("pw", ["t"], ["u"]), ("tail", ["u"], ["y"])],
        {"x": 0, "t": T, "u": T, "y": 1},
    )


@pytest.mark.parametrize("accumulate", [False, True])
def test_a_reduction_over_channels_streams_its_input_only_when_accumulated(
    accumulate: bool,
) -> None:
    """By output channels, every part reads all of t while u fills up: 2 T as unsplit.
    Accumulated, u is whole from the first part on, but t's slices are made from the model
    input (0 bytes) one at a time and die once added: T + T / parts."""
    g = pointwise()
    assert least_peak(g) == 2 * T
    splits = {0: Split(), 1: Split(reduces="t", accumulate=accumulate)}
    for parts in (2, 4):
        peak = least_peak(split_channels(g, splits, parts))
        assert peak == (T + T // parts if accumulate else 2 * T)


def residual() -> MemoryGraph:
    """r, then y = pw(d(x)) + r (a residual added to a pointwise convolution), read by a
    small tail: unsplit r, t and y are live at pw's step."""
    return graph(
        [
            ("r", ["x"], ["rt"]),
            ("d", ["x"], ["t"]),
            ("pw", ["t", "rt"], ["yt"]),
            ("tail", ["yt"], ["out"]),
        ],
        {"x": 0, "rt": T, "t": T, "yt": T, "out": 1},
    )


def test_an_accumulation_in_place_of_a_residual_needs_no_output_of_its_own() -> None:
    g = residual()
    assert least_peak(g) == 3 * T
    into = {1: Split(), 2: Split(reduces="t", accumulate=True, into="rt")}
    # By hand: r stays whole and takes the sum; t's halves are made and added one by one.
    assert least_peak(split_channels(g, into, 2)) == T + T // 2
    fresh = {1: Split(), 2: Split(reduces="t", accumulate=True)}
    assert least_peak(split_channels(g, fresh, 2)) == 2 * T + T // 2


def test_an_accumulation_in_place_of_a_tensor_read_after_it_is_refused() -> None:
    g = graph(
        [("r", ["x"], ["rt"]), ("pw", ["x", "rt"], ["yt"]), ("late", ["yt", "rt"], ["out"])],
        {"x": 0, "rt": T, "yt": T, "out": 1},
    )
    with pytest.raises(MemoryGraphError, match="still read after it"):
        split_channels(g, {1: Split(reduces="x", accumulate=True, into="rt")}, 2)


@pytest.mark.parametrize(
    ("splits", "parts", "message"),
    [
        ({1: Split(reduces="nope")}, 2, "does not read nope"),
        ({0: Split()}, 3, "does not split into 3 parts"),
        ({0: Split()}, 0, "at least 1"),
    ],
)
def test_bad_splits_are_one_clear_error(splits: dict, parts: int, message: str) -> None:
    with pytest.raises(MemoryGraphError, match=message):
        split_channels(fan_out(), splits, parts)


def test_recomputing_a_stem_per_reader_gives_each_reader_its_own_copy() -> None:
    """s (from the model input) read by a, b and c, each kept until a last node: with the
    stem kept, s is live beside two outputs; recomputed, never beside more than one."""
    g = graph(
        [
            ("s", ["x"], ["st"]),
            ("a", ["st"], ["at"]),
            ("b", ["st"], ["bt"]),
            ("c", ["st"], ["ct"]),
            ("end", ["at", "bt", "ct"], ["y"]),
        ],
        {"x": 0, "st": T, "at": 1, "bt": 1, "ct": 1, "y": 1},
    )
    copied = recompute_per_reader(g, 0)
    assert [n.name for n in copied.nodes[:3]] == ["s@0", "s@1", "s@2"]
    assert [copied.tensors[f"st@{j}"].consumers for j in range(3)] == [(3,), (4,), (5,)]
    assert least_peak(g) == T + 3
    assert least_peak(copied) == T + 3
