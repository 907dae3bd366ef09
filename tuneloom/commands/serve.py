"""`tuneloom serve`: Open a store in the dashboard (post-hoc exploration)."""

from __future__ import annotations

import argparse

from tuneloom.cli import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="Open a store in the dashboard (post-hoc exploration).")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'serve' is not available in this build yet")
