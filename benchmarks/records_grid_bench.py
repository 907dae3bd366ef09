"""Records table at a million rows: what one AG Grid block request costs the server, beside
sending every row to the browser (what a grid holding all its rows would need).

Builds a **synthetic** records table of ``--rows`` rows in the Records page's columns (seeded:
40 tasks, 8 jobs, 5 % failed, latencies log-normal), then times, side by side in one run, the
server side of the grid's ``getRowsRequest`` (``dashboard.grid.block``: filter, sort, cut a
block of 100 rows, encode as Dash encodes a callback's output):

- ``first``: the first block, no sort or filter (opening the page);
- ``sorted``: the first block sorted by latency;
- ``filtered``: task contains ``matmul`` and latency in a range, sorted, a block deep in it;

and ``all_rows``: every row encoded for the browser. Ratios are ``all_rows`` over each.

    python benchmarks/records_grid_bench.py [--rows 1000000] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dash._utils import to_json  # noqa: E402  (how Dash encodes a callback's output)

from dashboard import grid  # noqa: E402
from dashboard.pages.records import COLUMN_IDS  # noqa: E402

OPS = ["matmul", "conv2d", "dense", "batch_matmul", "softmax"]


def synthetic_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """A records table of ``rows`` rows shaped like ``records_table``'s (synthetic)."""
    rng = np.random.default_rng(seed)
    tasks = np.array([f"{OPS[i % len(OPS)]}:{64 * (1 + i // len(OPS))}" for i in range(40)])
    task = tasks[rng.integers(0, len(tasks), rows)]
    failed = rng.random(rows) < 0.05
    latency = np.round(rng.lognormal(0.0, 0.6, rows), 6)
    latency[failed] = np.nan
    table = pd.DataFrame(
        {
            "pos": np.arange(1, rows + 1),
            "job": np.array([f"model-{j} (j{j}-bench)" for j in range(8)])[
                rng.integers(0, 8, rows)
            ],
            "task": task,
            "iteration": rng.integers(0, 64, rows),
            "candidate": rng.integers(0, 16, rows),
            "latency_ms": latency,
            "gflops": np.round(2.0 / latency, 3),
            "error_class": np.where(failed, "run", None),
            "error": np.where(failed, "RuntimeError: timeout after 10 s", None),
            "predicted": np.round(rng.random(rows), 5),
            "origin": "metaschedule",
            "schedule": "tuned here",
        }
    )
    return table[COLUMN_IDS]


def timed(fn: Callable[[], str], repeats: int) -> tuple[float, int]:
    """(median seconds, bytes of the JSON) over ``repeats`` runs of ``fn``."""
    times, size = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        size = len(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times), size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    table = synthetic_table(args.rows)
    by_latency = [{"colId": "latency_ms", "sort": "asc"}]
    narrow = {
        "task": {"filterType": "text", "type": "contains", "filter": "matmul"},
        "latency_ms": {"filterType": "number", "type": "inRange", "filter": 0.5, "filterTo": 2},
    }
    requests: dict[str, dict[str, Any]] = {
        "first": {"startRow": 0, "endRow": grid.BLOCK_SIZE},
        "sorted": {"startRow": 0, "endRow": grid.BLOCK_SIZE, "sortModel": by_latency},
        "filtered": {
            "startRow": 5000,
            "endRow": 5000 + grid.BLOCK_SIZE,
            "sortModel": by_latency,
            "filterModel": narrow,
        },
    }
    result: dict[str, Any] = {"rows": args.rows, "synthetic": True}
    for name, request in requests.items():
        found = grid.block(table, request)
        assert len(found.rows) == grid.BLOCK_SIZE and not found.message, (name, found.message)
        seconds, size = timed(
            lambda r=request: to_json(grid.block(table, r).response()), args.repeats
        )
        result[f"{name}_s"] = round(seconds, 4)
        result[f"{name}_bytes"] = size
        result[f"{name}_matching"] = found.matching
    seconds, size = timed(lambda: to_json(grid.plain_rows(table)), 1)
    result["all_rows_s"] = round(seconds, 3)
    result["all_rows_bytes"] = size
    for name in requests:
        result[f"all_rows_over_{name}_time"] = round(seconds / result[f"{name}_s"], 1)
        result[f"all_rows_over_{name}_bytes"] = round(size / result[f"{name}_bytes"])
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"records table, {args.rows:,} rows (synthetic); one block = {grid.BLOCK_SIZE} rows")
    for name in requests:
        print(
            f"  {name:<9} {result[f'{name}_s'] * 1000:8.1f} ms  "
            f"{result[f'{name}_bytes'] / 1024:7.1f} KiB  ({result[f'{name}_matching']:,} match)"
            f"  all rows: {result[f'all_rows_over_{name}_time']}x the time, "
            f"{result[f'all_rows_over_{name}_bytes']:,}x the bytes"
        )
    print(f"  all rows  {seconds:8.2f} s   {size / 2**20:7.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
