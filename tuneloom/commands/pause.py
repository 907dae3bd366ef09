"""`tuneloom pause JOB`: pause a job on a tuneloom server."""

from __future__ import annotations

import argparse

from tuneloom.commands.remote import add_job_action


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = add_job_action(
        sub,
        "pause",
        "Pause a job on a tuneloom server.",
        lambda client, args: client.pause(args.job, reason=args.reason),
        lambda info: f"paused {info.id} ({info.name})",
        description="Pause a queued or running job on a tuneloom server (resume it with "
        "`tuneloom resume`).",
    )
    parser.add_argument("--reason", help="why, kept with the job (shown as its detail)")
