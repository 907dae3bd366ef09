"""`tuneloom import`: Import tuning logs (MetaSchedule, AutoTVM, Ansor, tuneloom JSONL)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tuneloom.cli import UserError, emit_result
from tuneloom.commands.library import add_library_option, add_to_library, open_library
from tuneloom.progress import StepsProgress, terminal

# Bad lines listed per file in the human output (all are counted; --json lists up to 50).
SHOWN_BAD_LINES = 5


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "import",
        help="Import tuning logs (tuneloom JSONL, MetaSchedule, AutoTVM, Ansor) into a store.",
        description=(
            "Import tuning logs into a store. Formats are detected from content: a MetaSchedule "
            "database (its directory, or its database_tuning_record.json with the workload "
            "file beside it), AutoTVM or Ansor JSON lines, or tuneloom JSONL. Importing the "
            "same file again adds nothing. A MetaSchedule database also joins the schedule "
            "library (see `tuneloom library`) unless --no-library."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="log files or database dirs")
    parser.add_argument("--db", required=True, metavar="PATH", help="store to import into")
    parser.add_argument(
        "--format",
        choices=("metaschedule", "autotvm", "ansor", "tuneloom"),
        help="skip detection and read every PATH as this format",
    )
    parser.add_argument(
        "--no-tvm",
        action="store_true",
        help="do not decode MetaSchedule workloads and traces with TVM (faster)",
    )
    parser.add_argument(
        "--gap",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="timestamp gap that starts a new batch in a reconstructed timeline (default 2)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes parsing an AutoTVM or Ansor log or MetaSchedule records beside the "
        "writer (0: none; default: one for a file of 32 MiB or more while CPUs are idle)",
    )
    add_library_option(parser, joins="imported MetaSchedule databases")
    parser.add_argument("--json", action="store_true", help="print one JSON summary")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from collectors.importers import LogFormatError, detect, import_file
    from collectors.stores import open_store

    if args.gap < 0:
        raise UserError(f"--gap must be >= 0, got {args.gap}")
    if args.workers is not None and args.workers < 0:
        raise UserError(f"--workers must be >= 0, got {args.workers}")
    try:
        detected = [detect(path, args.format) for path in args.paths]
    except LogFormatError as exc:
        raise UserError(str(exc)) from None
    store = open_store(args.db)
    progress = StepsProgress("import", len(detected), console=terminal(args.json), unit="files")
    summaries = []
    try:
        with progress:
            counted = _Counting(store, progress)
            for item in detected:
                counted.path = Path(item.path).name
                progress.doing(counted.path)
                summaries.append(
                    import_file(
                        item,
                        counted,
                        use_tvm=not args.no_tvm,
                        gap_s=args.gap,
                        workers=args.workers,
                    )
                )
                progress.advance()
    finally:
        store.close()
    result: dict[str, Any] = {"files": [s.to_dict() for s in summaries]}
    databases = [item for item in detected if item.database is not None]
    if databases and not args.no_library:
        result["library"] = _add_to_library(args.library, databases)
    emit_result(args, result, _human(result["files"], result.get("library")))
    if not args.json:
        _warn_bad_lines(result["files"])
    return 0


class _Counting:
    """The store, counting the events it stores on the progress line as they are written."""

    def __init__(self, store: Any, progress: StepsProgress) -> None:
        self.store = store
        self.progress = progress
        self.path = ""
        self.events = 0

    def append(self, events: Any) -> Any:
        stored = self.store.append(events)
        self._count(len(stored))
        return stored

    def append_counting(self, events: Any) -> int:
        count: int = self.store.append_counting(events)
        self._count(count)
        return count

    def append_imported(self, items: Any) -> int:
        count: int = self.store.append_imported(items)
        self._count(count)
        return count

    def appending_in_bulk(self) -> Any:
        return self.store.appending_in_bulk()

    def _count(self, stored: int) -> None:
        self.events += stored
        self.progress.doing(f"{self.path}: {self.events:,} new events stored")


def _add_to_library(folder: str | None, databases: list[Any]) -> dict[str, Any]:
    """Add imported MetaSchedule databases to the schedule library; a database the library
    refuses is reported, and the import (already stored) stands."""
    from tuner.metaschedule.library import LibraryError

    try:
        library = open_library(folder, create=True)
    except (LibraryError, OSError) as exc:
        return {"error": str(exc)}
    return {
        "path": str(library.folder),
        "added": [add_to_library(library, item.path) for item in databases],
    }


def _human(files: list[dict[str, Any]], library: dict[str, Any] | None = None) -> str:
    lines = []
    for f in files:
        jobs = ", ".join(f["jobs"]) or "no job"
        lines.append(
            f"{f['path']}: {f['format']}, {f['records']} records ({f['valid']} valid), "
            f"{len(f['workloads'])} workloads, {f['bad_lines']} bad lines -> {jobs} "
            f"({f['stored']} of {f['events']} events new)"
        )
        for note in f["notes"]:
            lines.append(f"  note: {note}")
    if library is not None and "error" in library:
        lines.append(f"schedule library not updated: {library['error']}")
    elif library is not None:
        for added in library["added"]:
            what = added.get("error") or f"{added['added']} schedule(s) added"
            lines.append(f"schedule library {library['path']}: {added['path']}: {what}")
    return "\n".join(lines)


def _warn_bad_lines(files: list[dict[str, Any]]) -> None:
    for f in files:
        for bad in f["bad_line_details"][:SHOWN_BAD_LINES]:
            where = bad.get("file", f["path"])
            print(f"warning: {where}: line {bad['line']}: {bad['reason']}", file=sys.stderr)
        hidden = f["bad_lines"] - min(len(f["bad_line_details"]), SHOWN_BAD_LINES)
        if hidden > 0:
            print(f"warning: {f['path']}: {hidden} more bad lines", file=sys.stderr)
