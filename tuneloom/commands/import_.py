"""`tuneloom import`: Import tuning logs (tuneloom JSONL, MetaSchedule, AutoTVM, Ansor) into a store."""

from __future__ import annotations

import argparse

from tuneloom.cli import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("import", help="Import tuning logs (tuneloom JSONL, MetaSchedule, AutoTVM, Ansor) into a store.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'import' is not available in this build yet")
