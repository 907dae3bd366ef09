"""``ScheduleLibrary``: a folder of the best schedules of finished jobs and imported
MetaSchedule databases (layout and index: ``index``).

Reading the library (entries, sources, targets) needs no TVM. Adding a database decodes its
workloads with TVM (``workloads``) to describe them and to check that each best trace replays
on its own workload, so ``add_database`` and ``workload_module`` import TVM when called.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from collectors.importers import LogFormatError
from collectors.importers.ms_database import database_paths
from collectors.importers.ms_targets import target_key
from tuner._base import one_line
from tuner.metaschedule.library.index import (
    DATABASES,
    INDEX,
    OP_CLASSES,
    AddSummary,
    LibraryEntry,
    LibraryError,
    SourceInfo,
    WorkloadInfo,
    append_to_index,
    locked,
    open_folder,
    read_index,
)
from tuner.metaschedule.library.sources import (
    SourceDatabase,
    read_database,
    source_id,
    task_name_map,
    trace_digest,
    write_extract,
)


class ScheduleLibrary:
    """A folder of tuned schedules (see ``index`` for its layout).

    ``ScheduleLibrary(folder)`` opens an existing library; ``create=True`` also makes one in a
    missing or empty folder. A folder that holds something else raises LibraryError.
    """

    def __init__(self, folder: str | os.PathLike[str], *, create: bool = False) -> None:
        self.folder = Path(folder)
        open_folder(self.folder, create=create)

    @property
    def index_path(self) -> Path:
        return self.folder / INDEX

    def entries(self, op_class: str | None = None, target: Any = None) -> list[LibraryEntry]:
        """The library's entries, optionally only one op class and only schedules for the
        code ``target`` generates (its kind and attributes; ``num-cores`` may differ)."""
        if op_class is not None and op_class not in OP_CLASSES:
            raise LibraryError(f"unknown op class {op_class!r} (known: {', '.join(OP_CLASSES)})")
        try:
            key = target_key(target) if target is not None else None
        except ValueError as exc:
            raise LibraryError(str(exc)) from None
        return [
            entry
            for entry in read_index(self.folder)
            if (op_class is None or entry.op_class == op_class)
            and (key is None or entry.target_key == key)
        ]

    def sources(self) -> list[SourceInfo]:
        """The databases in the library, in the order they were added."""
        found: dict[str, SourceInfo] = {}
        for entry in read_index(self.folder):
            info = found.get(entry.source)
            count = 1 if info is None else info.entries + 1
            found[entry.source] = SourceInfo(entry.source, entry.source_path, entry.model, count)
        return list(found.values())

    def targets(self) -> list[str]:
        """The targets the library holds schedules for (``target_key`` form)."""
        return sorted({entry.target_key for entry in read_index(self.folder)})

    def workload_module(self, entry: LibraryEntry) -> Any:
        """The TIR module the entry was tuned on (decoded from the library's extract; TVM)."""
        from tuner.metaschedule.library.workloads import load_workload

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
        with locked(self.folder):
            existing = read_index(self.folder)
            source = source_id(paths.workload, paths.record)
            if any(e.source == source for e in existing):
                return AddSummary(source, str(paths.directory), 0, already_present=True)
            try:
                parsed = read_database(paths.workload, paths.record)
                names = task_name_map(task_names, parsed.hashes)
                new, skipped = _new_entries(parsed, source, str(paths.directory), model, names)
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

    def _write(self, parsed: SourceDatabase, source: str, fresh: list[LibraryEntry]) -> None:
        """Extract to databases/<source>, then the new index; both renamed into place."""
        databases = self.folder / DATABASES
        databases.mkdir(exist_ok=True)
        final = databases / source
        partial = databases / f".{source}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            write_extract(partial, parsed, fresh)
            shutil.rmtree(final, ignore_errors=True)  # left by an add that failed later
            os.replace(partial, final)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        try:
            append_to_index(self.folder, fresh)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise


def _new_entries(
    parsed: SourceDatabase,
    source: str,
    source_path: str,
    model: str | None,
    names: Mapping[int, str],
) -> tuple[list[LibraryEntry], list[str]]:
    """An entry for each best record of the database, and why workloads were left out.
    Decodes each workload with TVM and checks that its best traces replay on it."""
    from tuner.metaschedule.library.workloads import (
        check_replays,
        decode_workload,
        describe_workload,
    )

    entries: list[LibraryEntry] = []
    skipped: list[str] = []
    for index, line_no in enumerate(parsed.workload_lines):
        best = parsed.best.get(index, {})
        name = names.get(index, f"workload {index}")
        if not best:
            skipped.append(f"{name}: no measured schedule (line {line_no} of the workload file)")
            continue
        mod = decode_workload(parsed.workload_path, line_no, parsed.workloads[index])
        try:
            info = describe_workload(mod)
        except Exception as exc:  # e.g. symbolic shapes: nothing to compare shapes with
            skipped.append(f"{name}: cannot describe its workload ({one_line(exc, last=True)})")
            continue
        task = names.get(index) or _default_task_name(info)
        for record in best.values():
            check_replays(mod, record.trace, parsed.record_path, record.line)
            entries.append(
                LibraryEntry(
                    source=source,
                    source_path=source_path,
                    database=f"{DATABASES}/{source}",
                    model=model,
                    task=task,
                    workload_hash=parsed.workloads[index][0],
                    workload=info,
                    target=record.target,
                    latency_s=record.latency_s,
                    trials=record.trials,
                    trace=record.trace,
                    trace_digest=trace_digest(record.trace),
                )
            )
    return entries, skipped


def _default_task_name(info: WorkloadInfo) -> str:
    shapes = ",".join("x".join(map(str, s)) for s in info.shapes)
    return f"{info.op_class}:{shapes}"
