"""A schedule library: the best schedules of finished jobs and imported MetaSchedule databases,
indexed by what their workloads compute, so that new models can start from them.

Layout of a library folder::

    library.json            {"format": "tuneloom-schedule-library", "version": 1}
    index.jsonl             one entry per (source database, workload, target)
    databases/<source>/     best-record extract of each source (a MetaSchedule JSON database:
                            database_workload.json + database_tuning_record.json)

Each index entry describes its workload (``WorkloadInfo``: op class, anchor block, buffer
shapes, anchor loop nest, fused blocks), the target it was tuned for, its best mean latency and
the best record's trace in MetaSchedule's JSON form, plus the model and task it came from.

The index is JSON lines, not SQLite: a library holds one line per tuned workload (hundreds to
thousands), is read whole in milliseconds, and is meant to be copied, inspected and merged like
the MetaSchedule databases beside it. Every change writes a new index and renames it into place
(after the new database extract was renamed into place), so readers see the old or the new
library, never half of one, and a failed add leaves the library exactly as it was. Concurrent
adds are serialised by a lock file.

Op classes come from the anchor block (``find_anchor_sblock``) of the workload's TIR: a
reduction whose data access slides a window over a spatial axis is a convolution
(``depthwise`` when no reduction runs over input channels, i.e. groups == channels) or, with a
single input, a ``pool``; a reduction over two inputs without a window is ``dense`` (matmul,
dense, batch_matmul); any other reduction is ``reduce``; no reduction at all is ``elementwise``.

TVM is imported only by the functions that decode workloads.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from collectors.importers import LogFormatError
from collectors.importers.ms_database import (
    RECORD_FILE,
    WORKLOAD_FILE,
    database_paths,
    looks_like_record,
    looks_like_workload,
    run_secs_of,
)
from tuner._base import TunerError

FORMAT = "tuneloom-schedule-library"
VERSION = 1
MARKER = "library.json"
INDEX = "index.jsonl"
DATABASES = "databases"
LOCK = ".lock"

OP_CLASSES = ("conv1d", "conv2d", "conv3d", "depthwise", "dense", "pool", "reduce", "elementwise")
# Target attributes that do not change the generated code's validity on another machine.
_TARGET_NOISE = ("keys", "tag", "host", "num-cores")


class LibraryError(TunerError):
    """A library or database that cannot be used (not a library, damaged, corrupt input)."""


# --- targets ----------------------------------------------------------------------------------


def target_dict(target: Any) -> dict[str, Any]:
    """A target (a ``tvm.target.Target``, a dict, or a record's target JSON) as a plain dict
    without the attributes that do not matter for reuse (``keys``, ``tag``, ``host``)."""
    if hasattr(target, "export"):
        target = target.export()
    if isinstance(target, str):
        target = {"kind": target}
    if not isinstance(target, Mapping) or not isinstance(target.get("kind"), str):
        raise LibraryError(f"not a target: {target!r}")
    return {
        str(k): _plain_value(v)
        for k, v in sorted(target.items())
        if k not in ("keys", "tag", "host")
    }


def target_key(target: Any) -> str:
    """What code a target generates, e.g. ``llvm -mcpu=znver5`` (``num-cores`` left out:
    a schedule tuned for another core count still computes the same thing)."""
    config = target_dict(target)
    parts = [str(config["kind"])]
    skip = (*_TARGET_NOISE, "kind")
    parts += [f"-{k}={_attr_text(v)}" for k, v in config.items() if k not in skip]
    return " ".join(parts)


def target_cores(target: Any) -> int | None:
    """The target's ``num-cores`` (None when it does not say)."""
    cores = target_dict(target).get("num-cores")
    return int(cores) if isinstance(cores, int) else None


def _plain_value(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_value(v) for v in value]
    return str(value)


def _attr_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


# --- workload descriptions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """What a tuning workload computes, read from its TIR.

    ``anchor_op`` is the anchor block's name (``T_`` stripped); ``shapes`` the PrimFunc's
    buffer shapes (inputs then outputs); ``anchor_shapes`` the anchor block's read buffers'
    shapes then its written buffer's; ``loops`` the anchor block's iteration domain in order
    (``("S", 64)`` spatial, ``("R", 64)`` reduction); ``blocks`` the function's top-level block
    names in order; ``fused_ops`` those names joined by ``+`` (``T_`` and numbering removed).
    """

    op_class: str
    anchor_op: str
    shapes: tuple[tuple[int, ...], ...]
    anchor_shapes: tuple[tuple[int, ...], ...]
    loops: tuple[tuple[str, int], ...]
    blocks: tuple[str, ...]
    func_name: str
    fused_ops: str
    dtype: str
    flops: float | None = None

    @property
    def loop_kinds(self) -> str:
        """The anchor's loop kinds, e.g. ``SSR`` for a matmul."""
        return "".join(kind for kind, _ in self.loops)

    def signature(self) -> tuple[tuple[int, ...], ...]:
        """Shapes that shape similarity compares: the anchor's buffers, then its loop extents
        (which carry the loop order, e.g. NCHW against NHWC)."""
        return (*self.anchor_shapes, tuple(extent for _, extent in self.loops))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["shapes"] = [list(s) for s in self.shapes]
        data["anchor_shapes"] = [list(s) for s in self.anchor_shapes]
        data["loops"] = [[k, e] for k, e in self.loops]
        data["blocks"] = list(self.blocks)
        return data

    @classmethod
    def from_json(cls, data: Any) -> WorkloadInfo:
        """Parse what ``to_json`` wrote; raises ValueError naming the bad field."""
        if not isinstance(data, Mapping):
            raise ValueError("workload is not an object")
        flops = data.get("flops")
        return cls(
            op_class=_text(data, "op_class"),
            anchor_op=_text(data, "anchor_op"),
            shapes=_shapes(data.get("shapes"), "shapes"),
            anchor_shapes=_shapes(data.get("anchor_shapes"), "anchor_shapes"),
            loops=_loops(data.get("loops")),
            blocks=tuple(_text_list(data.get("blocks"), "blocks")),
            func_name=_text(data, "func_name"),
            fused_ops=_text(data, "fused_ops"),
            dtype=_text(data, "dtype"),
            flops=float(flops) if isinstance(flops, int | float) and math.isfinite(flops) else None,
        )


def describe_workload(mod: Any) -> WorkloadInfo:
    """Describe a TIR workload (an IRModule with one PrimFunc): op class, anchor, shapes."""
    import tvm
    from tvm.s_tir import Schedule
    from tvm.s_tir import analysis as s_analysis

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
        ("R" if int(iv.iter_type) == tvm.tirx.IterVar.CommReduce else "S", int(iv.dom.extent))
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
    import tvm

    spatial: dict[str, int] = {}
    reduce: dict[str, int] = {}
    for iv in block.iter_vars:
        extent = int(iv.dom.extent) if isinstance(iv.dom.extent, tvm.tirx.IntImm) else 0
        if int(iv.iter_type) == tvm.tirx.IterVar.CommReduce:
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
    import tvm

    tirx = tvm.tirx
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


# --- library entries --------------------------------------------------------------------------


@dataclass(frozen=True)
class LibraryEntry:
    """One tuned workload in the library: where it came from, what it computes, the target it
    was tuned for, its best mean latency and the best record's trace (MetaSchedule JSON,
    ``[instructions, decisions]``). ``database`` is the folder of the library's extract of the
    source database (absolute in entries a library returns)."""

    source: str
    source_path: str
    database: str
    model: str | None
    task: str
    workload_hash: str
    workload: WorkloadInfo
    target: dict[str, Any]
    latency_s: float
    trials: int
    trace: list[Any] = field(repr=False)
    trace_digest: str = ""

    @property
    def op_class(self) -> str:
        return self.workload.op_class

    @property
    def target_key(self) -> str:
        return target_key(self.target)

    @property
    def label(self) -> str:
        """``model/task`` (``db:<folder>/task`` for a database added without a model name)."""
        return f"{self.origin}/{self.task}"

    @property
    def origin(self) -> str:
        """The model the entry came from, or ``db:<folder>`` for an anonymous database."""
        return self.model or f"db:{Path(self.source_path).name}"

    @property
    def key(self) -> tuple[str, str, str]:
        """Unique within a library: (source, workload hash, target)."""
        return (self.source, self.workload_hash, self.target_key)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "source": self.source,
            "source_path": self.source_path,
            "database": self.database,
            "model": self.model,
            "task": self.task,
            "workload_hash": self.workload_hash,
            "workload": self.workload.to_json(),
            "target": self.target,
            "latency_s": self.latency_s,
            "trials": self.trials,
            "trace_digest": self.trace_digest,
            "trace": self.trace,
        }

    @classmethod
    def from_json(cls, data: Any) -> LibraryEntry:
        """Parse an index line's object; raises ValueError naming the bad field."""
        if not isinstance(data, Mapping):
            raise ValueError("not a JSON object")
        if data.get("v") != VERSION:
            raise ValueError(f"entry version {data.get('v')!r}, expected {VERSION}")
        latency = data.get("latency_s")
        if not isinstance(latency, int | float) or not math.isfinite(latency) or latency <= 0:
            raise ValueError("latency_s is not a positive number")
        trials = data.get("trials")
        if not isinstance(trials, int) or trials < 1:
            raise ValueError("trials is not a positive integer")
        trace = data.get("trace")
        if not _looks_like_trace(trace):
            raise ValueError("trace is not [instructions, decisions]")
        model = data.get("model")
        if model is not None and not isinstance(model, str):
            raise ValueError("model is not a string")
        target = data.get("target")
        if not isinstance(target, Mapping) or not isinstance(target.get("kind"), str):
            raise ValueError("target is not a target object")
        return cls(
            source=_text(data, "source"),
            source_path=_text(data, "source_path"),
            database=_text(data, "database"),
            model=model,
            task=_text(data, "task"),
            workload_hash=_text(data, "workload_hash"),
            workload=WorkloadInfo.from_json(data.get("workload")),
            target=dict(target),
            latency_s=float(latency),
            trials=trials,
            trace=trace,
            trace_digest=_text(data, "trace_digest"),
        )


@dataclass(frozen=True, slots=True)
class AddSummary:
    """What ``add_database`` did: the source id, entries added, entries it left out and why
    (``skipped``), and whether the database was already in the library."""

    source: str
    path: str
    added: int
    skipped: tuple[str, ...] = ()
    already_present: bool = False


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """A database in the library: its id, where it was added from, its model and entries."""

    source: str
    path: str
    model: str | None
    entries: int


# --- the library ------------------------------------------------------------------------------


class ScheduleLibrary:
    """A folder of tuned schedules (see the module docstring).

    ``ScheduleLibrary(folder)`` opens an existing library; ``create=True`` also makes one in a
    missing or empty folder. A folder that holds something else raises LibraryError.
    """

    def __init__(self, folder: str | os.PathLike[str], *, create: bool = False) -> None:
        self.folder = Path(folder)
        marker = self.folder / MARKER
        if self.folder.exists() and not self.folder.is_dir():
            raise LibraryError(f"{self.folder}: not a schedule library (it is a file)")
        if not marker.exists():
            empty = not self.folder.exists() or not any(self.folder.iterdir())
            if not create:
                what = "does not exist" if not self.folder.exists() else f"has no {MARKER}"
                raise LibraryError(
                    f"{self.folder}: not a schedule library ({what}); create one first"
                )
            if not empty:
                raise LibraryError(
                    f"{self.folder}: not a schedule library (no {MARKER}) and not empty; "
                    "choose a new folder"
                )
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / DATABASES).mkdir(exist_ok=True)
            _write_atomic(marker, json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
        self._check_marker(marker)

    @property
    def index_path(self) -> Path:
        return self.folder / INDEX

    def entries(self, op_class: str | None = None, target: Any = None) -> list[LibraryEntry]:
        """The library's entries, optionally only one op class and only schedules for the
        code ``target`` generates (its kind and attributes; ``num-cores`` may differ)."""
        if op_class is not None and op_class not in OP_CLASSES:
            raise LibraryError(f"unknown op class {op_class!r} (known: {', '.join(OP_CLASSES)})")
        key = target_key(target) if target is not None else None
        return [
            entry
            for entry in self._read_index()
            if (op_class is None or entry.op_class == op_class)
            and (key is None or entry.target_key == key)
        ]

    def sources(self) -> list[SourceInfo]:
        """The databases in the library, in the order they were added."""
        found: dict[str, SourceInfo] = {}
        for entry in self._read_index():
            info = found.get(entry.source)
            count = 1 if info is None else info.entries + 1
            found[entry.source] = SourceInfo(entry.source, entry.source_path, entry.model, count)
        return list(found.values())

    def targets(self) -> list[str]:
        """The targets the library holds schedules for (``target_key`` form)."""
        return sorted({entry.target_key for entry in self._read_index()})

    def workload_module(self, entry: LibraryEntry) -> Any:
        """The TIR module the entry was tuned on (decoded from the library's extract)."""
        return load_workload(entry.database, entry.workload_hash)

    def add_database(
        self,
        db: str | os.PathLike[str],
        *,
        model: str | None = None,
        task_names: Mapping[str, str] | Sequence[str] | None = None,
    ) -> AddSummary:
        """Add a MetaSchedule JSON database (a folder, or its record file): the best valid
        record of each workload (per target) becomes an entry, with its workload's extract
        copied into the library.

        ``model`` names the model the database tuned; ``task_names`` names its workloads, by
        workload hash (the ``workload_hash`` of the tuner's task events) or as a list in the
        order of the workload file. Adding the same database again adds nothing, nor does a
        schedule the library already holds for the same workload and target. A corrupt
        database raises LibraryError naming the file and line, and the library is unchanged.
        """
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise LibraryError(f"model name must be a non-empty string, got {model!r}")
        try:
            paths = database_paths(Path(db))
        except LogFormatError as exc:
            raise LibraryError(str(exc)) from None
        with self._locked():
            existing = self._read_index()
            source = _source_id(paths.workload, paths.record)
            if any(e.source == source for e in existing):
                return AddSummary(source, str(paths.directory), 0, already_present=True)
            try:
                parsed = _read_database(paths.workload, paths.record)
                names = _task_name_map(task_names, parsed.hashes)
                new, skipped = self._new_entries(parsed, source, str(paths.directory), model, names)
            except LibraryError as exc:
                raise LibraryError(f"{exc}; nothing was added to the library") from None
            have = {(e.workload_hash, e.target_key, e.trace_digest) for e in existing}
            fresh = []
            for entry in new:
                if (entry.workload_hash, entry.target_key, entry.trace_digest) in have:
                    skipped.append(f"{entry.task}: the library already holds this schedule")
                else:
                    fresh.append(entry)
            if fresh:
                self._write(parsed, source, fresh)
            return AddSummary(source, str(paths.directory), len(fresh), tuple(skipped))

    # --- internals ---------------------------------------------------------------------------

    def _check_marker(self, marker: Path) -> None:
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError) as exc:
            raise LibraryError(f"{marker}: unreadable library marker ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LibraryError(f"{self.folder}: not a schedule library ({marker} says otherwise)")
        if data.get("version") != VERSION:
            raise LibraryError(
                f"{self.folder}: library version {data.get('version')!r}; this tuneloom reads "
                f"version {VERSION}"
            )

    def _read_index(self) -> list[LibraryEntry]:
        path = self.index_path
        if not path.exists():
            return []
        entries = []
        with open(path, encoding="utf-8") as stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    entry = LibraryEntry.from_json(json.loads(line))
                except ValueError as exc:
                    raise LibraryError(
                        f"{path}: line {number} is not a library entry ({exc}); the library is "
                        "damaged: restore that line or remove it"
                    ) from None
                database = self.folder / entry.database
                entries.append(replace(entry, database=str(database.resolve())))
        return entries

    def _new_entries(
        self,
        parsed: _Database,
        source: str,
        source_path: str,
        model: str | None,
        names: Mapping[int, str],
    ) -> tuple[list[LibraryEntry], list[str]]:
        entries: list[LibraryEntry] = []
        skipped: list[str] = []
        for index, line_no in enumerate(parsed.workload_lines):
            best = parsed.best.get(index, {})
            if not best:
                name = names.get(index, f"workload {index}")
                skipped.append(
                    f"{name}: no measured schedule (line {line_no} of the workload file)"
                )
                continue
            mod = _decode_workload(parsed.workload_path, line_no, parsed.workloads[index])
            try:
                info = describe_workload(mod)
            except Exception as exc:  # e.g. symbolic shapes: nothing to compare shapes with
                name = names.get(index, f"workload {index}")
                skipped.append(f"{name}: cannot describe its workload ({_one_line(exc)})")
                continue
            task = names.get(index) or _default_task_name(info)
            for record in best.values():
                _check_replays(mod, record.trace, parsed.record_path, record.line)
                entries.append(
                    LibraryEntry(
                        source=source,
                        source_path=source_path,
                        database=f"{DATABASES}/{source}",
                        model=model,
                        task=task,
                        workload_hash=parsed.hashes[index],
                        workload=info,
                        target=record.target,
                        latency_s=record.latency_s,
                        trials=record.trials,
                        trace=record.trace,
                        trace_digest=_digest(record.trace),
                    )
                )
        return entries, skipped

    def _write(
        self,
        parsed: _Database,
        source: str,
        fresh: list[LibraryEntry],
    ) -> None:
        """Extract to databases/<source>, then the new index; both renamed into place."""
        databases = self.folder / DATABASES
        databases.mkdir(exist_ok=True)
        final = databases / source
        partial = databases / f".{source}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            _write_extract(partial, parsed, fresh)
            shutil.rmtree(final, ignore_errors=True)  # left by an add that failed later
            os.replace(partial, final)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        lines = []  # the current index's lines are kept as they are, byte for byte
        if self.index_path.exists():
            lines = [ln for ln in self.index_path.read_text(encoding="utf-8").splitlines() if ln]
        lines += [json.dumps(e.to_json(), separators=(",", ":")) for e in fresh]
        try:
            _write_atomic(self.index_path, "\n".join(lines) + "\n")
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.folder / LOCK, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


# --- reading source databases ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Best:
    line: int
    raw: list[Any]
    trace: list[Any]
    target: dict[str, Any]
    latency_s: float
    trials: int


@dataclass
class _Database:
    workload_path: Path
    record_path: Path
    workloads: list[list[str]]
    workload_lines: list[int]
    hashes: list[str]
    best: dict[int, dict[str, _Best]]  # workload index -> target key -> best record


def _read_database(workload_path: Path, record_path: Path) -> _Database:
    """Parse and check both files; raises LibraryError naming the first bad line."""
    workloads: list[list[str]] = []
    workload_lines: list[int] = []
    for number, obj in _json_lines(workload_path):
        if not looks_like_workload(obj):
            raise _corrupt(workload_path, number, "not a workload line [hash, base64 module]")
        workloads.append(obj)
        workload_lines.append(number)
    if not workloads:
        raise LibraryError(f"{workload_path}: holds no workload")
    best: dict[int, dict[str, _Best]] = {}
    counts: dict[tuple[int, str], int] = {}
    for number, obj in _json_lines(record_path):
        if not looks_like_record(obj):
            raise _corrupt(record_path, number, "not a tuning record [index, [trace, ...]]")
        index, body = obj[0], obj[1]
        if not 0 <= index < len(workloads):
            raise _corrupt(record_path, number, f"workload index {index} has no workload line")
        if len(body) < 3 or not _looks_like_trace(body[0]):
            raise _corrupt(record_path, number, "trace is not [instructions, decisions]")
        try:
            target = target_dict(body[2])
        except LibraryError:
            raise _corrupt(record_path, number, "no target in the record") from None
        secs = run_secs_of(body[1])
        if secs is None:
            continue  # a failed build or run: MetaSchedule's 1e10 s marker
        if not body[0][0]:
            continue  # no instruction: the untuned workload (a reuse job's fallback)
        key = target_key(target)
        counts[index, key] = counts.get((index, key), 0) + 1
        mean = sum(secs) / len(secs)
        current = best.setdefault(index, {}).get(key)
        if current is None or mean < current.latency_s:
            best[index][key] = _Best(number, obj, body[0], target, mean, 0)
    for index, per_target in best.items():
        for key, record in per_target.items():
            per_target[key] = replace(record, trials=counts[index, key])
    return _Database(
        workload_path, record_path, workloads, workload_lines, [w[0] for w in workloads], best
    )


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        stream = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise LibraryError(f"{path}: cannot read ({exc.strerror})") from None
    with stream:
        number = 0
        try:
            for number, line in enumerate(stream, start=1):
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                try:
                    yield number, json.loads(text)
                except ValueError as exc:
                    raise _corrupt(path, number, f"not JSON ({exc})") from None
        except UnicodeDecodeError:
            raise _corrupt(path, number + 1, "not UTF-8 text") from None


def _decode_workload(path: Path, line: int, obj: list[str]) -> Any:
    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms

    try:
        mod = ms.database.Workload.from_json(obj).mod
    except Exception as exc:
        raise _corrupt(path, line, f"the module does not decode ({_one_line(exc)})") from None
    if str(tvm_ffi.structural_hash(mod)) != obj[0]:
        raise _corrupt(path, line, "the module does not match its structural hash")
    return mod


def _check_replays(mod: Any, trace: list[Any], path: Path, line: int) -> None:
    from tvm.s_tir import Schedule, Trace

    try:
        Trace.apply_json_to_schedule(trace, Schedule(mod))
    except Exception as exc:
        raise _corrupt(
            path, line, f"its trace does not replay on its own workload ({_one_line(exc)})"
        ) from None


@lru_cache(maxsize=64)
def _cached_workload(path: str, workload_hash: str, mtime_ns: int) -> Any:
    file = Path(path)
    for number, obj in _json_lines(file):
        if looks_like_workload(obj) and obj[0] == workload_hash:
            return _decode_workload(file, number, obj)
    raise LibraryError(f"{file}: no workload with hash {workload_hash}; the library is damaged")


def load_workload(database: str | os.PathLike[str], workload_hash: str) -> Any:
    """The TIR module with ``workload_hash`` in a MetaSchedule database folder (cached)."""
    path = Path(database) / WORKLOAD_FILE
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise LibraryError(f"{path}: missing; the library is damaged") from None
    return _cached_workload(str(path), workload_hash, mtime)


def _write_extract(folder: Path, parsed: _Database, entries: list[LibraryEntry]) -> None:
    """The chosen workloads and their best records, as a MetaSchedule JSON database."""
    wanted = {e.workload_hash for e in entries}
    keys = {(e.workload_hash, e.target_key) for e in entries}
    workload_out: list[str] = []
    record_out: list[str] = []
    for index, obj in enumerate(parsed.workloads):
        if parsed.hashes[index] not in wanted:
            continue
        new_index = len(workload_out)
        workload_out.append(json.dumps(obj, separators=(",", ":")))
        for key, record in parsed.best.get(index, {}).items():
            if (parsed.hashes[index], key) in keys:
                body = record.raw[1]
                record_out.append(json.dumps([new_index, body], separators=(",", ":")))
    _write_atomic(folder / WORKLOAD_FILE, "\n".join(workload_out) + "\n")
    _write_atomic(folder / RECORD_FILE, "\n".join(record_out) + "\n")


# --- helpers ------------------------------------------------------------------------------------


def _task_name_map(
    names: Mapping[str, str] | Sequence[str] | None, hashes: list[str]
) -> dict[int, str]:
    if names is None:
        return {}
    if isinstance(names, Mapping):
        return {i: str(names[h]) for i, h in enumerate(hashes) if h in names}
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise LibraryError("task_names must map workload hashes to names, or list the names")
    if len(names) != len(hashes):
        raise LibraryError(
            f"task_names lists {len(names)} names but the database has {len(hashes)} workloads"
        )
    return {i: str(n) for i, n in enumerate(names)}


def _default_task_name(info: WorkloadInfo) -> str:
    shapes = ",".join("x".join(map(str, s)) for s in info.shapes)
    return f"{info.op_class}:{shapes}"


def _source_id(workload: Path, record: Path) -> str:
    digest = hashlib.sha256()
    for path in (workload, record):
        try:
            with open(path, "rb") as stream:
                for chunk in iter(lambda s=stream: s.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as exc:
            raise LibraryError(f"{path}: cannot read ({exc.strerror})") from None
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _digest(trace: Any) -> str:
    text = json.dumps(trace, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _looks_like_trace(obj: Any) -> bool:
    return (
        isinstance(obj, list)
        and len(obj) == 2
        and isinstance(obj[0], list)
        and isinstance(obj[1], list)
        and all(isinstance(inst, list) and inst and isinstance(inst[0], str) for inst in obj[0])
    )


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _corrupt(path: Path, line: int, why: str) -> LibraryError:
    return LibraryError(f"{path}: line {line}: {why}")


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}".rstrip(": ")


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value


def _text_list(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} is not a list of strings")
    return value


def _shapes(value: Any, key: str) -> tuple[tuple[int, ...], ...]:
    if not isinstance(value, list) or not all(
        isinstance(s, list) and all(type(d) is int and d >= 0 for d in s) for s in value
    ):
        raise ValueError(f"{key} is not a list of shapes")
    return tuple(tuple(s) for s in value)


def _loops(value: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and p[0] in ("S", "R") and type(p[1]) is int
        for p in value
    ):
        raise ValueError("loops is not a list of [S|R, extent]")
    return tuple((p[0], p[1]) for p in value)
