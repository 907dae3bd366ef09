"""`tuneloom demo`: the tuning service on a temporary store, with a few small real jobs."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tuneloom.cli import UserError
from tuneloom.commands.library import add_library_option, library_to_join
from tuneloom.commands.options import add_policy_option
from tuneloom.commands.serve import add_upload_limit, upload_limit_bytes
from tuneloom.commands.server import ServiceOptions, check_address, run_service

# Small real jobs that finish in minutes on two cores: a mix of ops, so the timeline shows
# the client and the device taking turns between jobs.
# (job name, workload specs, model): three kernels and a whole model from the zoo.
DEMO_JOBS: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("matmul 128", ("matmul:128",), None),
    ("dense 1x256x256", ("dense:1x256x256",), None),
    ("conv2d 1x16x28x28", ("conv2d:1x16x28x28,32x3x3,pad=1",), None),
    ("cnn (zoo model)", (), "zoo:cnn"),
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="Start the tuning service with a few small real jobs and the dashboard.",
        description=(
            "Run the tuning service (as `tuneloom server` does) on a temporary store with a "
            "few small real jobs, tuned with TVM on this machine under a scheduling policy, "
            "and the dashboard on them, live. Submit, pause, resume, reprioritize and cancel "
            "jobs from the Jobs page or with the client commands (`tuneloom jobs`...). "
            "Compare policies by running it again with another --policy (e.g. sequential). "
            "With --db naming an existing store, its unfinished jobs resume instead."
        ),
    )
    add_policy_option(parser)
    parser.add_argument(
        "--trials-per-task", type=int, default=48, help="trials of each task (default 48)"
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="store for the run (default: a new file in a temporary folder)",
    )
    add_library_option(parser, joins="finished jobs' databases")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    parser.add_argument(
        "--token", default=None, help="token job controls need when bound beyond loopback"
    )
    parser.add_argument(
        "--no-jobs", action="store_true", help="start with no jobs (submit from the Jobs page)"
    )
    add_upload_limit(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from collectors.jobs import JobSpec
    from tuner.engine import EngineSettings

    if args.trials_per_task <= 0:
        raise UserError(f"--trials-per-task must be a positive integer, got {args.trials_per_task}")
    check_address(args.host, args.port)
    limit = upload_limit_bytes(args.upload_limit)
    library = library_to_join(args)
    db = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="tuneloom-demo-")) / "demo.db"
    settings = EngineSettings(
        runs_dir=db.parent / f"{db.stem}-runs",
        policy=args.policy,
        library=library.folder if library else None,
        pause_on_stall=True,
    )
    fresh = not db.exists()
    jobs = [] if args.no_jobs or not fresh else [
        JobSpec(workloads=workloads, model=model, name=name, trials_per_task=args.trials_per_task)
        for name, workloads, model in DEMO_JOBS
    ]  # fmt: skip
    options = ServiceOptions(
        host=args.host, port=args.port, token=args.token, upload_limit=limit,
        library=library, library_arg=args.library, name="demo",
        title=f"demo ({args.policy})",
    )  # fmt: skip
    return run_service(str(db), settings, options, submit=jobs)
