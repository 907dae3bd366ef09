"""`tuneloom demo`: the embedded tuner on a few small real jobs, with the dashboard on it."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tuneloom.cli import UserError
from tuneloom.commands.library import add_library_option, database_joiner, library_to_join
from tuneloom.commands.serve import add_upload_limit, upload_limit_bytes
from tuneloom.samples import importable_samples

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
        help="Start the embedded tuner with a few small real jobs and the dashboard.",
        description=(
            "Tune a few small real workloads with TVM on this machine under a scheduling "
            "policy and serve the dashboard on them, live. Submit, pause, resume, "
            "reprioritize and cancel jobs from the Jobs page. Compare policies by running "
            "it again with another --policy (e.g. sequential)."
        ),
    )
    parser.add_argument("--policy", default="interleaved", help="scheduling policy")
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
    from collectors.hub import Hub
    from collectors.jobs import JobSpec
    from collectors.stores import open_store
    from dashboard.access import token_from_env
    from dashboard.server import serve
    from tuner.engine import Engine, EngineSettings
    from tuner.metaschedule.inspector import MetaScheduleInspector

    if args.trials_per_task <= 0:
        raise UserError(f"--trials-per-task must be a positive integer, got {args.trials_per_task}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {args.port}")
    limit = upload_limit_bytes(args.upload_limit)
    library = library_to_join(args)

    db = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="tuneloom-demo-")) / "demo.db"
    runs_dir = db.parent / f"{db.stem}-runs"
    settings = EngineSettings(
        runs_dir=runs_dir,
        policy=args.policy,
        library=library.folder if library else None,
        pause_on_stall=True,
    )
    store = open_store(str(db))
    hub = Hub()
    engine = Engine(settings, store=store, hub=hub)
    inspector = MetaScheduleInspector(store, database_dirs=[str(runs_dir)])
    try:
        if not args.no_jobs:
            for name, workloads, model in DEMO_JOBS:
                spec = JobSpec(workloads=workloads, model=model, name=name,
                               trials_per_task=args.trials_per_task)  # fmt: skip
                engine.submit(spec)
        engine.serve()

        def ready(url: str) -> None:
            print(f"tuneloom demo on {url} (policy {args.policy}; events in {db})", flush=True)

        serve(
            store, engine, hub, inspector, host=args.host, port=args.port,
            token=args.token or token_from_env(), title=f"demo ({args.policy})", ready=ready,
            samples=importable_samples(), uploads_dir=db.parent / f"{db.stem}-uploads",
            upload_limit=limit, library=str(library.folder) if library else None,
            on_database_imported=database_joiner(args.library) if library else None,
        )  # fmt: skip
    except OSError as exc:
        reason = exc.strerror or exc
        raise UserError(f"cannot listen on {args.host}:{args.port} ({reason})") from None
    except KeyboardInterrupt:
        print("tuneloom demo: stopped", file=sys.stderr)
    finally:
        engine.close()
        store.close()
    return 0
