"""`tuneloom jobs`: the jobs of a tuneloom server."""

from __future__ import annotations

import argparse
import sys

from tuneloom.cli import emit_result
from tuneloom.commands.remote import add_server_options, client, job_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "jobs",
        help="List the jobs of a tuneloom server.",
        description="List the jobs of a tuneloom server: id, name, state, priority, trials "
        "done of the budget, and why a job paused or failed; and why the server starts no "
        "stages, when it does not (its store refuses writes).",
    )
    add_server_options(parser, json_help="print the jobs as one JSON list")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    server = client(args)
    infos = server.jobs()
    emit_result(args, [info.to_dict() for info in infos], job_table(infos))
    health = server.health()
    if not args.json and health.get("accepting") is False:  # the server says why
        print(f"tuneloom jobs: the server starts no stages: {health.get('reason')}",
              file=sys.stderr)  # fmt: skip
    return 0
