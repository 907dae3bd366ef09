"""A synthetic search space for the Search-space page: one job, one matmul task, ``n``
candidates whose traces are the real MetaSchedule matmul traces of ``sample_logs`` (one
drawn per candidate) with their decisions redrawn. The task names the sample matmul
database, so loops are named ``i, j, k``. With ``decides``, candidates whose inner tile of
``j`` is 16 run about three times faster; otherwise latency is noise. Made up: nothing is
measured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from collectors._base import BaseStore
from collectors.events import JobEvent, RecordEvent, TaskEvent

SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs"
SAMPLE = SAMPLES / "tune-4-jobs.jsonl"
DATABASE = SAMPLES / "metaschedule-matmul-128"  # names the loops: i, j, k
WORKLOAD = "8977967321216436469"
JOB = "space-1"
TASK = "matmul:128x128x128"
FOUR_WAY = [(a, b, c, 128 // (a * b * c)) for a in (1, 2, 4, 8) for b in (1, 2, 4) for c in (1, 2, 4, 16)]  # fmt: skip  # noqa: E501
TWO_WAY = [(128 // k, k) for k in (1, 2, 4, 8, 16, 32)]


def matmul_traces() -> list[list]:
    """The instructions and decisions of every matmul record of the sample log (26 distinct
    instruction lists among 32: sketches with and without a cache write, and the
    post-processing each candidate's decisions led to)."""
    traces = []
    for line in SAMPLE.read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "record" and event["task"] == TASK:
            traces.append(json.loads(event["trace"]))
    assert traces, "no matmul record in the sample log"
    return traces


def searchspace_history(store: BaseStore, n: int, *, decides: bool = True, seed: int = 0) -> int:
    """Append the job, its task and ``n`` candidates; returns how many events were stored."""
    bases = matmul_traces()
    heads = [json.dumps(insts, separators=(",", ":")) for insts, _ in bases]
    rng = np.random.default_rng(seed)
    base = rng.integers(len(bases), size=n)
    i_pick = rng.integers(len(FOUR_WAY), size=n)
    j_pick = rng.integers(len(FOUR_WAY), size=n)
    k_pick = rng.integers(len(TWO_WAY), size=n)
    unroll = rng.integers(4, size=n)
    noise = np.exp(rng.normal(0.0, 0.25, n))
    events: list = [
        JobEvent(source="space", seq=0, ts=1.0, job=JOB, change="submitted", model="synthetic"),
        TaskEvent(
            source="space",
            seq=1,
            ts=1.0,
            job=JOB,
            task=TASK,
            op="matmul",
            workload_hash=WORKLOAD,
            detail=f"metaschedule_database={DATABASE}",
        ),
    ]
    for c in range(n):
        slots = [index for index, _ in bases[base[c]][1]]  # i tile, j tile, k tile, unroll
        j_tile = FOUR_WAY[j_pick[c]]
        chosen = [
            [slots[0], list(FOUR_WAY[i_pick[c]])],
            [slots[1], list(j_tile)],
            [slots[2], list(TWO_WAY[k_pick[c]])],
            [slots[3], int(unroll[c])],
        ]
        secs = 1e-3 * float(noise[c]) * (0.3 if decides and j_tile[3] == 16 else 1.0)
        trace = f"[{heads[base[c]]},{json.dumps(chosen, separators=(',', ':'))}]"
        events.append(
            RecordEvent(
                source="space",
                seq=2 + c,
                ts=2.0 + c,
                job=JOB,
                task=TASK,
                candidate=c,
                trace=trace,
                run_secs=(secs,),
                origin="metaschedule",
            )
        )
    store.append(events)
    return len(events)
