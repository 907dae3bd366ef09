"""`tuneloom export`: Export a store (JSONL, Chrome trace, best-record MetaSchedule database)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tuneloom.cli import UserError, emit_result


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="Export a store (JSONL, Chrome trace, best-record MetaSchedule database).",
        description=(
            "Export a store: every event as JSON lines, stages as a Chrome trace (Perfetto, "
            "chrome://tracing), or a MetaSchedule database with only the best record per "
            "workload, built from the databases the store's jobs name or from --from-db."
        ),
    )
    parser.add_argument("--db", metavar="PATH", help="store to export from")
    parser.add_argument("--jsonl", metavar="OUT", help="write every event as JSON lines")
    parser.add_argument("--chrome-trace", metavar="OUT", help="write stages as a Chrome trace")
    parser.add_argument(
        "--best-db",
        metavar="DIR",
        help="write a MetaSchedule database of the best record per workload and target",
    )
    parser.add_argument(
        "--from-db",
        action="append",
        metavar="SRC",
        help="MetaSchedule database for --best-db (repeatable; default: those named in --db)",
    )
    parser.add_argument(
        "--job", action="append", metavar="JOB", help="only these jobs in the Chrome trace"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not (args.jsonl or args.chrome_trace or args.best_db):
        raise UserError("nothing to export: give --jsonl OUT, --chrome-trace OUT or --best-db DIR")
    needs_store = bool(args.jsonl or args.chrome_trace or (args.best_db and not args.from_db))
    if needs_store and not args.db:
        raise UserError("--db PATH is required (the store to export from)")
    if args.from_db and not args.best_db:
        raise UserError("--from-db only makes sense with --best-db DIR")
    result: dict[str, Any] = {}
    store = None
    if needs_store:
        from collectors.stores import open_store

        store = open_store(args.db, read_only=True)
    try:
        if args.jsonl:
            result["jsonl"] = _jsonl(store, args.jsonl)
        if args.chrome_trace:
            result["chrome_trace"] = _chrome_trace(store, args.chrome_trace, args.job)
        if args.best_db:
            result["best_db"] = _best_db(store, args.best_db, args.from_db)
    finally:
        if store is not None:
            store.close()
    emit_result(args, result, _human(result))
    missing = result.get("best_db", {}).get("missing_sources", [])
    if missing and not args.json:
        for path in missing:
            print(f"warning: database named in the store is gone: {path}", file=sys.stderr)
    return 0


def _jsonl(store: Any, out: str) -> dict[str, Any]:
    from collectors.jsonl import export_jsonl

    _check_parent(out)
    return {"path": out, "events": export_jsonl(store, out)}


def _chrome_trace(store: Any, out: str, jobs: list[str] | None) -> dict[str, Any]:
    from collectors.exporters import export_chrome_trace

    _check_parent(out)
    return export_chrome_trace(store, out, jobs=jobs).to_dict()


def _best_db(store: Any, out: str, sources: list[str] | None) -> dict[str, Any]:
    from collectors.exporters import databases_in_store, export_best_db
    from collectors.importers import LogFormatError

    missing: list[str] = []
    if sources:
        paths = [Path(s) for s in sources]
        for path in paths:
            if not path.exists():
                raise FileNotFoundError(2, "No such file or directory", str(path))
    else:
        named = databases_in_store(store)
        paths = [p for p in named if p.exists()]
        missing = [str(p) for p in named if not p.exists()]
        if not paths:
            why = f" (named but gone: {', '.join(missing)})" if missing else ""
            raise UserError(
                "the store names no MetaSchedule database to take best records from"
                f"{why}; give --from-db SRC"
            )
    try:
        summary = export_best_db(paths, out)
    except LogFormatError as exc:
        raise UserError(str(exc)) from None
    summary.missing_sources = missing
    return summary.to_dict()


def _check_parent(out: str) -> None:
    parent = Path(out).resolve().parent
    if not parent.is_dir():
        raise UserError(f"{out}: folder {parent} does not exist")


def _human(result: dict[str, Any]) -> str:
    lines = []
    if "jsonl" in result:
        r = result["jsonl"]
        lines.append(f"{r['path']}: {r['events']} events as JSON lines")
    if "chrome_trace" in result:
        r = result["chrome_trace"]
        lines.append(
            f"{r['path']}: Chrome trace of {r['stages']} stages on {r['resources']} resources "
            f"({r['jobs']} jobs); open it in https://ui.perfetto.dev or chrome://tracing"
        )
    if "best_db" in result:
        r = result["best_db"]
        lines.append(
            f"{r['path']}: MetaSchedule database with the best of {r['valid_records']} valid "
            f"records for {r['workloads_written']} of {r['workloads_seen']} workloads: "
            f"{r['records_written']} record(s), one per workload and target, for "
            f"{len(r['targets'])} target(s) "
            f"(from {len(r['sources'])} database(s), {r['bad_lines']} bad lines)"
        )
    return "\n".join(lines)
