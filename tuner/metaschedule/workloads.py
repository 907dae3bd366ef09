"""Built-in tuning workloads, named by spec strings.

Grammar (float32; dimensions are positive integers; ``x`` separates them)::

    matmul:N                      C[N,N]   = A[N,N] @ B[N,N]
    matmul:MxNxK                  C[M,N]   = A[M,K] @ B[K,N]
    batch_matmul:BxMxNxK          C[B,M,N] = A[B,M,K] @ B[B,K,N]
    dense:BxIxO                   Y[B,O]   = X[B,I] @ W[O,I]^T
    conv2d:NxCxHxW,KxRxS[,stride=S][,pad=P]
                                  NCHW input, KCRS weights, output N x K x H' x W'
                                  with H' = (H + 2P - R) // S + 1 (stride 1, pad 0 by default)

Several specs joined by commas make one job of several tasks, e.g.
``matmul:128,conv2d:1x3x32x32,8x3x3,pad=1``: a comma starts a new task exactly where the
next item begins with an operator name and a colon (``conv2d:``), so the commas inside a
conv2d spec stay part of it.

Parsing is pure (no TVM); ``workload_module`` builds the TIR with TVM's tensor expressions
and caches it per canonical spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from tuner._base import TunerError

if TYPE_CHECKING:
    from tvm.ir import IRModule

DTYPE = "float32"
# No tensor of a built-in workload may exceed this many elements (1 GiB of float32).
MAX_ELEMENTS = 1 << 28

GRAMMAR = (
    "matmul:N | matmul:MxNxK | batch_matmul:BxMxNxK | dense:BxIxO | "
    "conv2d:NxCxHxW,KxRxS[,stride=S][,pad=P]; join several with commas for one job of "
    "several tasks (e.g. matmul:128,dense:1x512x256)"
)

OPS = ("matmul", "batch_matmul", "dense", "conv2d")

_TASK_START = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:")
_DIMS = re.compile(r"^\d+(x\d+)*$")


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """One parsed workload: what it computes, its tensor shapes and its work.

    ``name`` is the canonical spec (``matmul:64`` -> ``matmul:64x64x64``); ``shapes`` are the
    inputs' shapes then the output's; ``flops`` counts a multiply-add as two operations.
    """

    op: str
    name: str
    dims: tuple[int, ...]
    stride: int = 1
    pad: int = 0
    dtype: str = DTYPE

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        if self.op == "matmul":
            m, n, k = self.dims
            return ((m, k), (k, n), (m, n))
        if self.op == "batch_matmul":
            b, m, n, k = self.dims
            return ((b, m, k), (b, k, n), (b, m, n))
        if self.op == "dense":
            b, i, o = self.dims
            return ((b, i), (o, i), (b, o))
        n, c, h, w, k, r, s = self.dims
        oh, ow = _conv_out(h, r, self.stride, self.pad), _conv_out(w, s, self.stride, self.pad)
        return ((n, c, h, w), (k, c, r, s), (n, k, oh, ow))

    @property
    def flops(self) -> float:
        if self.op == "matmul":
            m, n, k = self.dims
            return 2.0 * m * n * k
        if self.op == "batch_matmul":
            b, m, n, k = self.dims
            return 2.0 * b * m * n * k
        if self.op == "dense":
            b, i, o = self.dims
            return 2.0 * b * i * o
        n, c, _, _, k, r, s = self.dims
        _, _, oh, ow = self.shapes[2]
        return 2.0 * n * k * oh * ow * c * r * s


def parse_workload(text: str) -> WorkloadSpec:
    """Parse one spec string; raises TunerError saying what is wrong and showing the grammar."""
    if not isinstance(text, str) or not text.strip():
        raise TunerError(f"empty workload spec (expected {GRAMMAR})")
    spec = text.strip()
    op, sep, rest = spec.partition(":")
    op = op.strip().lower()
    if not sep:
        raise _bad(spec, "missing ':' after the operator name")
    if op not in OPS:
        raise _bad(spec, f"unknown operator {op!r} (known: {', '.join(OPS)})")
    parts = [p.strip() for p in rest.split(",")]
    if op == "conv2d":
        return _parse_conv2d(spec, parts)
    if len(parts) != 1:
        raise _bad(spec, f"{op} takes one group of dimensions, got {len(parts)}")
    dims = _dims(spec, parts[0])
    if op == "matmul":
        if len(dims) == 1:
            dims = dims * 3
        if len(dims) != 3:
            raise _bad(spec, f"matmul takes N or MxNxK, got {len(dims)} dimensions")
    elif op == "batch_matmul" and len(dims) != 4:
        raise _bad(spec, f"batch_matmul takes BxMxNxK, got {len(dims)} dimensions")
    elif op == "dense" and len(dims) != 3:
        raise _bad(spec, f"dense takes BxIxO, got {len(dims)} dimensions")
    workload = WorkloadSpec(op=op, name=f"{op}:{'x'.join(map(str, dims))}", dims=dims)
    _check_size(spec, workload)
    return workload


def parse_job_workloads(text: str) -> list[WorkloadSpec]:
    """Parse a comma-joined list of specs (one job, several tasks); see the module grammar."""
    if not isinstance(text, str) or not text.strip():
        raise TunerError(f"empty workload spec (expected {GRAMMAR})")
    groups: list[list[str]] = []
    for item in text.split(","):
        if _TASK_START.match(item) or not groups:
            groups.append([item])
        else:
            groups[-1].append(item)
    return [parse_workload(",".join(group)) for group in groups]


def task_names(workloads: list[WorkloadSpec]) -> list[str]:
    """Unique task names for a job: the canonical spec, with ``#2``, ``#3`` for repeats."""
    seen: dict[str, int] = {}
    names = []
    for workload in workloads:
        count = seen.get(workload.name, 0) + 1
        seen[workload.name] = count
        names.append(workload.name if count == 1 else f"{workload.name}#{count}")
    return names


def workload_module(spec: WorkloadSpec | str) -> IRModule:
    """The workload as a TIR ``IRModule`` with one PrimFunc ``main`` (cached per spec)."""
    workload = parse_workload(spec) if isinstance(spec, str) else spec
    return _module(workload)


@lru_cache(maxsize=64)
def _module(workload: WorkloadSpec) -> IRModule:
    import tvm
    from tvm import te

    shapes = workload.shapes
    if workload.op == "matmul":
        a = te.placeholder(shapes[0], workload.dtype, name="A")
        b = te.placeholder(shapes[1], workload.dtype, name="B")
        k = te.reduce_axis((0, shapes[0][1]), name="k")
        out = te.compute(shapes[2], lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
        tensors = [a, b, out]
    elif workload.op == "batch_matmul":
        a = te.placeholder(shapes[0], workload.dtype, name="A")
        b = te.placeholder(shapes[1], workload.dtype, name="B")
        k = te.reduce_axis((0, shapes[0][2]), name="k")
        out = te.compute(
            shapes[2], lambda n, i, j: te.sum(a[n, i, k] * b[n, k, j], axis=k), name="C"
        )
        tensors = [a, b, out]
    elif workload.op == "dense":
        x = te.placeholder(shapes[0], workload.dtype, name="X")
        w = te.placeholder(shapes[1], workload.dtype, name="W")
        k = te.reduce_axis((0, shapes[0][1]), name="k")
        out = te.compute(shapes[2], lambda i, j: te.sum(x[i, k] * w[j, k], axis=k), name="Y")
        tensors = [x, w, out]
    else:
        tensors = _conv2d_tensors(workload)
    return tvm.IRModule({"main": te.create_prim_func(tensors)})


def _conv2d_tensors(workload: WorkloadSpec) -> list:
    from tvm import te, tirx

    (n, c, h, w), (k, _, r, s), out_shape = workload.shapes
    stride, pad = workload.stride, workload.pad
    data = te.placeholder((n, c, h, w), workload.dtype, name="I")
    weight = te.placeholder((k, c, r, s), workload.dtype, name="W")
    if pad:
        padded = te.compute(
            (n, c, h + 2 * pad, w + 2 * pad),
            lambda b, ci, y, x: tirx.if_then_else(
                tirx.all(y >= pad, y < h + pad, x >= pad, x < w + pad),
                data[b, ci, y - pad, x - pad],
                tirx.const(0.0, workload.dtype),
            ),
            name="pad",
        )
    else:
        padded = data
    rc = te.reduce_axis((0, c), name="rc")
    ry = te.reduce_axis((0, r), name="ry")
    rx = te.reduce_axis((0, s), name="rx")
    out = te.compute(
        out_shape,
        lambda b, f, y, x: te.sum(
            padded[b, rc, y * stride + ry, x * stride + rx] * weight[f, rc, ry, rx],
            axis=[rc, ry, rx],
        ),
        name="O",
    )
    return [data, weight, out]


def _parse_conv2d(spec: str, parts: list[str]) -> WorkloadSpec:
    if len(parts) < 2:
        raise _bad(spec, "conv2d takes NxCxHxW,KxRxS (input and weight shapes)")
    data, weight = _dims(spec, parts[0]), _dims(spec, parts[1])
    if len(data) != 4:
        raise _bad(spec, f"conv2d input must be NxCxHxW, got {len(data)} dimensions")
    if len(weight) != 3:
        raise _bad(spec, f"conv2d weight must be KxRxS, got {len(weight)} dimensions")
    options = {"stride": 1, "pad": 0}
    given: set[str] = set()
    for part in parts[2:]:
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if not eq or key not in options:
            raise _bad(spec, f"unknown conv2d option {part!r} (options: stride=S, pad=P)")
        if key in given:
            raise _bad(spec, f"conv2d option {key} given twice")
        given.add(key)
        value = value.strip()
        if not value.isdigit():
            raise _bad(spec, f"conv2d {key} must be an integer, got {value!r}")
        options[key] = int(value)
    stride, pad = options["stride"], options["pad"]
    if stride < 1:
        raise _bad(spec, "conv2d stride must be >= 1")
    n, c, h, w = data
    k, r, s = weight
    if _conv_out(h, r, stride, pad) < 1 or _conv_out(w, s, stride, pad) < 1:
        raise _bad(spec, f"the {r}x{s} kernel does not fit the {h}x{w} input with pad {pad}")
    name = f"conv2d:{n}x{c}x{h}x{w},{k}x{r}x{s},stride={stride},pad={pad}"
    workload = WorkloadSpec(
        op="conv2d", name=name, dims=(n, c, h, w, k, r, s), stride=stride, pad=pad
    )
    _check_size(spec, workload)
    return workload


def _dims(spec: str, text: str) -> tuple[int, ...]:
    text = text.strip().lower()
    if not _DIMS.match(text):
        raise _bad(spec, f"dimensions must look like 64 or 64x32x16, got {text!r}")
    dims = tuple(int(d) for d in text.split("x"))
    if any(d <= 0 for d in dims):
        raise _bad(spec, "dimensions must be positive")
    return dims


def _check_size(spec: str, workload: WorkloadSpec) -> None:
    for shape in workload.shapes:
        elements = 1
        for d in shape:
            elements *= d
        if elements > MAX_ELEMENTS:
            raise _bad(
                spec,
                f"tensor of shape {'x'.join(map(str, shape))} is too large "
                f"(at most {MAX_ELEMENTS} elements)",
            )


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _bad(spec: str, why: str) -> TunerError:
    return TunerError(f"bad workload spec {spec!r}: {why} (expected {GRAMMAR})")
