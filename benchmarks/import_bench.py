"""Importer and exporter throughput, measured side by side in one run.

For each real log (``../shared/real_logs`` beside the repository, or ``--logs DIR``) it times
plain ``json.loads`` of every line (the floor any importer pays), the importer without a store,
and the importer into a fresh SQLite store, and prints records/s plus their ratios. A synthetic
MetaSchedule database (the test fixture's records repeated) is imported with and without TVM
decoding. A synthetic SQLite store of ``--stages`` stage events is exported as a Chrome trace
and, for comparison, as JSON lines.

    python benchmarks/import_bench.py [--json] [--repeat 3] [--stages 200000]

Each figure is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.events import RecordEvent, StageEvent  # noqa: E402
from collectors.exporters import export_chrome_trace  # noqa: E402
from collectors.importers import import_paths  # noqa: E402
from collectors.jsonl import export_jsonl  # noqa: E402
from collectors.sqlite_store import SQLiteStore  # noqa: E402

REAL_LOGS = {
    "autotvm": "tlcbench_autotvm_platinum-8124m_bert-B1-float32.kernel.log",
    "ansor": "cutlass-eval_bert_ansor.log",
    "autotvm-tophub": "tophub_llvm_v0.04.log",
}
MS_FIXTURE = ROOT / "tests" / "collectors" / "importers" / "data" / "ms_db"


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    """Fastest wall time of ``repeat`` calls, and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def json_floor(path: Path) -> int:
    count = 0
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            text = line.strip()
            if text and not text.startswith("#"):
                json.loads(text)
                count += 1
    return count


def bench_log(path: Path, repeat: int, tmp: Path) -> dict[str, Any]:
    floor_s, lines = best_of(repeat, lambda: json_floor(path))
    parse_s, (summary,) = best_of(repeat, lambda: import_paths([path], None))

    def into_sqlite() -> Any:
        db = tmp / "bench.db"
        for leftover in tmp.glob("bench.db*"):
            leftover.unlink()
        with SQLiteStore(db) as store:
            return import_paths([path], store)

    store_s, _ = best_of(repeat, into_sqlite)
    records = summary.records
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "lines": lines,
        "records": records,
        "json_loads_records_per_s": round(lines / floor_s),
        "parse_records_per_s": round(records / parse_s),
        "sqlite_records_per_s": round(records / store_s),
        "sqlite_seconds": round(store_s, 3),
        "parse_vs_json_loads": round(floor_s / parse_s, 3),
        "sqlite_vs_parse": round(parse_s / store_s, 3),
    }


def synthetic_ms_db(tmp: Path, records: int) -> Path:
    db = tmp / "ms_db"
    db.mkdir()
    shutil.copy(MS_FIXTURE / "database_workload.json", db / "database_workload.json")
    lines = (MS_FIXTURE / "database_tuning_record.json").read_text().splitlines()
    with open(db / "database_tuning_record.json", "w") as out:
        for i in range(records):
            out.write(lines[i % len(lines)] + "\n")
    return db


def bench_metaschedule(tmp: Path, repeat: int, records: int) -> dict[str, Any]:
    db = synthetic_ms_db(tmp, records)
    plain_s, _ = best_of(repeat, lambda: import_paths([db], None, use_tvm=False))
    result: dict[str, Any] = {
        "records": records,
        "synthetic": "fixture records repeated",
        "plain_records_per_s": round(records / plain_s),
    }
    try:
        import tvm  # noqa: F401
    except ImportError:
        result["tvm_records_per_s"] = None
        return result
    import_paths([db], None, use_tvm=True)  # first call pays the TVM import
    tvm_s, _ = best_of(repeat, lambda: import_paths([db], None, use_tvm=True))
    result["tvm_records_per_s"] = round(records / tvm_s)
    result["tvm_vs_plain"] = round(plain_s / tvm_s, 3)
    return result


def synthetic_store(path: Path, stages: int) -> int:
    """A store of ``stages`` stage events (4 jobs, 6 resources) plus one record per 4 stages."""
    resources = ["client:0", "client:1", "device:llvm:0", "device:llvm:1", "device:rpc:pi:0",
                 "device:rpc:pi:1"]  # fmt: skip
    kinds = ("select", "build", "profile", "update")
    with SQLiteStore(path) as store:
        batch: list[Any] = []
        seq = 0
        for i in range(stages):
            start = 1_700_000_000.0 + i * 0.25
            batch.append(StageEvent(
                source="bench", seq=seq, ts=start + 0.2, job=f"job-{i % 4}", task=f"t{i % 16}",
                iteration=i // 64, stage=kinds[i % 4], resource=resources[i % 6], start=start,
                end=start + 0.2, candidates=16,
            ))  # fmt: skip
            seq += 1
            if i % 4 == 3:
                batch.append(RecordEvent(
                    source="bench", seq=seq, ts=start, job=f"job-{i % 4}", task=f"t{i % 16}",
                    candidate=i, run_secs=(1e-3,),
                ))  # fmt: skip
                seq += 1
            if len(batch) >= 20_000:
                store.append(batch)
                batch.clear()
        store.append(batch)
        return store.last_pos()


def bench_chrome_trace(tmp: Path, repeat: int, stages: int) -> dict[str, Any]:
    db = tmp / "synthetic.db"
    events = synthetic_store(db, stages)
    with SQLiteStore(db, read_only=True) as store:
        trace_s, summary = best_of(repeat, lambda: export_chrome_trace(store, tmp / "trace.json"))
        jsonl_s, written = best_of(repeat, lambda: export_jsonl(store, tmp / "events.jsonl"))
    return {
        "synthetic": True,
        "stages": summary.stages,
        "events_in_store": events,
        "chrome_trace_stages_per_s": round(summary.stages / trace_s),
        "chrome_trace_seconds": round(trace_s, 3),
        "chrome_trace_bytes": (tmp / "trace.json").stat().st_size,
        "jsonl_events_per_s": round(written / jsonl_s),
        "chrome_trace_vs_jsonl_time": round(jsonl_s / trace_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stages", type=int, default=200_000, help="synthetic trace size")
    parser.add_argument("--ms-records", type=int, default=2_000)
    parser.add_argument("--logs", type=Path, default=ROOT.parent / "shared" / "real_logs")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "repeat": args.repeat,
        "real_logs": {},
    }
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for label, file_name in REAL_LOGS.items():
            path = args.logs / file_name
            if path.is_file():
                result["real_logs"][label] = bench_log(path, args.repeat, tmp)
            else:
                result["real_logs"][label] = {"skipped": f"{path} not found"}
        result["metaschedule"] = bench_metaschedule(tmp, args.repeat, args.ms_records)
        result["chrome_trace"] = bench_chrome_trace(tmp, args.repeat, args.stages)
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 0


def _cpus() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _print(result: dict[str, Any]) -> None:
    for label, row in result["real_logs"].items():
        if "skipped" in row:
            print(f"{label}: skipped ({row['skipped']})")
            continue
        print(
            f"{label}: {row['records']} records; json.loads {row['json_loads_records_per_s']}/s, "
            f"parse {row['parse_records_per_s']}/s ({row['parse_vs_json_loads']}x json.loads), "
            f"into SQLite {row['sqlite_records_per_s']}/s ({row['sqlite_seconds']} s)"
        )
    ms = result["metaschedule"]
    print(
        f"metaschedule (synthetic, {ms['records']} records): plain {ms['plain_records_per_s']}/s, "
        f"with TVM decoding {ms.get('tvm_records_per_s')}/s"
    )
    ct = result["chrome_trace"]
    print(
        f"chrome trace (synthetic store, {ct['stages']} stages): {ct['chrome_trace_stages_per_s']}"
        f" stages/s ({ct['chrome_trace_seconds']} s, {ct['chrome_trace_bytes']} bytes); "
        f"JSONL export of the same store {ct['jsonl_events_per_s']} events/s"
    )


if __name__ == "__main__":
    sys.exit(main())
