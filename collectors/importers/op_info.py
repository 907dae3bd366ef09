"""Floating-point operation counts derivable from AutoTVM task arguments (no TVM needed)."""

from __future__ import annotations

import math
import re
from typing import Any

# TVM 0.4-0.6 task names carry a ``topi_`` and a backend prefix (``topi_nn_dense``,
# ``topi_x86_batch_matmul``) where later ones start with the op (``dense_pack.x86``).
_OLD_TASK_PREFIX = re.compile(r"^topi_(?:[a-z0-9]+(?:_cpu|_graphics)?_)??(?=dense|batch_matmul)")


def autotvm_flops(op: str, args: Any) -> float | None:
    """FLOPs of one call of an AutoTVM task, or None when the op is not one we can count.

    Covers dense (``[M, K] x [N, K]``), batch_matmul (``[B, M, K] x [B, N, K]``) and NCHW
    conv2d / depthwise conv2d (multiply and add counted as two operations), under today's
    task names and those of TVM 0.4-0.6 (``topi_nn_dense``).
    """
    if not isinstance(args, list) or len(args) < 2:
        return None
    a, b = _tensor(args[0]), _tensor(args[1])
    if a is None or b is None:
        return None
    name = _OLD_TASK_PREFIX.sub("", op.lower())
    try:
        if name.startswith("dense") and len(a) == 2 and len(b) == 2:
            (m, k), (n, _) = a, b
            return float(2 * m * n * k)
        if name.startswith("batch_matmul") and len(a) == 3 and len(b) == 3:
            (batch, m, k), (_, n, _) = a, b
            return float(2 * batch * m * n * k)
        if "conv2d" in name and len(a) == 4 and len(b) == 4 and _is_nchw(name, args):
            return _conv2d_nchw_flops(name, a, b, args)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return None
    return None


def _tensor(arg: Any) -> tuple[int, ...] | None:
    if (
        isinstance(arg, list)
        and len(arg) == 3
        and arg[0] == "TENSOR"
        and isinstance(arg[1], list)
        and all(type(d) is int and d > 0 for d in arg[1])
    ):
        return tuple(arg[1])
    return None


def _is_nchw(name: str, args: list[Any]) -> bool:
    if "nhwc" in name or "hwcn" in name:
        return False
    layouts = [a for a in args[2:] if isinstance(a, str) and a.isalpha() and a.isupper()]
    return "nchw" in name or (bool(layouts) and layouts[0] == "NCHW")


def _pair(value: Any) -> tuple[int, int]:
    if type(value) is int:
        return value, value
    if isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value):
        return value[0], value[1]
    raise ValueError(f"not an int pair: {value!r}")


def _padding(value: Any) -> tuple[int, int]:
    """Total padding (height, width) from an int, [h, w] or [top, left, bottom, right]."""
    if type(value) is int:
        return 2 * value, 2 * value
    if isinstance(value, list) and all(type(v) is int for v in value):
        if len(value) == 2:
            return 2 * value[0], 2 * value[1]
        if len(value) == 4:
            return value[0] + value[2], value[1] + value[3]
    raise ValueError(f"not a padding: {value!r}")


def _conv2d_nchw_flops(
    name: str, data: tuple[int, ...], kernel: tuple[int, ...], args: list[Any]
) -> float | None:
    n, channels, height, width = data
    strides, padding, dilation = _conv2d_params(args[2:], kernel)
    if "depthwise" in name:
        in_channels, multiplier, kh, kw = kernel
        out_channels, per_output = in_channels * multiplier, 1
    else:
        out_channels, per_output, kh, kw = kernel
        if channels % per_output:
            return None
    out_h = (height + padding[0] - ((kh - 1) * dilation[0] + 1)) // strides[0] + 1
    out_w = (width + padding[1] - ((kw - 1) * dilation[1] + 1)) // strides[1] + 1
    if out_h <= 0 or out_w <= 0:
        return None
    return float(2 * math.prod((n, out_channels, out_h, out_w, per_output, kh, kw)))


def _conv2d_params(
    rest: list[Any], kernel: tuple[int, ...]
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(strides, total padding, dilation) from the arguments after data and kernel.

    Older templates (TVM 0.5-0.6 x86 and Intel Graphics NCHWc) put a channel count and
    the kernel size first, and the oldest (TVM 0.4) have no dilation: a layout string
    follows the padding. Raises ValueError when the arguments are none of these.
    """
    if (
        len(rest) >= 2
        and type(rest[0]) is int
        and rest[0] in kernel[:2]
        and isinstance(rest[1], list)
        and tuple(rest[1]) == kernel[2:4]
    ):
        rest = rest[2:]
    if len(rest) < 2:
        raise ValueError("no strides and padding")
    has_dilation = len(rest) > 2 and not isinstance(rest[2], str)
    dilation = _pair(rest[2]) if has_dilation else (1, 1)
    return _pair(rest[0]), _padding(rest[1]), dilation
