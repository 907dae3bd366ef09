"""`tuneloom wait JOB...`: wait until jobs on a tuneloom server have ended."""

from __future__ import annotations

import argparse
import sys
import time

from collectors.jobs import TERMINAL_STATES, JobInfo, JobState
from tuneloom.cli import emit_result
from tuneloom.client import ServerUnavailable
from tuneloom.commands.options import duration
from tuneloom.commands.remote import add_server_options, client, trials_text
from tuneloom.progress import TrialsProgress, terminal

TIMED_OUT = 3


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "wait",
        help="Wait until jobs on a tuneloom server have ended.",
        description="Wait until every JOB has finished, failed or been cancelled, with a "
        "progress bar on a terminal; a server that restarts meanwhile is waited for. Exits 0 "
        "when all finished, 1 when one failed or was cancelled (saying which and why), "
        f"{TIMED_OUT} when --timeout runs out first.",
    )
    parser.add_argument("jobs", nargs="+", metavar="JOB", help="the jobs' ids")
    parser.add_argument(
        "--timeout",
        type=duration,
        default=None,
        metavar="DURATION",
        help="give up after this long (e.g. 90s, 10m, 1h; default: wait as long as it takes)",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between two looks at the server (default 1)",
    )
    add_server_options(parser, json_help="print the jobs as they ended, as one JSON list")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    server = client(args)
    ids = list(dict.fromkeys(args.jobs))
    latest = [server.job(job) for job in ids]  # an unknown job fails here (404)
    started = time.monotonic()
    timed_out = away = False
    with TrialsProgress(lambda: latest, "wait", console=terminal(args.json)):
        while not all(info.state in TERMINAL_STATES for info in latest):
            waited = time.monotonic() - started
            if args.timeout is not None and waited >= args.timeout:
                timed_out = True
                break
            pause = max(args.poll, 0.01)
            if args.timeout is not None:
                pause = min(pause, args.timeout - waited)
            time.sleep(pause)
            try:
                latest = _now(server.jobs(), ids, latest)
            except ServerUnavailable:  # a restarting server: its jobs come back with it
                if not away:
                    print("tuneloom wait: the server went away; waiting for it to come back",
                          file=sys.stderr)  # fmt: skip
                away = True
                continue
            away = False
    emit_result(args, [info.to_dict() for info in latest], "\n".join(map(_line, latest)))
    if timed_out:
        running = ", ".join(
            f"{info.id} ({info.state}, {trials_text(info)} trials)"
            for info in latest
            if info.state not in TERMINAL_STATES
        )
        print(
            f"tuneloom wait: timed out after {args.timeout:g} s; not ended: {running}",
            file=sys.stderr,
        )
        return TIMED_OUT
    return 0 if all(info.state == JobState.FINISHED for info in latest) else 1


def _now(infos: list[JobInfo], ids: list[str], before: list[JobInfo]) -> list[JobInfo]:
    """The waited-for jobs in ``infos`` (a job the server no longer lists keeps its last
    known state)."""
    found = {info.id: info for info in infos}
    return [found.get(job, old) for job, old in zip(ids, before, strict=True)]


def _line(info: JobInfo) -> str:
    text = f"{info.id}  {info.state}  {trials_text(info)} trials  {info.name}"
    if info.state in (JobState.FAILED, JobState.CANCELLED):
        text += f": {info.detail or 'no reason given'}"
    return text
