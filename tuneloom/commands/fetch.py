"""`tuneloom fetch JOB --out DIR`: a finished job's compiled model and database."""

from __future__ import annotations

import argparse

from tuneloom.cli import emit_result
from tuneloom.commands.remote import add_server_options, client


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "fetch",
        help="Download a finished job's compiled model and database from a tuneloom server.",
        description="Download a finished job's files from a tuneloom server into DIR: "
        "compiled/ (a model job's compiled model; time it with `tuneloom evaluate`) and "
        "database/ (its MetaSchedule database, for TVM or `tuneloom import`).",
    )
    parser.add_argument("job", metavar="JOB", help="the job's id (see `tuneloom jobs`)")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder to put compiled/ and database/ in"
    )
    add_server_options(parser, json_help="print where the files went as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = client(args).fetch(args.job, args.out)
    compiled, database = out / "compiled", out / "database"
    result = {
        "job": args.job,
        "out": str(out),
        "compiled": str(compiled) if compiled.is_dir() else None,
        "database": str(database) if database.is_dir() else None,
    }
    lines = [f"fetched {args.job} into {out}"]
    if result["compiled"]:
        lines.append(f"  compiled model: {compiled}")
    if result["database"]:
        lines.append(f"  database: {database}")
    emit_result(args, result, "\n".join(lines))
    return 0
