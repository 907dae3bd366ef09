"""How fast the candidates that recompute a producer ran, from MetaSchedule databases.

Every measured record of the given databases is replayed on its workload and its
``module_recompute_factor`` counted (``tuner.metaschedule.recompute``: the most times a
data-parallel block runs per element it writes). Records are grouped by that factor, each against
the best record of its workload in its database; the table says how close to a workload's best
the schedules of each group came, and how many measured records lay above ``RECOMPUTE_LIMIT``,
the factor above which CPU searches now reject a candidate. Databases from searches without the
limit (``tune_relax``, or tuneloom before it) say what the limit removes; from searches with
it, that nothing above it was measured.

    python benchmarks/recompute_bench.py RUNS_OR_DATABASE_DIR... [--min-records 8] [--json]

A folder is searched for ``database_tuning_record.json`` files (a tuneloom runs folder holds
one per job).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECORDS = "database_tuning_record.json"
WORKLOADS = "database_workload.json"
BOUNDS = (1.0, 2.0, 4.0, 8.0, 16.0, 64.0, math.inf)  # upper ends of the factor groups


def measured_factors(folder: Path) -> dict[str, list[tuple[float, float]]]:
    """Per workload of one database: (recompute factor, mean seconds) of each record that
    ran."""
    import tvm_ffi
    from tvm import s_tir
    from tvm.s_tir import meta_schedule as ms

    from tuner.metaschedule.recompute import module_recompute_factor

    database = ms.database.JSONDatabase(
        path_workload=str(folder / WORKLOADS), path_tuning_record=str(folder / RECORDS)
    )
    found: dict[str, list[tuple[float, float]]] = {}
    for record in database.get_all_tuning_records():
        secs = [float(s) for s in record.run_secs or ()]
        if not secs or statistics.mean(secs) >= 1.0:  # failed runs are stored as 1e10 s
            continue
        sch = s_tir.Schedule(record.workload.mod)
        try:
            record.trace.apply_to_schedule(sch, remove_postproc=False)
        except Exception:  # a trace that no longer replays (another TVM): left out
            continue
        factor = module_recompute_factor(sch.mod)
        key = str(tvm_ffi.structural_hash(record.workload.mod))
        found.setdefault(key, []).append((factor, statistics.mean(secs)))
    return found


def group_of(factor: float) -> float:
    return next(bound for bound in BOUNDS if factor <= bound * (1 + 1e-9))


def summarize(
    databases: list[dict[str, list[tuple[float, float]]]], min_records: int
) -> dict[str, Any]:
    """Each factor group's records as multiples of their workload's best, and the records
    above the limit."""
    from tuner.metaschedule.recompute import RECOMPUTE_LIMIT

    groups: dict[float, list[float]] = {bound: [] for bound in BOUNDS}
    above = total = workloads = 0
    for database in databases:
        for rows in database.values():
            if len(rows) < min_records:
                continue
            workloads += 1
            best = min(seconds for _, seconds in rows)
            for factor, seconds in rows:
                groups[group_of(factor)].append(seconds / best)
                above += factor > RECOMPUTE_LIMIT
                total += 1
    table = []
    low = 0.0
    for bound, ratios in groups.items():
        ratios.sort()
        row: dict[str, Any] = {"factor_above": low, "factor_at_most": bound, "records": len(ratios)}
        if ratios:
            row |= {
                "closest_to_best": ratios[0],
                "p10": ratios[len(ratios) // 10],
                "median": statistics.median(ratios),
            }
        table.append(row)
        low = bound
    return {
        "limit": RECOMPUTE_LIMIT,
        "workloads": workloads,
        "records": total,
        "records_above_limit": above,
        "groups": table,
    }


def database_folders(paths: list[str]) -> list[Path]:
    folders: list[Path] = []
    for path in map(Path, paths):
        found = (
            [path] if (path / RECORDS).is_file() else sorted(f.parent for f in path.rglob(RECORDS))
        )
        if not found:
            raise SystemExit(f"{path}: no {RECORDS} in it")
        folders += found
    return folders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="MetaSchedule databases or runs folders")
    parser.add_argument("--min-records", type=int, default=8,
                        help="leave out workloads with fewer measured records")  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folders = database_folders(args.folders)
    summary = summarize([measured_factors(f) for f in folders], args.min_records)
    summary["databases"] = [str(f) for f in folders]
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['records']} records of {summary['workloads']} workloads "
          f"in {len(folders)} databases; {summary['records_above_limit']} above the limit "
          f"({summary['limit']:g})")  # fmt: skip
    print("recompute factor   records  closest to best   p10   median  (x workload's best)")
    for row in summary["groups"]:
        span = f"({row['factor_above']:g}, {row['factor_at_most']:g}]"
        if not row["records"]:
            print(f"{span:>17}  {0:8d}")
            continue
        print(f"{span:>17}  {row['records']:8d}  {row['closest_to_best']:15.2f}  "
              f"{row['p10']:5.2f}  {row['median']:6.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
