"""`tuneloom library`: the schedule library that tuning reuse draws from."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuneloom.cli import UserError, emit_result

LIBRARY_ENV = "TUNELOOM_LIBRARY"

DESCRIPTION = f"""\
The schedule library holds the best schedule of every workload of the MetaSchedule databases
added to it, indexed by op class, shapes, fused operators and target, for `tuneloom reuse`
and `tuneloom tune --warm-start`. Every job `tuneloom tune` finishes joins it, as does every
MetaSchedule database `tuneloom import` reads (both unless --no-library). The library is the
folder --library names, else ${LIBRARY_ENV}, else $XDG_DATA_HOME/tuneloom/library
(~/.local/share/tuneloom/library).
"""


def default_library_path() -> Path:
    """``$TUNELOOM_LIBRARY``, else ``$XDG_DATA_HOME/tuneloom/library``."""
    named = os.environ.get(LIBRARY_ENV)
    if named:
        return Path(named)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "tuneloom" / "library"


def add_library_option(parser: argparse.ArgumentParser, *, joins: str | None = None) -> None:
    """--library (and, with ``joins``, --no-library) for a command that uses the library."""
    parser.add_argument(
        "--library",
        metavar="DIR",
        help=f"schedule library folder (default: ${LIBRARY_ENV} or "
        "~/.local/share/tuneloom/library)",
    )
    if joins:
        parser.add_argument(
            "--no-library", action="store_true", help=f"do not add {joins} to the library"
        )


def open_library(folder: str | None, *, create: bool) -> Any:
    """The library at ``folder`` (or the default one); ``create`` makes a missing one."""
    from tuner.metaschedule.library import ScheduleLibrary

    path = Path(folder) if folder else default_library_path()
    return ScheduleLibrary(path, create=create)


def library_to_join(args: argparse.Namespace) -> Any:
    """The library finished jobs join (--library, else the default), or None with
    --no-library. A default library that cannot be created (say, a read-only home) is
    skipped with a warning; a --library that cannot be opened is an error."""
    from tuner.metaschedule.library import LibraryError

    if args.no_library:
        return None
    try:
        return open_library(args.library, create=True)
    except (LibraryError, OSError) as exc:
        if args.library:
            raise UserError(f"--library {args.library}: {exc}") from None
        print(f"warning: finished jobs will not join a schedule library: {exc}", file=sys.stderr)
        return None


def database_joiner(folder: str | None) -> Callable[[Path], str]:
    """A callback adding a MetaSchedule database folder to the library at ``folder`` (or the
    default one, created on first use) and saying what came of it in one line; it never
    raises for a database the library refuses (the import it follows stands)."""

    def join(database: Path) -> str:
        from tuner.metaschedule.library import LibraryError

        try:
            library = open_library(folder, create=True)
        except (LibraryError, OSError) as exc:
            return f"Not added to the schedule library: {exc}"
        added = add_to_library(library, database)
        if "error" in added:
            return f"Not added to the schedule library: {added['error']}"
        if added["already_present"]:
            return f"Already in the schedule library {library.folder}."
        return f"Schedule library {library.folder}: {added['added']} schedule(s) added."

    return join


def add_to_library(library: Any, database: str | Path) -> dict[str, Any]:
    """``library.add_database(database)`` as plain JSON (``AddSummary.as_json``), or
    ``{"path", "error"}`` when the library refuses it or cannot be written."""
    from tuner.metaschedule.library import LibraryError

    try:
        return library.add_database(database).as_json()
    except (LibraryError, OSError) as exc:
        return {"path": str(database), "error": str(exc)}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "library",
        help="Show or add to the schedule library that reuse draws from.",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("list", help="list the library's sources and entries")
    add_library_option(show)
    show.add_argument("--entries", action="store_true", help="list every entry too")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=run_list)
    add = actions.add_parser("add", help="add MetaSchedule databases to the library")
    add.add_argument("databases", nargs="+", metavar="DB", help="database folders or record files")
    add.add_argument("--model", help="the model the databases tuned (names the entries)")
    add_library_option(add)
    add.add_argument("--json", action="store_true", help="print one JSON object")
    add.set_defaults(func=run_add)


def run_list(args: argparse.Namespace) -> int:
    library = open_library(args.library, create=False)
    entries = library.entries()
    result: dict[str, Any] = {
        "library": str(library.folder),
        "targets": library.targets(),
        "sources": [
            {"source": s.source, "path": s.path, "model": s.model, "entries": s.entries}
            for s in library.sources()
        ],
        "op_classes": _count(e.op_class for e in entries),
    }
    if args.entries:
        result["entries"] = [
            {
                "label": e.label,
                "op_class": e.op_class,
                "shapes": [list(s) for s in e.workload.anchor_shapes],
                "fused_ops": e.workload.fused_ops,
                "target": e.target_key,
                "latency_s": e.latency_s,
                "trials": e.trials,
            }
            for e in entries
        ]
    emit_result(args, result, _human_list(result))
    return 0


def run_add(args: argparse.Namespace) -> int:
    from tuner.metaschedule.library import LibraryError

    library = open_library(args.library, create=True)
    added = []
    for db in args.databases:
        try:
            summary = library.add_database(db, model=args.model)
        except LibraryError as exc:
            raise UserError(str(exc)) from None
        added.append(summary.as_json())
    result = {"library": str(library.folder), "added": added}
    emit_result(args, result, "\n".join(_human_add(a) for a in added))
    return 0


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def _human_list(result: dict[str, Any]) -> str:
    lines = [f"library {result['library']}: {len(result['sources'])} database(s)"]
    lines.append("  targets: " + (", ".join(result["targets"]) or "none"))
    classes = ", ".join(f"{k} x{v}" for k, v in result["op_classes"].items())
    lines.append("  op classes: " + (classes or "none"))
    for s in result["sources"]:
        lines.append(f"  {s['model'] or '(no model)':<24} {s['entries']:>4} entries  {s['path']}")
    for e in result.get("entries", []):
        lines.append(f"    {e['label']:<56} {e['op_class']:<10} {e['latency_s'] * 1e6:10.2f} us")
    return "\n".join(lines)


def _human_add(added: dict[str, Any]) -> str:
    if added["already_present"]:
        return f"{added['path']}: already in the library"
    text = f"{added['path']}: {added['added']} schedule(s) added"
    if added["skipped"]:
        text += f", {len(added['skipped'])} left out ({added['skipped'][0]}"
        text += ", ...)" if len(added["skipped"]) > 1 else ")"
    return text
