"""`tuneloom resume JOB`: resume a paused job on a tuneloom server."""

from __future__ import annotations

import argparse

from tuneloom.commands.remote import add_job_action


def add_parser(sub: argparse._SubParsersAction) -> None:
    add_job_action(
        sub,
        "resume",
        "Resume a paused job on a tuneloom server.",
        lambda client, args: client.resume(args.job),
        lambda info: f"resumed {info.id} ({info.name}): {info.state}",
    )
