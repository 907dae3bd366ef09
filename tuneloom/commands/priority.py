"""`tuneloom priority JOB N`: give a job on a tuneloom server a new priority."""

from __future__ import annotations

import argparse

from tuneloom.commands.remote import add_job_action


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = add_job_action(
        sub,
        "priority",
        "Give a job on a tuneloom server a new priority.",
        lambda client, args: client.priority(args.job, args.priority),
        lambda info: f"set the priority of {info.id} ({info.name}) to {info.priority}",
        description="Give a job on a tuneloom server a new priority (higher runs first).",
    )
    parser.add_argument("priority", type=int, metavar="N", help="the new priority")
