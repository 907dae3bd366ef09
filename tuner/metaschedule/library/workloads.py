"""What a tuning workload computes, read from its TIR with TVM: the library's workload
descriptions, decoding workloads from a MetaSchedule database and checking that traces replay.

Op classes come from the anchor block (``find_anchor_sblock``) of the workload's TIR: a
reduction whose data access slides a window over a spatial axis is a convolution
(``depthwise`` when no reduction runs over input channels, i.e. groups == channels) or, with a
single input, a ``pool``; a reduction over two inputs without a window is ``dense`` (matmul,
dense, batch_matmul); any other reduction is ``reduce``; no reduction at all is ``elementwise``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import tvm_ffi
from tvm import tirx
from tvm.s_tir import Schedule, Trace
from tvm.s_tir import analysis as s_analysis
from tvm.s_tir import meta_schedule as ms

from collectors.importers.ms_database import WORKLOAD_FILE, workload_lines
from tuner._base import one_line
from tuner.metaschedule.library.index import LibraryError, WorkloadInfo, line_error


def describe_workload(mod: Any) -> WorkloadInfo:
    """Describe a TIR workload (an IRModule with one PrimFunc): op class, anchor, shapes."""
    func_var, func = next(iter(mod.functions.items()))
    func_name = str(func_var.name_hint)
    shapes = tuple(_int_shape(param.ty.shape) for param in func.params)
    dtypes = [str(param.ty.dtype) for param in func.params]
    sch = Schedule(mod)
    children = sch.get_child_blocks(sch.get_sblock("root", func_name))
    blocks = [sch.get(b) for b in children]
    try:
        anchor = s_analysis.find_anchor_sblock(mod)
    except Exception:
        anchor = None
    if anchor is None and blocks:
        anchor = blocks[-1]  # all spatial: the block that writes the result
    try:
        flops: float | None = float(s_analysis.estimate_tir_flops(mod))
    except Exception:
        flops = None
    if anchor is None:
        raise LibraryError(f"workload {func_name} has no block to describe")
    op_class = classify_block(anchor)
    written = {str(w.source.name) for w in anchor.writes}
    reads = [r for r in anchor.reads if str(r.source.name) not in written]
    anchor_shapes = tuple(_int_shape(r.source.shape) for r in reads) + tuple(
        _int_shape(w.source.shape) for w in anchor.writes
    )
    loops = tuple(
        ("R" if int(iv.iter_type) == tirx.IterVar.CommReduce else "S", int(iv.dom.extent))
        for iv in anchor.iter_vars
    )
    names = tuple(str(b.name_hint) for b in blocks)
    return WorkloadInfo(
        op_class=op_class,
        anchor_op=re.sub(r"^T_", "", str(anchor.name_hint)),
        shapes=shapes,
        anchor_shapes=anchor_shapes,
        loops=loops,
        blocks=names,
        func_name=func_name,
        fused_ops="+".join(_op_name(n) for n in names),
        dtype=dtypes[-1] if dtypes else "float32",
        flops=flops,
    )


def classify_block(block: Any) -> str:
    """The op class of an anchor block (see the module docstring)."""
    spatial: dict[str, int] = {}
    reduce: dict[str, int] = {}
    for iv in block.iter_vars:
        extent = int(iv.dom.extent) if isinstance(iv.dom.extent, tirx.IntImm) else 0
        if int(iv.iter_type) == tirx.IterVar.CommReduce:
            reduce[str(iv.var.name)] = extent
        else:
            spatial[str(iv.var.name)] = extent
    if not reduce:
        return "elementwise"
    written = {str(w.source.name) for w in block.writes}
    reads = [r for r in block.reads if str(r.source.name) not in written]
    window: set[str] = set()
    data_rank = 0
    for region in reads:
        in_window = False
        for dim in region.region:
            names = list(_index_vars(dim.min))
            plain_spatial = any(n in spatial and not div for n, div in names)
            here = {n for n, _ in names if n in reduce}
            if plain_spatial and here:
                window |= here
                in_window = True
        if in_window:
            data_rank = max(data_rank, len(region.region))
    if window:
        if len(reads) == 1:
            return "pool"
        channels = math.prod(extent for name, extent in reduce.items() if name not in window)
        if channels == 1:
            return "depthwise"
        return f"conv{max(1, data_rank - 2)}d" if data_rank in (3, 4, 5) else "conv2d"
    return "dense" if len(reads) >= 2 else "reduce"


def _index_vars(expr: Any, under_div: bool = False) -> Iterator[tuple[str, bool]]:
    """(name, under a division) of each variable in an index expression."""
    if isinstance(expr, tirx.Var):
        yield str(expr.name), under_div
    elif isinstance(expr, tirx.IntImm | tirx.FloatImm):
        return
    elif isinstance(expr, tirx.FloorDiv | tirx.FloorMod | tirx.Div | tirx.Mod):
        yield from _index_vars(expr.a, True)
        yield from _index_vars(expr.b, True)
    elif hasattr(expr, "a") and hasattr(expr, "b"):
        yield from _index_vars(expr.a, under_div)
        yield from _index_vars(expr.b, under_div)
    elif isinstance(expr, tirx.Cast):
        yield from _index_vars(expr.value, under_div)
    else:  # anything else (calls, selects): its variables, counted as not plain
        for var in tirx.analysis.undefined_vars(expr, []):
            yield str(var.name), True


def _op_name(block_name: str) -> str:
    name = re.sub(r"^T_", "", block_name)
    name = re.sub(r"_intermediate$", "", name)
    return re.sub(r"_?\d+$", "", name) or block_name


def _int_shape(shape: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in shape)


# --- workloads of a database ---------------------------------------------------------------


def decode_workload(path: Path, line: int, obj: list[str]) -> Any:
    """The TIR module of a workload line ``[structural hash, base64]``; raises LibraryError
    naming the line when it does not decode or does not match its hash."""
    try:
        mod = ms.database.Workload.from_json(obj).mod
    except Exception as exc:
        raise line_error(
            path, line, f"the module does not decode ({one_line(exc, last=True)})"
        ) from None
    if str(tvm_ffi.structural_hash(mod)) != obj[0]:
        raise line_error(path, line, "the module does not match its structural hash")
    return mod


def check_replays(mod: Any, trace: list[Any], path: Path, line: int) -> None:
    """Raise LibraryError naming the record's line when ``trace`` does not replay on ``mod``."""
    try:
        Trace.apply_json_to_schedule(trace, Schedule(mod))
    except Exception as exc:
        why = f"its trace does not replay on its own workload ({one_line(exc, last=True)})"
        raise line_error(path, line, why) from None


def load_workload(database: str | os.PathLike[str], workload_hash: str) -> Any:
    """The TIR module with ``workload_hash`` in a MetaSchedule database folder (cached)."""
    path = Path(database) / WORKLOAD_FILE
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise LibraryError(f"{path}: missing; the library is damaged") from None
    return _cached_workload(str(path), workload_hash, mtime)


@lru_cache(maxsize=64)
def _cached_workload(path: str, workload_hash: str, mtime_ns: int) -> Any:
    file = Path(path)
    for number, obj in workload_lines(file, _refuse):
        if obj is not None and obj[0] == workload_hash:
            return decode_workload(file, number, obj)
    raise LibraryError(f"{file}: no workload with hash {workload_hash}; the library is damaged")


def _refuse(path: Path, line: int, why: str) -> None:
    raise line_error(path, line, f"{why}; the library is damaged")
