"""Decoding many candidates at once (one plan per instruction list, decisions read as
columns, new records only) gives exactly what decoding each trace alone gives."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd

from collectors.decisions import DecisionError, decisions_of
from collectors.decisions_table import CandidateTable, refresh
from collectors.memory_store import MemoryStore
from tests.dashboard.searchspace_history import JOB, TASK, matmul_traces, searchspace_history


def one_by_one(rows) -> tuple[pd.DataFrame, dict[str, int]]:
    decoded, reasons = [], {}
    for _, trace, origin, secs in rows:
        if secs is None:
            continue
        try:
            decoded.append(decisions_of(trace, origin))
        except DecisionError as exc:
            reasons[str(exc)] = reasons.get(str(exc), 0) + 1
    return pd.DataFrame.from_records(decoded), reasons


def odd_traces() -> list[str]:
    """Traces the column reader must leave to the one-by-one path."""
    insts, decisions = matmul_traces()[0]
    out_of_range = [d if i < 3 else [d[0], 9] for i, d in enumerate(decisions)]
    float_tile = [[decisions[0][0], [16.0, 1, 1, 8]], *decisions[1:]]
    return [
        json.dumps([insts, decisions]),  # spaced JSON: not the compact shape
        json.dumps([insts, out_of_range], separators=(",", ":")),  # no such unroll option
        json.dumps([insts, decisions[1:]], separators=(",", ":")),  # a decision missing
        json.dumps([insts, float_tile], separators=(",", ":")),  # a factor that is no int
        json.dumps([insts, decisions], separators=(",", ":"))[:-3] + "x]]",  # not JSON
    ]


def test_many_candidates_decode_as_one_by_one():
    store = MemoryStore()
    searchspace_history(store, 400)
    rows = [(r.pos, r.trace, r.origin, r.mean_secs) for r in store.record_traces(JOB, TASK)]
    rows += [(10_000 + i, t, "metaschedule", 1e-3) for i, t in enumerate(odd_traces())]
    rows.insert(7, (7_000, rows[0][1], "metaschedule", None))  # failed: not decoded
    table = CandidateTable()
    table.extend(rows)
    got = table.candidates()
    features, reasons = one_by_one(rows)
    pd.testing.assert_frame_equal(got.features, features)
    assert got.undecoded == reasons and len(reasons) == 4  # all but the spaced trace
    assert got.failed == 1 and len(got) == len(features)
    assert table.decoder.plans == len({json.dumps(insts) for insts, _ in matmul_traces()})


def test_refresh_reads_only_new_records_and_keeps_the_rest():
    store = MemoryStore()
    searchspace_history(store, 300)
    table = CandidateTable()
    assert refresh(table, store, JOB, TASK) == 300
    first = table.candidates()
    assert refresh(table, store, JOB, TASK) == 0 and table.candidates() is first
    more = MemoryStore()
    searchspace_history(more, 350, seed=4)
    store.append(replace(s.event, seq=10_000 + s.event.seq) for s in more.read()[-50:])
    assert refresh(table, store, JOB, TASK) == 50
    whole = CandidateTable()
    refresh(whole, store, JOB, TASK)
    pd.testing.assert_frame_equal(table.candidates().features, whole.candidates().features)
    assert list(table.candidates().pos) == list(whole.candidates().pos)
    assert list(table.candidates().latency_secs) == list(whole.candidates().latency_secs)
