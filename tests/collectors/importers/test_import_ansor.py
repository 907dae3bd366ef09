"""Ansor logs: steps kept as JSON and read as lines on demand, workload keys named, errors
classed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.importers._common import BadLine
from collectors.importers.ansor import render_trace, step_text
from tests.collectors.importers.importer_helpers import (
    ANSOR_SMALL,
    jobs,
    read_events,
    records,
    stages,
    tasks,
)


def test_steps_are_kept_as_json_and_read_as_lines() -> None:
    first = records(read_events(ANSOR_SMALL)[0])[0]
    assert first.trace is not None and first.origin == "ansor"
    line = json.loads(ANSOR_SMALL.read_text().splitlines()[0])
    assert json.loads(first.trace) == line["i"][1][1]
    assert render_trace(first.trace).splitlines() == [
        "cache_write(stage=2, scope=local)",
        "split(stage=2, iter=0, extent=4, lengths=[2], inner_to_outer=1)",
        "reorder(stage=2, order=[0, 2, 1, 3])",
        "compute_at(stage=1, target_stage=2, target_iter=1)",
        "annotate(stage=2, iter=0, annotation=parallel)",
        "fuse(stage=2, iters=[0, 1])",
        "cache_read(stage=0, scope=shared, readers=[2])",
        "follow_split(stage=3, iter=0, src_step=1, n_split=2)",
        "follow_fused_split(stage=3, iter=1, src_steps=[1, 2], level=1, factor_or_nparts=1)",
        "pragma(stage=2, iter=0, pragma=auto_unroll_max_step$16)",
        "compute_inline(stage=4)",
        "XX[1, 2]",  # an unknown step keeps its raw form
    ]


@pytest.mark.parametrize(
    ("step", "text"),
    [
        (["AN", 3, 1, 6], "annotate(stage=3, iter=1, annotation=threadIdx.x)"),
        (["AN", 3, 1, 99], "annotate(stage=3, iter=1, annotation=99)"),
        (["CR", 5], "compute_root(stage=5)"),
        (["RF", 2, 1, 0], "rfactor(stage=2, iter=1, factor_iter=0)"),
        (["SA", 2, 1, 32, 1], "storage_align(stage=2, iter=1, factor=32, offset=1)"),
        (["SP", 2, 0], "SP[2, 0]"),  # wrong arity stays raw
    ],
)
def test_step_text(step: list[object], text: str) -> None:
    assert step_text(step) == text


def test_a_step_that_is_not_a_list_is_rejected() -> None:
    with pytest.raises(BadLine):
        step_text("SP")


def test_records_and_errors() -> None:
    events, ctx = read_events(ANSOR_SMALL)
    recs = records(events)
    assert ctx.bad_lines == 0
    assert [r.run_secs for r in recs] == [
        (1.0e-06, 1.2e-06, 1.1e-06), None, (9.0e-07, 9.0e-07, 9.0e-07), (4.0e-05, 4.2e-05, 4.1e-05),
        None,
    ]  # fmt: skip
    assert [(r.error, r.error_class) for r in recs if r.run_secs is None] == [
        ("COMPILE_HOST", "build"),
        ("RUN_TIMEOUT", "timeout"),
    ]
    assert [r.ts for r in recs] == [2000.0, 2001.0, 2002.0, 2010.0, 2030.0]


def test_workloads_are_named_by_hash_or_function() -> None:
    events, _ = read_events(ANSOR_SMALL)
    found = tasks(events)
    assert [(t.task, t.op) for t in found] == [
        ("01234567(4x8, 8x16, 4x16)", "compute_dag"),
        ('matmul_add(64, 64, 64, "float32")', "matmul_add"),
    ]
    assert found[0].shapes == ((4, 8), (8, 16), (4, 16))
    assert found[0].detail is not None and "only by its hash" in found[0].detail
    assert jobs(events)[-1].target == "llvm -keys=cpu -mcpu=core-avx2"


def test_same_hash_with_other_shapes_is_another_task(tmp_path: Path) -> None:
    text = ANSOR_SMALL.read_text().splitlines()[0]
    other = text.replace("[4, 8], [8, 16], [4, 16]", "[2, 8], [8, 16], [2, 16]")
    path = tmp_path / "two.log"
    path.write_text(text + "\n" + other + "\n")
    found = tasks(read_events(path)[0])
    assert [t.task for t in found] == ["01234567(4x8, 8x16, 4x16)", "01234567(2x8, 8x16, 2x16)"]
    assert found[0].workload_hash != found[1].workload_hash


def test_batches_split_at_gaps() -> None:
    got = [(s.iteration, s.start, s.end, s.candidates) for s in stages(read_events(ANSOR_SMALL)[0])]
    # 2000-2002 back to back; 2010 is another workload; 2030 started at 2015, > 2 s after 2010
    assert got == [(0, 1999.3, 2002.0, 3), (0, 2009.1, 2010.0, 1), (1, 2015.0, 2030.0, 1)]


def test_bad_line_in_the_middle(tmp_path: Path) -> None:
    text = ANSOR_SMALL.read_text().splitlines()
    text[2] = text[2][: len(text[2]) // 2]
    path = tmp_path / "bad.log"
    path.write_text("\n".join(text) + "\n")
    events, ctx = read_events(path)
    assert (ctx.bad_lines, ctx.bad_details[0]["line"]) == (1, 3)
    assert len(records(events)) == 4


def test_render_trace_refuses_what_is_not_steps() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        render_trace("split(stage=1)")
    with pytest.raises(ValueError, match="step is not"):
        render_trace('[["SP", 1], 3]')


def _reordered(line: str, *, spaced: bool) -> str:
    obj = json.loads(line)
    reordered = {"v": obj["v"], "r": obj["r"], "i": obj["i"]}
    return json.dumps(reordered, indent=None, separators=(", ", ": ") if spaced else (",", ":"))


def test_any_layout_gives_the_same_events(tmp_path: Path) -> None:
    lines = ANSOR_SMALL.read_text().splitlines()
    other = tmp_path / "other.log"
    # keys in another order, and the compact form with spaces around the first bracket
    other.write_text("\n".join(
        [_reordered(x, spaced=True) for x in lines[:2]]
        + [" " + json.dumps(json.loads(x), separators=(",", ":")).replace("[[", "[ [", 1)
           for x in lines[2:]]
    ) + "\n")  # fmt: skip
    usual, _ = read_events(ANSOR_SMALL)
    got, ctx = read_events(other)
    assert ctx.bad_lines == 0
    assert len(records(got)) == len(records(usual))
    for a, b in zip(records(got), records(usual), strict=True):
        assert json.loads(a.trace or "") == json.loads(b.trace or "")
        assert (a.run_secs, a.error, a.ts, a.task, a.candidate) == (
            b.run_secs, b.error, b.ts, b.task, b.candidate
        )  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [
        '{"i": [["k", "llvm"], [[], [["SP", 1], 7]]], "r": [[1.0], 0, 1.0, 2.0], "v": "v0.6"}',
        '{"i": [["k", "llvm"], [[], "steps"]], "r": [[1.0], 0, 1.0, 2.0], "v": "v0.6"}',
        '{"i": [["k", "llvm"], [[], [["SP", 1]]]], "r": [[1.0], 0, 1.0, 2.0], "v": "v0.6"} x',
        '{"i": [["k", "llvm"], [[], [["SP", 1]]]], "r": [[1.0], 0, 1.0, NaN], "v": "v0.6"}',
        '{"i": [["k", "llvm"], [[], [["SP", 1]]]], "r": [[1.0], 0, 1.0, 2.0], "i": 5}',
    ],
    ids=["step-not-a-list", "steps-not-a-list", "trailing-text", "nan", "repeated-key"],
)
def test_lines_the_fast_path_leaves_are_judged_whole(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "bad.log"
    path.write_text(ANSOR_SMALL.read_text() + bad + "\n")
    events, ctx = read_events(path)
    assert ctx.bad_lines == 1
    assert ctx.bad_details[0]["line"] == len(ANSOR_SMALL.read_text().splitlines()) + 1
    assert len(records(events)) == 5
