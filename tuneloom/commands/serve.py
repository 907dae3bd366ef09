"""`tuneloom serve`: open a store in the dashboard (post-hoc exploration; read-only unless
``--allow-import``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tuneloom.cli import UserError
from tuneloom.commands.library import add_library_option, database_joiner

DEFAULT_UPLOAD_MIB = 64


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve",
        help="Open a store in the dashboard (post-hoc exploration).",
        description=(
            "Serve the dashboard on a store: timeline, convergence, inspector, records, jobs "
            "and import. The store is opened read-only unless --allow-import; events another "
            "process appends to it show up live. Binds 127.0.0.1 unless --host says "
            "otherwise; bound elsewhere, job controls and imports need the token."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", metavar="PATH", help="the store (SQLite file)")
    source.add_argument(
        "--sample",
        metavar="NAME",
        help="a log shipped in sample_logs/ (e.g. tune-4-jobs, simulated-8-jobs)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050; 0 picks one)")
    parser.add_argument(
        "--token",
        default=None,
        help="token that job controls need (default: the TUNELOOM_TOKEN environment variable)",
    )
    parser.add_argument(
        "--databases",
        action="append",
        metavar="DIR",
        help="folder to search for MetaSchedule databases (repeatable); the inspector "
        "already finds the databases that tuneloom jobs name in their task events",
    )
    parser.add_argument("--no-live", action="store_true", help="do not follow new events")
    parser.add_argument(
        "--allow-import",
        action="store_true",
        help="open the --db store writable so the Import page can add logs to it (uploads "
        "are kept in <db stem>-uploads/ beside it); a --sample store is in memory and "
        "always takes imports",
    )
    add_upload_limit(parser)
    add_library_option(parser, joins="MetaSchedule databases the Import page imports")
    parser.set_defaults(func=run)


def add_upload_limit(parser: argparse.ArgumentParser) -> None:
    """The ``--upload-limit`` option (serve and demo)."""
    parser.add_argument(
        "--upload-limit",
        type=int,
        default=DEFAULT_UPLOAD_MIB,
        metavar="MIB",
        help=f"largest upload the dashboard takes, in MiB (default {DEFAULT_UPLOAD_MIB})",
    )


def upload_limit_bytes(mib: int) -> int:
    """``--upload-limit`` in bytes; UserError when it is not positive."""
    if mib <= 0:
        raise UserError(f"--upload-limit must be a positive number of MiB, got {mib}")
    return mib * 1024 * 1024


def run(args: argparse.Namespace) -> int:
    from collectors._base import StoreError
    from collectors.stores import open_store
    from dashboard.access import token_from_env
    from dashboard.server import serve
    from tuneloom.commands.server import stop_on_ctrl_c
    from tuneloom.samples import importable_samples
    from tuner.metaschedule.inspector import MetaScheduleInspector

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {args.port}")
    if not args.host.strip():
        raise UserError("--host must not be empty")
    limit = upload_limit_bytes(args.upload_limit)
    folders = list(args.databases or [])
    if args.sample:
        from tuneloom.samples import load_sample, sample_databases

        store = open_store(":memory:")
        load_sample(args.sample, store)
        title = f"sample {args.sample}"
        folders += [str(folder) for folder in sample_databases(args.sample)]
    else:
        try:
            store = open_store(args.db, read_only=not args.allow_import)
        except StoreError as exc:
            if "older tuneloom" not in str(exc):
                raise
            raise UserError(f"{exc} (`tuneloom serve --db FILE --allow-import` does)") from None
        title = args.db
    for folder in folders:
        if not Path(folder).is_dir():
            raise UserError(f"--databases: no such folder: {folder}")
    inspector = MetaScheduleInspector(store, database_dirs=folders)

    def ready(url: str) -> None:
        print(f"tuneloom dashboard on {url} (Ctrl+C to stop)", flush=True)

    stop_on_ctrl_c()

    try:
        serve(
            store, None, None, inspector, host=args.host, port=args.port,
            token=args.token or token_from_env(), title=title, live=not args.no_live,
            ready=ready, samples=importable_samples(), upload_limit=limit,
            on_database_imported=None if args.no_library else database_joiner(args.library),
        )  # fmt: skip
    except OSError as exc:
        raise UserError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})"
        ) from None
    except KeyboardInterrupt:
        print("tuneloom serve: stopped", file=sys.stderr)
    finally:
        store.close()
    return 0
