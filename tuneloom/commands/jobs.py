"""`tuneloom jobs`: the jobs of a tuneloom server."""

from __future__ import annotations

import argparse

from tuneloom.cli import emit_result
from tuneloom.commands.remote import add_server_options, client, job_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "jobs",
        help="List the jobs of a tuneloom server.",
        description="List the jobs of a tuneloom server: id, name, state, priority, trials "
        "done of the budget, and why a job paused or failed.",
    )
    add_server_options(parser, json_help="print the jobs as one JSON list")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    infos = client(args).jobs()
    emit_result(args, [info.to_dict() for info in infos], job_table(infos))
    return 0
