"""`tuneloom cancel JOB`: cancel a job on a tuneloom server."""

from __future__ import annotations

import argparse

from tuneloom.commands.remote import add_job_action


def add_parser(sub: argparse._SubParsersAction) -> None:
    add_job_action(
        sub,
        "cancel",
        "Cancel a job on a tuneloom server.",
        lambda client, args: client.cancel(args.job),
        lambda info: f"cancelled {info.id} ({info.name})",
        description="Cancel a job on a tuneloom server (what it measured so far stays in the "
        "store).",
    )
