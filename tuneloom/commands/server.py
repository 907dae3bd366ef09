"""`tuneloom server`: the long-running tuning service (engine, store, dashboard and API)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.jobs import TERMINAL_STATES
from tuneloom.cli import UserError
from tuneloom.commands.library import add_library_option, database_joiner, library_to_join
from tuneloom.commands.options import (
    add_measure_options,
    add_policy_option,
    add_search_options,
    engine_settings,
)
from tuneloom.commands.serve import add_upload_limit, upload_limit_bytes
from tuneloom.commands.tune import store_paths
from tuneloom.samples import importable_samples
from tuneloom.server_log import ServerLog

log = logging.getLogger("tuneloom.server")

DESCRIPTION = """\
Run the tuning service: one process holding the scheduler, the stage workers, the store, the
schedule library and the dashboard, with a JSON API under /api/v1/ on the same port. Submit
and steer jobs from the dashboard's Jobs page or with the client commands (`tuneloom submit`,
`jobs`, `pause`, `resume`, `cancel`, `priority`, `wait`, `fetch`). Jobs outlive the process:
stopped however it stops (Ctrl+C, SIGTERM, kill -9, power loss), the next `tuneloom server`
on the same --db resumes every unfinished job from its MetaSchedule database, with nothing
measured or stored twice; paused jobs stay paused. One server per store. Binds 127.0.0.1
unless --host says otherwise; bound elsewhere, every request that changes jobs needs the
token (viewing stays open).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "server",
        help="Run the tuning service (jobs survive restarts; dashboard and JSON API).",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", required=True, metavar="PATH", help="the store (SQLite file)")
    parser.add_argument(
        "--runs-dir",
        metavar="DIR",
        help="where each job's MetaSchedule database goes (default: <db name>-runs beside --db)",
    )
    add_policy_option(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050; 0 picks one)")
    parser.add_argument(
        "--token",
        default=None,
        help="token that requests changing jobs need (default: $TUNELOOM_TOKEN); needed "
        "when bound beyond loopback",
    )
    parser.add_argument(
        "--log-file",
        metavar="PATH",
        help="the server's log: its own messages and what TVM's native code prints, each "
        "kind of line once (default: <db name>-server.log beside --db)",
    )
    add_upload_limit(parser)
    add_library_option(parser, joins="finished jobs' databases")
    add_measure_options(parser)
    add_search_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_address(args.host, args.port)
    if args.db == ":memory:":
        raise UserError("--db must be a file: a server keeps its jobs in it across restarts")
    limit = upload_limit_bytes(args.upload_limit)
    db, runs_dir = store_paths(args.db, args.runs_dir)
    library = library_to_join(args)
    settings = engine_settings(args, runs_dir, library, pause_on_stall=True)
    return run_service(
        db, settings,
        ServiceOptions(
            host=args.host, port=args.port, token=args.token, upload_limit=limit,
            log_file=Path(args.log_file) if args.log_file else None,
            library=library, library_arg=args.library,
        ),
    )  # fmt: skip


@dataclass(frozen=True)
class ServiceOptions:
    """How a service is served: address, token, uploads, log file and library."""

    host: str = "127.0.0.1"
    port: int = 8050
    token: str | None = None
    upload_limit: int = 64 * 1024 * 1024
    log_file: Path | None = None  # default: <db name>-server.log beside the store
    library: Any = None  # the ScheduleLibrary finished jobs join, or None
    library_arg: str | None = None  # --library as given (for the Import page's joiner)
    name: str = "server"  # what the terminal lines call it (``demo`` for the demo)
    title: str | None = None


def check_address(host: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {port}")
    if not host.strip():
        raise UserError("--host must not be empty")


def run_service(db: str, settings: Any, options: ServiceOptions, submit: Sequence[Any] = ()) -> int:
    """Serve the engine, store, dashboard and API on ``db`` until interrupted: the server
    answers at once; the workers start, the previous run's unfinished jobs come back and the
    ``submit`` specs are submitted behind it."""
    from collectors.hub import Hub
    from collectors.lock import StoreLock
    from collectors.stores import open_store
    from dashboard.access import is_loopback, token_from_env
    from dashboard.server import serve
    from tuner.engine import Engine
    from tuner.metaschedule.inspector import MetaScheduleInspector

    path = Path(db)
    lock = StoreLock(db).acquire()
    log_file = options.log_file or path.parent / f"{path.stem}-server.log"
    server_log = ServerLog(log_file).start()
    logging.basicConfig(level=logging.WARNING, handlers=[server_log.handler()], force=True)
    log.setLevel(logging.INFO)
    token = options.token or token_from_env()
    try:
        store = open_store(db)
        hub = Hub()
        engine = Engine(settings, store=store, hub=hub)
        engine.read_journal()  # every earlier job listed from the first request on
        runs = [str(settings.runs_dir)]
        inspector = MetaScheduleInspector(store, database_dirs=runs)
        service = _Service(engine, submit)

        def ready(url: str) -> None:
            print(f"tuneloom {options.name} on {url} (store {db}; log {log_file}; "
                  "Ctrl+C to stop)", flush=True)  # fmt: skip
            if not is_loopback(options.host):
                state = "need the token" if token else "are refused (no token given)"
                print(f"reachable from other machines: requests that change jobs {state}",
                      flush=True)  # fmt: skip
            service.start()

        library = options.library
        previous = signal.signal(signal.SIGTERM, _interrupt)
        interrupt = stop_on_ctrl_c()
        try:
            with contextlib.suppress(KeyboardInterrupt):  # werkzeug mostly swallows it itself
                serve(
                    store, engine, hub, inspector, host=options.host, port=options.port,
                    token=token, title=options.title or f"{options.name} {db}", ready=ready,
                    uploads_dir=path.parent / f"{path.stem}-uploads",
                    upload_limit=options.upload_limit, samples=importable_samples(),
                    library=str(library.folder) if library else None,
                    on_database_imported=database_joiner(options.library_arg) if library else None,
                    status=service.status,
                )  # fmt: skip
            left = service.unfinished()
            tail = f"; {left} unfinished job(s) resume at the next start" if left else ""
            print(f"tuneloom {options.name}: stopped{tail}", file=sys.stderr)
        except OSError as exc:
            reason = exc.strerror or exc
            raise UserError(f"cannot listen on {options.host}:{options.port} ({reason})") from None
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, interrupt)
            engine.close()
            store.close()
    finally:
        server_log.close()
        lock.release()
    return 0


class _Service:
    """Starts the workers and takes back the previous run's jobs once the server listens,
    so the dashboard and the API answer at once; says how far it got (``status``)."""

    def __init__(self, engine: Any, submit: Sequence[Any] = ()) -> None:
        self.engine = engine
        self.submit = list(submit)
        self.phase = "starting the stage workers"
        self.error: str | None = None
        self._thread = threading.Thread(target=self._start, name="tuneloom-start", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def status(self) -> dict[str, Any]:
        """What ``/api/v1/health`` adds: the start-up phase, and whether stages start (not
        when the tuner failed to start or the store refuses writes: ``reason`` says why)."""
        reason = self.error or self.engine.scheduler.halted
        out: dict[str, Any] = {"phase": self.phase, "accepting": reason is None}
        if reason is not None:
            out["reason"] = reason
        return out

    def unfinished(self) -> int:
        return sum(1 for job in self.engine.list() if job.state not in TERMINAL_STATES)

    def _start(self) -> None:
        try:
            self.engine.serve()
            self.phase = "resuming the previous run's jobs"
            for line in self.engine.recover():
                log.info("%s", line)
            self.phase = "serving"
            for spec in self.submit:
                try:
                    self.engine.submit(spec)
                except Exception as exc:  # one bad job does not keep the others out
                    log.warning("job %s not submitted: %s", spec.label, exc)
        except Exception as exc:  # the dashboard keeps answering and says why nothing runs
            self.error = f"the tuner did not start: {type(exc).__name__}: {exc}"
            self.phase = "stopped"
            log.exception("the tuner did not start")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def stop_on_ctrl_c() -> Any:
    """Ctrl+C (SIGINT) stops a server even when it was started with SIGINT ignored (as a
    shell without job control starts background commands); returns the previous handler."""
    return signal.signal(signal.SIGINT, signal.default_int_handler)
