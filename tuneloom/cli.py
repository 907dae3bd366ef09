"""The ``tuneloom`` command line. Each subcommand lives in ``tuneloom/commands/<name>.py``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from tuneloom import __version__

# Subcommand name -> module under tuneloom.commands that defines ``add_parser``.
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "serve": "serve",
    "server": "server",
    "tune": "tune",
    "evaluate": "evaluate",
    "reuse": "reuse",
    "library": "library",
    "simulate": "simulate",
    "memory": "memory",
    "import": "import_",
    "export": "export",
    "bench": "bench",
    "submit": "submit",
    "jobs": "jobs",
    "wait": "wait",
    "pause": "pause",
    "resume": "resume",
    "cancel": "cancel",
    "priority": "priority",
    "fetch": "fetch",
    "explain": "explain",
}


class UserError(Exception):
    """A mistake in what the user asked for; printed as one line, exit status 2."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input, not a bug: reported without a traceback."""
    from collectors._base import StoreError
    from collectors.events import EventError
    from tuneloom.client import ClientError
    from tuner._base import TunerError

    return (
        UserError, StoreError, EventError, TunerError, ClientError, FileNotFoundError,
        IsADirectoryError,
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tuneloom",
        description=(
            "Tune models with TVM MetaSchedule under a load-aware multi-job scheduler, "
            "and explore the runs in a dashboard."
        ),
    )
    parser.add_argument("--version", action="version", version=f"tuneloom {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMANDS.values():
        module = importlib.import_module(f"tuneloom.commands.{module_name}")
        module.add_parser(sub)
    return parser


def emit_result(args: argparse.Namespace, result: Any, human: str | None = None) -> None:
    """Print a command's result: one JSON document with ``--json``, else the human text."""
    if getattr(args, "json", False):
        json.dump(result, sys.stdout, indent=None, separators=(",", ":"), allow_nan=False)
        sys.stdout.write("\n")
    elif human is not None:
        print(human)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _user_error_types() as exc:
        message = str(exc) or type(exc).__name__
        if isinstance(exc, FileNotFoundError) and exc.filename:
            message = f"no such file: {exc.filename}"
        print(f"tuneloom {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tuneloom {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
