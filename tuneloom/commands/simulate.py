"""`tuneloom simulate`: Run simulated jobs on a discrete-event clock (no TVM)."""

from __future__ import annotations

import argparse

from tuneloom.cli import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("simulate", help="Run simulated jobs on a discrete-event clock (no TVM).")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'simulate' is not available in this build yet")
