"""Importer and exporter throughput, measured side by side in one run.

For each real log (``../shared/real_logs`` beside the repository, or ``--logs DIR``) it times
plain ``json.loads`` of every line (the floor any importer pays), the importer without a store,
and the importer into a fresh SQLite store, and prints records/s plus their ratios. A synthetic
MetaSchedule database (the test fixture's records repeated) is imported with and without TVM
decoding. A synthetic SQLite store of ``--stages`` stage events is exported as a Chrome trace
and, for comparison, as JSON lines.

With ``--records N`` it first times, on the same real lines, ``json.loads``, ``orjson`` (when
installed), msgspec's generic decoder and each importer's line reading before (``json``'s
scanner) and now (msgspec), then measures each format at scale: a file of 100,000 records and one
of N records, made by repeating a real log with fresh keys (see ``scaled_file``), are each
imported into a fresh SQLite store by a child process parsing in one process, which reports
records/s (wall and CPU), plain ``json.loads`` records/s of the same file, their ratio, and
its peak RSS. Each child starts once the files just written are on disk (``os.sync``): a
user's log was written long before its import, so flushing the gigabyte just generated
should not share the CPU with it. The N-record AutoTVM, Ansor and MetaSchedule files are
imported once more with worker processes parsing (``collectors.importers.parallel``, one per
CPU beyond the first): both rates and their ratio are printed (a busy machine leaves workers
no CPU to run on; the peak RSS is the importing process's, the workers have their own).

    python benchmarks/import_bench.py [--json] [--repeat 3] [--stages 200000]
    python benchmarks/import_bench.py --records 1000000 --only-scale [--json]

Each figure of the first part is the best of ``--repeat`` runs; the scale runs run once.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
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
MS_SAMPLE = ROOT / "sample_logs" / "metaschedule-matmul-128"  # a real tuning run's database
SCALE_FORMATS = ("autotvm", "ansor", "metaschedule", "tuneloom")
PARALLEL_FORMATS = ("autotvm", "ansor", "metaschedule")  # lines worker processes can parse
MS_WORKLOADS = 100  # distinct workloads of a scaled MetaSchedule database


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


# --- scale: one format at 100k and N records, each import in a child process ---------------


def scaled_file(fmt: str, logs: Path, folder: Path, records: int) -> Path:
    """A ``fmt`` file (a MetaSchedule database folder) of ``records`` records, made by
    repeating a real log with fresh keys, so that no record is a replay of another.

    - autotvm: the TLCBench BERT log; repetition r renames each task ``<name>.r<r>`` (a new
      workload key) and shifts its timestamps past the previous repetition;
    - ansor: the cutlass-eval BERT log; repetition r gives each workload key a new hash and
      shifts the timestamps;
    - metaschedule: the 32 records of sample_logs/metaschedule-matmul-128 (a real tuning
      run) over ``MS_WORKLOADS`` copies of its workload with fresh structural hashes;
    - tuneloom: the events of the imported AutoTVM log as tuneloom JSON lines, renumbered so
      that every repetition continues the one source's sequence.
    """
    if fmt == "metaschedule":
        return _scaled_ms(folder / "ms_db", records)
    path = folder / f"{fmt}.log"
    with open(path, "w", encoding="utf-8") as out:
        lines = {"autotvm": _autotvm_lines, "ansor": _ansor_lines, "tuneloom": _tuneloom_lines}
        count = 0
        for line, is_record in lines[fmt](logs):
            out.write(line)
            out.write("\n")
            count += is_record
            if count >= records:
                break
    return path


def _repeat(templates: list[Any]) -> Iterator[tuple[int, Any]]:
    r = 0
    while True:
        for t in templates:
            yield r, t
        r += 1


def _split(text: str, *markers: str) -> list[str]:
    parts = []
    for marker in markers:
        head, text = text.split(marker, 1)
        parts.append(head)
    return [*parts, text]


def _autotvm_lines(logs: Path) -> Iterator[tuple[str, bool]]:
    objs = _json_lines(logs / REAL_LOGS["autotvm"])
    span = max(o["result"][3] for o in objs) - min(o["result"][3] for o in objs) + 60.0
    templates = []
    for o in objs:
        name, ts = o["input"][1], o["result"][3]
        o["input"][1], o["result"][3] = "@@NAME@@", "@@TS@@"
        templates.append((name, ts, _split(json.dumps(o), '"@@NAME@@"', '"@@TS@@"')))
    for r, (name, ts, (a, b, c)) in _repeat(templates):
        task = name if r == 0 else f"{name}.r{r}"
        yield f"{a}{json.dumps(task)}{b}{ts + r * span!r}{c}", True


def _ansor_lines(logs: Path) -> Iterator[tuple[str, bool]]:
    objs = _json_lines(logs / REAL_LOGS["ansor"])
    span = int(max(o["r"][3] for o in objs) - min(o["r"][3] for o in objs)) + 60
    templates = []
    for o in objs:
        key, ts = o["i"][0][0], o["r"][3]
        o["i"][0][0], o["r"][3] = "@@KEY@@", "@@TS@@"
        templates.append((key, ts, _split(json.dumps(o), '"@@KEY@@"', '"@@TS@@"')))
    keys: dict[tuple[str, int], str] = {}
    for r, (key, ts, (a, b, c)) in _repeat(templates):
        fresh = keys.get((key, r))
        if fresh is None:
            parts = json.loads(key)
            if r:
                parts[0] = hashlib.md5(f"{parts[0]}:{r}".encode()).hexdigest()
            fresh = keys[(key, r)] = json.dumps(json.dumps(parts))
        yield f"{a}{fresh}{b}{ts + r * span}{c}", True


def _tuneloom_lines(logs: Path) -> Iterator[tuple[str, bool]]:
    from collectors.importers import detect, iter_events
    from collectors.importers.driver import context_for

    found = detect(logs / REAL_LOGS["autotvm"])
    events = list(iter_events(found, context_for(found, use_tvm=False)))
    templates = []
    for e in events:
        head, tail = e.to_json().split(f'"seq":{e.seq},', 1)
        templates.append((head, tail, e.kind == "record"))
    for seq, (_, (head, tail, is_record)) in enumerate(_repeat(templates)):
        yield f'{head}"seq":{seq},{tail}', is_record


def _scaled_ms(db: Path, records: int) -> Path:
    db.mkdir()
    (line,) = (MS_SAMPLE / "database_workload.json").read_text().splitlines()
    structural_hash, payload = json.loads(line)
    with open(db / "database_workload.json", "w") as out:
        for k in range(MS_WORKLOADS):
            out.write(json.dumps([f"{structural_hash}{k:03d}", payload]) + "\n")
    rows = (MS_SAMPLE / "database_tuning_record.json").read_text().splitlines()
    assert all(row.startswith("[0,") for row in rows)
    with open(db / "database_tuning_record.json", "w") as out:
        for i in range(records):
            workload = (i // len(rows)) % MS_WORKLOADS
            out.write(f"[{workload},{rows[i % len(rows)][3:]}\n")
    return db


def _json_lines(path: Path) -> list[Any]:
    with open(path, encoding="utf-8") as stream:
        return [json.loads(x) for x in stream if x.strip() and not x.startswith("#")]


def bench_scale(logs: Path, tmp: Path, records: int, formats: list[str]) -> dict[str, Any]:
    """Each format at 100,000 records (when ``records`` is more) and at ``records``."""
    sizes = sorted({min(100_000, records), records})
    out: dict[str, Any] = {"sizes": sizes, "formats": {}}
    for fmt in formats:
        rows = out["formats"][fmt] = {}
        for size in sizes:
            folder = tmp / f"{fmt}-{size}"
            folder.mkdir()
            t0 = time.perf_counter()
            path = scaled_file(fmt, logs, folder, size)
            made_s = time.perf_counter() - t0
            rows[str(size)] = row = _child_run(fmt, path, folder / "store.db", 0)
            row["generate_seconds"] = round(made_s, 1)
            if size == sizes[-1] and fmt in PARALLEL_FORMATS:
                (folder / "store.db").unlink()
                workers = max(1, (_cpus() or 1) - 1)
                rows["parallel"] = par = _child_run(fmt, path, folder / "store.db", workers)
                par["workers"] = workers
                par["vs_one_process"] = round(par["records_per_s"] / row["records_per_s"], 3)
            shutil.rmtree(folder)
        if len(sizes) == 2:
            small, large = (rows[str(n)] for n in sizes)
            rows["peak_rss_growth_mib"] = round(large["peak_rss_mib"] - small["peak_rss_mib"], 1)
    return out


def _child_run(fmt: str, path: Path, db: Path, workers: int) -> dict[str, Any]:
    os.sync()  # the generated file (and any earlier run's store) written out first
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", fmt, str(path), str(db),
        str(workers),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child import of {path} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def child_import(fmt: str, path: Path, db: Path, workers: int) -> dict[str, Any]:
    """Run in a fresh process: the json.loads floor and the import into a new SQLite store."""
    from collectors.importers import import_paths
    from collectors.sqlite_store import SQLiteStore

    lines_file = path / "database_tuning_record.json" if path.is_dir() else path
    rss_before = _max_rss_mib()
    t0 = time.perf_counter()
    lines = json_floor(lines_file)
    floor_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    with SQLiteStore(db) as store:
        (summary,) = import_paths([path], store, fmt=fmt, use_tvm=False, workers=workers)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = summary.records
    return {
        "records": n,
        "events": summary.events,
        "stored": summary.stored,
        "bad_lines": summary.bad_lines,
        "file_mib": round(_size(path) / 2**20, 1),
        "db_mib": round(db.stat().st_size / 2**20, 1),
        "seconds": round(wall, 2),
        "records_per_s": round(n / wall),
        "records_per_cpu_s": round(n / cpu),
        "events_per_s": round(summary.events / wall),
        "json_loads_lines_per_s": round(lines / floor_s),
        "vs_json_loads": round((n / wall) / (lines / floor_s), 3),
        "rss_before_import_mib": rss_before,
        "peak_rss_mib": _max_rss_mib(),
    }


def _max_rss_mib() -> float:
    """This process's peak resident memory. Linux's ``ru_maxrss`` of a child also counts the
    forked copy of its parent (kept across exec), so the kernel's VmHWM is read instead."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir())
    return path.stat().st_size


# --- parsers: the JSON decoders on the real lines, and the importers' readings ----------


def bench_parsers(logs: Path, repeat: int) -> dict[str, Any]:
    """Microseconds per line, best of ``repeat``, for the same real lines: ``json.loads``,
    ``orjson.loads`` (when installed), msgspec's generic decoder, and each importer's line
    reading before (``json``'s scanner, piece by piece) and now (msgspec, typed, raw text
    kept). Readings give the same measurement; the ratio is before / now."""
    import msgspec

    from collectors.events import from_json
    from collectors.importers import ansor, autotvm, metaschedule
    from collectors.jsonl import decode_event

    try:
        import orjson
    except ImportError:
        orjson = None
    tuneloom = [line for line, _ in itertools.islice(_tuneloom_lines(logs), 20_000)]
    formats: dict[str, tuple[list[str], Callable[[str], Any], Callable[[str], Any]]] = {
        "autotvm": (
            _text_lines(logs / REAL_LOGS["autotvm"]), autotvm._fast_measurement,
            autotvm._msgspec_measurement,
        ),
        "ansor": (
            _text_lines(logs / REAL_LOGS["ansor"]), ansor._fast_measurement,
            ansor._msgspec_measurement,
        ),
        "metaschedule": (
            _text_lines(MS_SAMPLE / "database_tuning_record.json") * 100,
            metaschedule._parse_record, metaschedule._msgspec_record,
        ),
        "tuneloom": (tuneloom, from_json, decode_event),
    }  # fmt: skip
    generic = msgspec.json.Decoder().decode
    out: dict[str, Any] = {}
    for fmt, (lines, before, now) in formats.items():
        row = out[fmt] = {"lines": len(lines)}
        readers = [("json_loads", json.loads), ("msgspec_generic", generic)]
        if orjson is not None:
            readers.append(("orjson_loads", orjson.loads))
        readers += [("reading_before", before), ("reading_now", now)]
        for name, read in readers:
            seconds, _ = best_of(repeat, lambda read=read, lines=lines: _read_all(read, lines))
            row[f"{name}_us"] = round(seconds / len(lines) * 1e6, 2)
        row["now_vs_before"] = round(row["reading_before_us"] / row["reading_now_us"], 2)
        if orjson is not None:
            row["orjson_vs_json"] = round(row["json_loads_us"] / row["orjson_loads_us"], 2)
        row["msgspec_vs_json"] = round(row["json_loads_us"] / row["msgspec_generic_us"], 2)
    return out


def _read_all(read: Callable[[str], Any], lines: list[str]) -> None:
    for line in lines:
        read(line)


def _text_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as stream:
        return [x.strip() for x in stream if x.strip() and not x.startswith("#")]


def _print_parsers(parsers: dict[str, Any]) -> None:
    print("parsers on the real lines (us per line, best of runs; reading: the importer's own):")
    print(
        f"  {'format':<13}{'json.loads':>11}{'orjson':>8}{'msgspec':>9}{'before':>8}{'now':>7}"
        f"{'now/before':>12}"
    )
    for fmt, row in parsers.items():
        print(
            f"  {fmt:<13}{row['json_loads_us']:>11}{row.get('orjson_loads_us', '-'):>8}"
            f"{row['msgspec_generic_us']:>9}{row['reading_before_us']:>8}"
            f"{row['reading_now_us']:>7}{row['now_vs_before']:>11}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stages", type=int, default=200_000, help="synthetic trace size")
    parser.add_argument("--ms-records", type=int, default=2_000)
    parser.add_argument("--logs", type=Path, default=ROOT.parent / "shared" / "real_logs")
    parser.add_argument(
        "--records", type=int, default=0, help="also import each format at this many records"
    )
    parser.add_argument("--formats", default=",".join(SCALE_FORMATS), help="for --records")
    parser.add_argument("--only-scale", action="store_true", help="skip the other parts")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: temp)")
    parser.add_argument(
        "--child", nargs=4, metavar=("FORMAT", "PATH", "DB", "WORKERS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        fmt, path, db, workers = args.child
        print(json.dumps(child_import(fmt, Path(path), Path(db), int(workers))))
        return 0
    formats = [f for f in args.formats.split(",") if f]
    if unknown := sorted(set(formats) - set(SCALE_FORMATS)):
        parser.error(f"--formats: unknown {unknown} (choose from {list(SCALE_FORMATS)})")
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "repeat": args.repeat,
        "real_logs": {},
    }
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="import-bench-") as name:
        tmp = Path(name)
        if not args.only_scale:
            for label, file_name in REAL_LOGS.items():
                path = args.logs / file_name
                if path.is_file():
                    result["real_logs"][label] = bench_log(path, args.repeat, tmp)
                else:
                    result["real_logs"][label] = {"skipped": f"{path} not found"}
            result["metaschedule"] = bench_metaschedule(tmp, args.repeat, args.ms_records)
            result["chrome_trace"] = bench_chrome_trace(tmp, args.repeat, args.stages)
        if args.records > 0:
            result["parsers"] = bench_parsers(args.logs, args.repeat)
            result["scale"] = bench_scale(args.logs, tmp, args.records, formats)
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 0


def _cpus() -> int | None:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _print(result: dict[str, Any]) -> None:
    if "parsers" in result:
        _print_parsers(result["parsers"])
    if "scale" in result:
        _print_scale(result["scale"])
    if "chrome_trace" not in result:
        return
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


def _print_scale(scale: dict[str, Any]) -> None:
    print("scale (repeated real logs, fresh keys; one child process per import):")
    header = (
        f"  {'format':<13}{'records':>10}{'rec/s':>10}{'rec/CPU s':>11}{'json.loads/s':>14}"
        f"{'ratio':>7}{'peak RSS MiB':>14}{'file MiB':>10}"
    )
    print(header)
    for fmt, rows in scale["formats"].items():
        for size in scale["sizes"]:
            row = rows[str(size)]
            print(
                f"  {fmt:<13}{row['records']:>10,}{row['records_per_s']:>10,}"
                f"{row['records_per_cpu_s']:>11,}{row['json_loads_lines_per_s']:>14,}"
                f"{row['vs_json_loads']:>7}{row['peak_rss_mib']:>14}{row['file_mib']:>10}"
            )
        if "parallel" in rows:
            par = rows["parallel"]
            print(
                f"  {'  +' + str(par['workers']) + ' worker':<13}{par['records']:>10,}"
                f"{par['records_per_s']:>10,}{'':>11}{'':>14}{par['vs_json_loads']:>7}"
                f"{par['peak_rss_mib']:>14}   ({par['vs_one_process']}x one process)"
            )


if __name__ == "__main__":
    sys.exit(main())
