"""`tuneloom bench`: Run benchmark sweeps."""

from __future__ import annotations

import argparse

from tuneloom.cli import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="Run benchmark sweeps.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'bench' is not available in this build yet")
