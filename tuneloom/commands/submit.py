"""`tuneloom submit`: submit a tuning job to a tuneloom server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from collectors.jobs import JobSpec, JobSpecError
from tuneloom.cli import UserError, emit_result
from tuneloom.commands.options import (
    add_budget_options,
    add_model_options,
    budget_spec_fields,
    model_spec_fields,
)
from tuneloom.commands.remote import add_server_options, client

DESCRIPTION = """\
Submit one tuning job to a running tuneloom server (`tuneloom server --db PATH`) and print its
id; follow it with `tuneloom jobs` or `tuneloom wait`. MODEL is a zoo name (zoo:cnn, ...) or a
local .onnx, .tflite or .keras file, which is uploaded to the server. Each --workload adds
built-in workload specs to the job (comma-joined specs are several tasks, as with `tuneloom
tune`). --warm-start library starts every task from the server's schedule library.
"""

WORKLOAD_HELP = (
    "the job's workloads: matmul:N | matmul:MxNxK | batch_matmul:BxMxNxK | dense:BxIxO | "
    "conv2d:NxCxHxW,KxRxS[,stride=S][,pad=P]; comma-join or repeat the flag for more tasks"
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "submit",
        help="Submit a tuning job to a tuneloom server.",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model", nargs="?", metavar="MODEL", help="zoo:NAME or a model file to upload"
    )
    parser.add_argument(
        "--workload", action="append", default=[], metavar="SPEC", help=WORKLOAD_HELP
    )
    add_budget_options(parser, what="the job")
    add_model_options(parser)
    parser.add_argument(
        "--priority", type=int, default=0, metavar="P", help="higher runs first (default 0)"
    )
    parser.add_argument("--name", help="the job's name (default: the model or its workloads)")
    parser.add_argument(
        "--warm-start",
        metavar="LIB",
        help="start every task from the schedules a library holds for it: `library` for the "
        "server's own schedule library (or that library's folder on the server)",
    )
    parser.add_argument(
        "--target",
        default=None,
        help="codegen target: llvm, cuda or a JSON object (default: the server's --target)",
    )
    parser.add_argument(
        "--batch", type=int, default=16, help="candidates per tuning iteration (default 16)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--device", metavar="POOL", help="the server's device pool to profile on, e.g. rpc:KEY"
    )
    add_server_options(parser, json_help='print {"id": ...} as one JSON object')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec, model_file = job_spec(args)
    job = client(args).submit(spec, model_file)
    emit_result(args, {"id": job}, job)
    return 0


def job_spec(args: argparse.Namespace) -> tuple[JobSpec, Path | None]:
    """The spec ``submit`` sends, and the local model file to upload with it (or None)."""
    if not args.model and not args.workload:
        raise UserError("nothing to tune: give a MODEL (zoo:NAME or a model file) or --workload")
    fields: dict[str, Any] = {
        "workloads": tuple(args.workload),
        "priority": args.priority,
        "name": args.name,
        "target": args.target,
        "batch": args.batch,
        "seed": args.seed,
        "device": args.device,
        "warm_start": args.warm_start,
        **budget_spec_fields(args),
    }
    model_file = None
    if args.model:
        fields |= model_spec_fields(args)
        if not args.model.startswith("zoo:"):
            model_file = Path(args.model)
            if not model_file.exists():
                raise FileNotFoundError(2, "No such file", args.model)
            if not model_file.is_file():
                raise UserError(
                    f"{args.model} is not a file: upload a .onnx, .tflite or .keras file "
                    "(or name a zoo model, zoo:NAME)"
                )
        fields["model"] = args.model
    try:
        return JobSpec(**fields), model_file
    except JobSpecError as exc:
        raise UserError(str(exc)) from None
