"""What moves a kernel's re-measured time: the process that times it, or the minute it runs.

``scheduler_real.py`` compares each job's recorded best with the median of five fresh device
processes timing it right after the run. This separates the two things that can move such a
re-measure: tunes ``scheduler_real.py``'s four workloads briefly (``tuneloom tune``), builds
each job's two best schedules, then in each of ``--rounds`` rounds times every kernel once in
a fresh device process and once in one device process that lives through all rounds (as the
tuner's does), both pinned to the device core and timing as the tuner does (``number=3,
repeat=3, min_repeat_ms=100``, on a thread of their own).

Printed per kernel: the two processes' median over the rounds and how far apart those are
(the process), the rounds' spread of each (slowest / fastest - 1: the minute), and the
correlation of the two processes' round-by-round times (near 1: both moved with the host).
Summed up: the median deviation of one timing from the fresh processes' median over all
rounds, beside the median deviation between the two processes' medians; and whether the
minute moves every kernel alike (a host index that a calibration kernel could divide out):
the median correlation of kernels of different jobs over the rounds, and each kernel's
rounds spread before and after dividing by the other jobs' kernels' movement.

    python benchmarks/drift_bench.py [--rounds 8] [--trials 16] [--json]

Takes about 3 minutes on two cores. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scheduler_real import (  # noqa: E402
    MIN_REPEAT_MS,
    NUMBER,
    REPEAT,
    build_record,
    device_profiler,
    time_once,
    tune,
    valid_records,
)


def kernels(work: Path, trials: int) -> list[tuple[str, float, str, list[Any]]]:
    """(job, recorded mean, artifact, args info) of each job's two best records."""
    result = tune("feed-device", work, trials, 0, "--lend", "off")
    out = []
    for job in result["jobs"]:
        best = sorted(valid_records(Path(job["db_dir"])), key=lambda pair: pair[1])[:2]
        for record, recorded in best:
            out.append((job["name"], recorded, *build_record(record, work)))
    return out


def spread(values: list[float]) -> float:
    return max(values) / min(values) - 1


def host_index(built: list[Any], lasting: list[list[float]]) -> dict[str, float]:
    """How much of a kernel's round-to-round movement the other jobs' kernels share: the
    median correlation between kernels of different jobs, and the median rounds spread of
    each kernel divided, round by round, by the geometric mean of the other jobs' kernels
    (relative to their medians)."""
    jobs = [job for job, *_ in built]
    relative = [[v / statistics.median(s) for v in s] for s in lasting]
    pairs = [
        statistics.correlation(lasting[a], lasting[b])
        for a in range(len(built))
        for b in range(a + 1, len(built))
        if jobs[a] != jobs[b]
    ]
    spreads = []
    for k, series in enumerate(lasting):
        others = [relative[o] for o in range(len(built)) if jobs[o] != jobs[k]]
        index = [statistics.geometric_mean(col) for col in zip(*others, strict=True)]
        spreads.append(spread([v / i for v, i in zip(series, index, strict=True)]))
    return {
        "median_cross_job_correlation": statistics.median(pairs),
        "median_rounds_spread_normalized": statistics.median(spreads),
        "median_rounds_spread_long_lived": statistics.median(spread(s) for s in lasting),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--trials", type=int, default=16, help="trials per job (default 16)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3")
    with tempfile.TemporaryDirectory(prefix="drift-") as tmp:
        built = kernels(Path(tmp), args.trials)
        fresh: list[list[float]] = [[] for _ in built]
        lasting: list[list[float]] = [[] for _ in built]
        long_lived = device_profiler()
        try:
            for _ in range(args.rounds):
                new = device_profiler()
                try:
                    for k, (_, _, artifact, info) in enumerate(built):
                        fresh[k].append(time_once(new, artifact, info))
                finally:
                    new.close()
                for k, (_, _, artifact, info) in enumerate(built):
                    lasting[k].append(time_once(long_lived, artifact, info))
        finally:
            long_lived.close()
    rows = []
    for k, (job, recorded, _, _) in enumerate(built):
        fresh_median = statistics.median(fresh[k])
        lasting_median = statistics.median(lasting[k])
        rows.append({
            "job": job,
            "recorded_us": recorded * 1e6,
            "fresh_median_us": fresh_median * 1e6,
            "long_lived_median_us": lasting_median * 1e6,
            "process_gap": abs(lasting_median / fresh_median - 1),
            "fresh_rounds_spread": spread(fresh[k]),
            "long_lived_rounds_spread": spread(lasting[k]),
            "rounds_correlation": statistics.correlation(fresh[k], lasting[k]),
            "one_timing_deviation": statistics.median(
                abs(v / fresh_median - 1) for v in fresh[k]
            ),
        })  # fmt: skip
    summary = {
        "rounds": args.rounds,
        "timing": {"number": NUMBER, "repeat": REPEAT, "min_repeat_ms": MIN_REPEAT_MS},
        "kernels": rows,
        "median_process_gap": statistics.median(r["process_gap"] for r in rows),
        "median_one_timing_deviation": statistics.median(r["one_timing_deviation"] for r in rows),
        "median_rounds_spread": statistics.median(r["fresh_rounds_spread"] for r in rows),
        "median_rounds_correlation": statistics.median(r["rounds_correlation"] for r in rows),
        **host_index(built, lasting),
        "long_lived_rounds_us": [[v * 1e6 for v in series] for series in lasting],
        "fresh_rounds_us": [[v * 1e6 for v in series] for series in fresh],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    for r in rows:
        print(
            f"{r['job']:>10s} recorded {r['recorded_us']:7.1f} us | median fresh "
            f"{r['fresh_median_us']:7.1f}, long-lived {r['long_lived_median_us']:7.1f} "
            f"({r['process_gap']:.1%} apart) | rounds spread {r['fresh_rounds_spread']:.1%} / "
            f"{r['long_lived_rounds_spread']:.1%}, correlation {r['rounds_correlation']:+.2f}"
        )
    print(
        f"medians over kernels: the two processes {summary['median_process_gap']:.1%} apart; "
        f"one fresh timing {summary['median_one_timing_deviation']:.1%} from its kernel's "
        f"median; rounds spread {summary['median_rounds_spread']:.1%}; rounds correlation "
        f"{summary['median_rounds_correlation']:+.2f}"
    )
    print(
        f"kernels of different jobs move together: correlation "
        f"{summary['median_cross_job_correlation']:+.2f}; rounds spread of the long-lived "
        f"process {summary['median_rounds_spread_long_lived']:.1%}, divided by the other jobs' "
        f"movement {summary['median_rounds_spread_normalized']:.1%}"
    )


if __name__ == "__main__":
    main()
