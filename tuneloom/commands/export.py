"""`tuneloom export`: Export a store (JSONL, Chrome trace, best-record MetaSchedule database)."""

from __future__ import annotations

import argparse

from tuneloom.cli import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="Export a store (JSONL, Chrome trace, best-record MetaSchedule database).")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'export' is not available in this build yet")
