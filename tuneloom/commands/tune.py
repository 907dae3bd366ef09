"""`tuneloom tune`: Tune workloads or a model with real TVM under a scheduling policy."""

from __future__ import annotations

import argparse

from tuneloom.cli import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("tune", help="Tune workloads or a model with real TVM under a scheduling policy.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'tune' is not available in this build yet")
