"""`tuneloom demo`: Start the embedded tuner with a few small real jobs and the dashboard."""

from __future__ import annotations

import argparse

from tuneloom.cli import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="Start the embedded tuner with a few small real jobs and the dashboard.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'demo' is not available in this build yet")
