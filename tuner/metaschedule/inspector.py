"""Inspector backend: a record's schedule as text, its scheduled TIR, LLVM IR and assembly.

A MetaSchedule record carries its trace in MetaSchedule's JSON form (``[instructions,
decisions]``, as in ``database_tuning_record.json``) and the structural hash of its workload.
The workload comes from a MetaSchedule database (``database_workload.json`` lines
``[hash, base64 IRModule]``): the job's own, named by its task events (a detail line
``metaschedule_database=<dir>``, written by ``tuner.metaschedule``), or one found under
``database_dirs``; failing that, from the task's workload spec (``spec=<spec>`` in the task
detail, or the task name, e.g. ``matmul:64``). Replaying the trace on the workload gives the
scheduled TIR; ``tvm.tirx.build`` of it gives LLVM IR and assembly.

TVM is imported on first use, never at import time. Records imported from AutoTVM or Ansor
logs carry readable text only: their trace is shown as is and code generation says why it
cannot be done.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from collectors._base import BaseStore
from collectors.events import RecordEvent

WORKLOAD_FILE_GLOB = "*workload*.json"


class InspectError(ValueError):
    """Code cannot be generated for a record; the message says why, for the page."""


def trace_json(record: RecordEvent) -> list[Any] | None:
    """The record's trace in MetaSchedule's JSON form, or None when it is plain text or
    another tool's JSON (an Ansor step list can have the same outer shape)."""
    if not record.trace or record.origin not in (None, "metaschedule"):
        return None
    text = record.trace.strip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], list):
        return value
    return None


def _cannot(record: RecordEvent) -> InspectError:
    origin = record.origin or "unknown"
    if origin == "simulated":
        return InspectError("This candidate is simulated: it has no schedule and no code.")
    if not record.trace:
        return InspectError("This record carries no schedule trace, so no code can be generated.")
    return InspectError(
        f"This record comes from a {origin} log whose trace is readable text, not a "
        "MetaSchedule trace that can be replayed: code cannot be generated for that format."
    )


class MetaScheduleInspector:
    """Replays MetaSchedule traces with TVM to print a record's code (see the module doc).

    ``database_dirs`` are searched (recursively) for MetaSchedule workload files. ``target``
    overrides the job's target (a dict in TVM's form); by default the job's target is used,
    and plain ``llvm`` means this host.
    """

    def __init__(
        self,
        store: BaseStore,
        *,
        database_dirs: Iterable[str | os.PathLike[str]] = (),
        target: dict[str, Any] | None = None,
        cache_size: int = 8,
    ) -> None:
        self.store = store
        self.database_dirs = [Path(d) for d in database_dirs]
        self.target = target
        self.cache_size = cache_size
        self._lock = threading.RLock()
        self._workload_lines: dict[str, list[Any]] | None = None
        self._folders: dict[str, dict[str, list[Any]]] = {}
        self._schedules: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._built: OrderedDict[tuple[str, int], Any] = OrderedDict()

    # --- the four views -------------------------------------------------------------------

    def trace_text(self, record: RecordEvent) -> str:
        """The trace as ``sch.*`` Python lines (TVM's own rendering when it can replay it)."""
        trace = trace_json(record)
        if trace is None:
            if record.trace:
                from collectors.importers import readable_trace

                return readable_trace(record) or record.trace
            raise _cannot(record)
        try:
            sch = self._schedule(record)
        except InspectError:
            from collectors.importers.ms_trace import trace_text

            return trace_text(trace)
        return "\n".join(str(line) for line in sch.trace.as_python())

    def tir(self, record: RecordEvent) -> str:
        """The scheduled workload as TVMScript."""
        return self._schedule(record).mod.script()

    def llvm_ir(self, record: RecordEvent) -> str:
        """The LLVM IR ``tvm.tirx.build`` generates for the scheduled workload."""
        return self._build(record).inspect_source("ll")

    def asm(self, record: RecordEvent) -> str:
        """The assembly ``tvm.tirx.build`` generates for the scheduled workload."""
        return self._build(record).inspect_source("asm")

    # --- replay and build -----------------------------------------------------------------

    def _schedule(self, record: RecordEvent) -> Any:
        key = (record.source, record.seq)
        with self._lock:
            if key in self._schedules:
                self._schedules.move_to_end(key)
                return self._schedules[key]
            trace = trace_json(record)
            if trace is None:
                raise _cannot(record)
            from tvm.s_tir.schedule import Schedule, Trace

            sch = Schedule(self._workload(record))
            try:
                Trace.apply_json_to_schedule(trace, sch)
            except Exception as exc:
                raise InspectError(f"The trace does not replay on its workload: {exc}") from exc
            _remember(self._schedules, key, sch, self.cache_size)
            return sch

    def _build(self, record: RecordEvent) -> Any:
        key = (record.source, record.seq)
        with self._lock:
            if key in self._built:
                self._built.move_to_end(key)
                return self._built[key]
            import tvm
            from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

            mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(
                self._schedule(record).mod
            )
            try:
                built = tvm.tirx.build(mod, target=self._target(record))
            except Exception as exc:
                raise InspectError(f"The scheduled workload does not build: {exc}") from exc
            _remember(self._built, key, built, self.cache_size)
            return built

    def _target(self, record: RecordEvent) -> Any:
        import tvm

        spec: Any = self.target
        if spec is None:
            jobs = self.store.jobs()
            row = jobs[jobs["job"] == record.job]
            spec = row["target"].iloc[-1] if len(row) else None
        if isinstance(spec, str) and spec.strip().startswith("{"):
            spec = json.loads(spec)
        if spec is None or (isinstance(spec, str) and spec.split()[0] == "llvm"):
            spec = {"kind": "llvm", "num-cores": os.cpu_count() or 1}
        if isinstance(spec, str):
            raise InspectError(f"Cannot generate code for target {spec!r}; only llvm is supported.")
        spec = dict(spec)
        if spec.get("kind") == "llvm":
            spec.setdefault("num-cores", os.cpu_count() or 1)
        try:
            return tvm.target.Target(spec)
        except Exception as exc:
            raise InspectError(f"Target {spec} is not valid: {exc}") from exc

    # --- workloads ------------------------------------------------------------------------

    def _workload(self, record: RecordEvent) -> Any:
        """The record's workload IRModule, from a database or from its task's spec."""
        from tvm.s_tir import meta_schedule as ms

        folders, spec = self._task_details(record)
        if record.workload_hash:
            for folder in folders:
                lines = self._folder_lines(folder)
                if record.workload_hash in lines:
                    return ms.database.Workload.from_json(lines[record.workload_hash]).mod
            lines = self._index()
            if record.workload_hash in lines:
                return ms.database.Workload.from_json(lines[record.workload_hash]).mod
        from tuner._base import TunerError
        from tuner.metaschedule.workloads import workload_module

        for name in (spec, record.task.split("#")[0]):
            if not name:
                continue
            try:
                mod = workload_module(name)
            except TunerError:
                continue
            found = ms.database.Workload(mod).as_json()[0]
            if not record.workload_hash or str(found) == record.workload_hash:
                return mod
        where = ", ".join(str(d) for d in self.database_dirs) or "no database folder given"
        raise InspectError(
            f"The workload of task {record.task!r} (hash {record.workload_hash}) is in no "
            f"MetaSchedule database ({where}) and the task is not a built-in workload spec."
        )

    def _task_details(self, record: RecordEvent) -> tuple[list[Path], str | None]:
        """The databases and workload spec the record's task event names, if any."""
        tasks = self.store.tasks(job=record.job)
        folders: list[Path] = []
        spec = None
        for task, detail in zip(tasks["task"], tasks["detail"], strict=True):
            if task != record.task or not isinstance(detail, str):
                continue
            for line in detail.splitlines():
                key, _, value = line.partition("=")
                if key == "metaschedule_database" and value:
                    folders.append(Path(value))
                elif key == "spec" and value:
                    spec = value
        return folders, spec

    def _folder_lines(self, folder: Path) -> dict[str, list[Any]]:
        with self._lock:
            key = str(folder)
            cached = self._folders.get(key)
            if cached is None:
                cached = self._folders[key] = read_workload_lines(folder / "database_workload.json")
            return cached

    def _index(self) -> dict[str, list[Any]]:
        with self._lock:
            if self._workload_lines is None:
                self._workload_lines = {}
                for folder in self.database_dirs:
                    if folder.is_dir():
                        for path in sorted(folder.rglob(WORKLOAD_FILE_GLOB)):
                            self._workload_lines.update(read_workload_lines(path))
            return self._workload_lines

    def forget_workloads(self) -> None:
        """Re-scan the database folders on the next lookup (new jobs wrote new workloads)."""
        with self._lock:
            self._workload_lines = None
            self._folders.clear()


def read_workload_lines(path: Path) -> dict[str, list[Any]]:
    """``hash -> [hash, base64 IRModule]`` from a MetaSchedule workload file (bad lines skipped)."""
    out: dict[str, list[Any]] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, list) and len(value) == 2 and isinstance(value[1], str):
            out[str(value[0])] = value
    return out


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any, size: int) -> None:
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)
