"""Workload specs: the grammar, shapes and flops, clear errors, and TIR that computes right."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuner._base import TunerError
from tuner.metaschedule.workloads import (
    GRAMMAR,
    parse_job_workloads,
    parse_workload,
    task_names,
    workload_module,
)


@pytest.mark.parametrize(
    ("text", "name", "shapes", "flops"),
    [
        ("matmul:64", "matmul:64x64x64", ((64, 64), (64, 64), (64, 64)), 2 * 64**3),
        ("matmul:4x5x6", "matmul:4x5x6", ((4, 6), (6, 5), (4, 5)), 2 * 4 * 5 * 6),
        (" MATMUL:8 ", "matmul:8x8x8", ((8, 8), (8, 8), (8, 8)), 2 * 8**3),
        ("batch_matmul:2x3x4x5", "batch_matmul:2x3x4x5", ((2, 3, 5), (2, 5, 4), (2, 3, 4)), 240),
        ("dense:2x6x3", "dense:2x6x3", ((2, 6), (3, 6), (2, 3)), 2 * 2 * 6 * 3),
        (
            "conv2d:1x3x8x8,4x3x3,pad=1",
            "conv2d:1x3x8x8,4x3x3,stride=1,pad=1",
            ((1, 3, 8, 8), (4, 3, 3, 3), (1, 4, 8, 8)),
            2 * 4 * 8 * 8 * 3 * 3 * 3,
        ),
        (
            "conv2d:2x2x9x9,3x3x3,stride=2",
            "conv2d:2x2x9x9,3x3x3,stride=2,pad=0",
            ((2, 2, 9, 9), (3, 2, 3, 3), (2, 3, 4, 4)),
            2 * 2 * 3 * 4 * 4 * 2 * 3 * 3,
        ),
    ],
)
def test_parse_gives_canonical_name_shapes_and_flops(
    text: str, name: str, shapes: tuple, flops: int
) -> None:
    spec = parse_workload(text)
    assert spec.name == name
    assert spec.shapes == shapes
    assert spec.flops == flops
    assert spec.dtype == "float32"
    assert parse_workload(spec.name) == spec


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("matmul", "missing ':'"),
        ("foo:3", "unknown operator 'foo'"),
        ("matmul:0", "positive"),
        ("matmul:3x4", "N or MxNxK"),
        ("matmul:a", "dimensions must look like"),
        ("dense:1x2", "BxIxO"),
        ("batch_matmul:1x2x3", "BxMxNxK"),
        ("conv2d:1x3x4x4", "NxCxHxW,KxRxS"),
        ("conv2d:1x3x4,8x1x1", "NxCxHxW"),
        ("conv2d:1x3x4x4,8x5x5", "does not fit"),
        ("conv2d:1x3x4x4,8x1x1,bad=2", "unknown conv2d option"),
        ("conv2d:1x3x4x4,8x1x1,stride=0", "stride must be >= 1"),
        ("conv2d:1x3x4x4,8x1x1,pad=1,pad=2", "given twice"),
        ("matmul:100000", "too large"),
        ("", "empty"),
    ],
)
def test_bad_spec_says_what_is_wrong_and_shows_the_grammar(text: str, why: str) -> None:
    with pytest.raises(TunerError) as info:
        parse_workload(text)
    assert why in str(info.value)
    if text:
        assert GRAMMAR in str(info.value)


def test_commas_split_tasks_only_where_an_operator_starts() -> None:
    specs = parse_job_workloads("matmul:128,conv2d:1x3x32x32,8x3x3,pad=1, dense:1x4x4")
    assert [s.name for s in specs] == [
        "matmul:128x128x128",
        "conv2d:1x3x32x32,8x3x3,stride=1,pad=1",
        "dense:1x4x4",
    ]
    with pytest.raises(TunerError, match="one group of dimensions"):
        parse_job_workloads("matmul:128,")


def test_repeated_workloads_get_unique_task_names() -> None:
    specs = parse_job_workloads("matmul:8,matmul:8x8x8,dense:1x2x3,matmul:8")
    assert task_names(specs) == ["matmul:8x8x8", "matmul:8x8x8#2", "dense:1x2x3", "matmul:8x8x8#3"]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["matmul", "batch_matmul", "dense"]),
    st.lists(st.integers(1, 64), min_size=4, max_size=4),
)
def test_canonical_names_parse_back_to_the_same_spec(op: str, dims: list[int]) -> None:
    count = {"matmul": 3, "batch_matmul": 4, "dense": 3}[op]
    spec = parse_workload(f"{op}:{'x'.join(map(str, dims[:count]))}")
    assert parse_workload(spec.name) == spec
    assert spec.flops == 2.0 * np.prod(dims[:count])


def _reference(name: str, inputs: list[np.ndarray]) -> np.ndarray:
    spec = parse_workload(name)
    a, b = inputs
    if spec.op == "matmul":
        return a @ b
    if spec.op == "batch_matmul":
        return np.einsum("bmk,bkn->bmn", a, b)
    if spec.op == "dense":
        return a @ b.T
    pad, stride = spec.pad, spec.stride
    padded = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    _, _, oh, ow = spec.shapes[2]
    _, _, r, s = b.shape
    out = np.zeros(spec.shapes[2], dtype=np.float32)
    for y in range(oh):
        for x in range(ow):
            window = padded[:, :, y * stride : y * stride + r, x * stride : x * stride + s]
            out[:, :, y, x] = np.einsum("ncrs,kcrs->nk", window, b)
    return out


@pytest.mark.parametrize(
    "text",
    [
        "matmul:8x5x6",
        "batch_matmul:2x3x4x5",
        "dense:2x6x3",
        "conv2d:1x3x8x8,4x3x3,pad=1",
        "conv2d:2x2x9x9,3x3x3,stride=2",
    ],
)
def test_workload_module_computes_what_the_spec_says(text: str) -> None:
    import tvm

    spec = parse_workload(text)
    mod = workload_module(text)
    assert workload_module(spec) is mod  # cached per spec
    rng = np.random.default_rng(0)
    inputs = [rng.random(shape, dtype=np.float32) for shape in spec.shapes[:-1]]
    out = tvm.runtime.tensor(np.zeros(spec.shapes[-1], dtype=np.float32))
    built = tvm.tirx.build(mod, target="llvm")
    built(*[tvm.runtime.tensor(x) for x in inputs], out)
    np.testing.assert_allclose(out.numpy(), _reference(text, inputs), rtol=1e-5, atol=1e-5)
