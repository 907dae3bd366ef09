"""The schedule library's index and folder, without TVM: what an entry holds, reading and
writing ``index.jsonl``, the folder's marker and its lock.

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
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from collectors.importers.ms_database import looks_like_trace
from collectors.importers.ms_targets import target_key
from tuner._base import TunerError

FORMAT = "tuneloom-schedule-library"
VERSION = 1
MARKER = "library.json"
INDEX = "index.jsonl"
DATABASES = "databases"
LOCK = ".lock"

# What a workload's anchor block computes (see ``workloads.classify_block``).
OP_CLASSES = ("conv1d", "conv2d", "conv3d", "depthwise", "dense", "pool", "reduce", "elementwise")


class LibraryError(TunerError):
    """A library or database that cannot be used (not a library, damaged, corrupt input)."""


def line_error(path: Path, line: int, why: str) -> LibraryError:
    """The error for a line of a file the library cannot use."""
    return LibraryError(f"{path}: line {line}: {why}")


# --- entries ------------------------------------------------------------------------------------


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
        if not looks_like_trace(trace):
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

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "path": self.path,
            "added": self.added,
            "already_present": self.already_present,
            "skipped": list(self.skipped),
        }


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """A database in the library: its id, where it was added from, its model and entries."""

    source: str
    path: str
    model: str | None
    entries: int


# --- the folder -------------------------------------------------------------------------------


def open_folder(folder: Path, *, create: bool = False) -> None:
    """Check that ``folder`` is a library; with ``create``, make one in a missing or empty
    folder first. Raises LibraryError for a folder that holds something else."""
    marker = folder / MARKER
    if folder.exists() and not folder.is_dir():
        raise LibraryError(f"{folder}: not a schedule library (it is a file)")
    if not marker.exists():
        empty = not folder.exists() or not any(folder.iterdir())
        if not create:
            what = "does not exist" if not folder.exists() else f"has no {MARKER}"
            raise LibraryError(f"{folder}: not a schedule library ({what}); create one first")
        if not empty:
            raise LibraryError(
                f"{folder}: not a schedule library (no {MARKER}) and not empty; choose a new folder"
            )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / DATABASES).mkdir(exist_ok=True)
        write_atomic(marker, json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError) as exc:
        raise LibraryError(f"{marker}: unreadable library marker ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LibraryError(f"{folder}: not a schedule library ({marker} says otherwise)")
    if data.get("version") != VERSION:
        raise LibraryError(
            f"{folder}: library version {data.get('version')!r}; this tuneloom reads "
            f"version {VERSION}"
        )


def read_index(folder: Path) -> list[LibraryEntry]:
    """The entries of the library at ``folder``, their ``database`` made absolute. Raises
    LibraryError naming the first line that is not an entry."""
    path = folder / INDEX
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
            database = folder / entry.database
            entries.append(replace(entry, database=str(database.resolve())))
    return entries


def append_to_index(folder: Path, entries: Iterable[LibraryEntry]) -> None:
    """Write a new index, the current lines kept byte for byte and ``entries`` after them,
    and rename it into place."""
    path = folder / INDEX
    lines = []
    if path.exists():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln]
    lines += [json.dumps(e.to_json(), separators=(",", ":")) for e in entries]
    write_atomic(path, "\n".join(lines) + "\n")


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the library's lock file (one writer at a time)."""
    with open(folder / LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a partial file beside ``path``, sync it and rename it into place."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- parsing ------------------------------------------------------------------------------------


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
