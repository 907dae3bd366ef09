"""What the client commands (submit, jobs, pause, resume, cancel, priority, wait, fetch)
share: the --server/--token/--json options, the client they make and the jobs table."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from collectors.jobs import JobInfo
from tuneloom.cli import emit_result
from tuneloom.client import DEFAULT_URL, SERVER_ENV, TOKEN_ENV, ServerClient

NAME_WIDTH = 40


def add_server_options(parser: argparse.ArgumentParser, *, json_help: str) -> None:
    """--server, --token and --json."""
    parser.add_argument(
        "--server",
        metavar="URL",
        help=f"the tuneloom server (default: ${SERVER_ENV}, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        help=f"access token for changing jobs (default: ${TOKEN_ENV})",
    )
    parser.add_argument("--json", action="store_true", help=json_help)


def client(args: argparse.Namespace) -> ServerClient:
    """The client of the server ``--server`` names, with ``--token``."""
    return ServerClient(args.server, args.token)


def trials_text(info: JobInfo) -> str:
    """``done/total`` trials of a job."""
    return f"{info.trials_done}/{info.trials_total}"


def job_table(infos: Sequence[JobInfo]) -> str:
    """Jobs as aligned columns: id, name, state, priority, trials done/total, detail."""
    if not infos:
        return "no jobs"
    rows = [("ID", "NAME", "STATE", "PRIORITY", "TRIALS", "DETAIL")]
    for info in infos:
        name = info.name if len(info.name) <= NAME_WIDTH else info.name[: NAME_WIDTH - 3] + "..."
        rows.append(
            (info.id, name, str(info.state), str(info.priority), trials_text(info),
             " ".join((info.detail or "").split()))
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def add_job_action(
    sub: argparse._SubParsersAction,
    name: str,
    help_text: str,
    act: Callable[[ServerClient, argparse.Namespace], JobInfo],
    done: Callable[[JobInfo], str],
    *,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A command ``NAME JOB`` that changes one job and prints what happened (``--json``: the
    job as it is now)."""
    parser = sub.add_parser(name, help=help_text, description=description or help_text)
    parser.add_argument("job", metavar="JOB", help="the job's id (see `tuneloom jobs`)")
    add_server_options(parser, json_help="print the job as it is now, as one JSON object")

    def run(args: argparse.Namespace) -> int:
        info = act(client(args), args)
        emit_result(args, info.to_dict(), done(info))
        return 0

    parser.set_defaults(func=run)
    return parser
