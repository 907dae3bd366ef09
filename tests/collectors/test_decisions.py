"""Decision extraction against traces whose decisions are known, and the analysis on
synthetic candidates where one decision decides latency and where none does."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collectors.decisions import DecisionError, decisions_of
from collectors.decisions_analysis import analyze
from collectors.decisions_loops import block_loops, loops_from_database
from collectors.decisions_table import Candidates, candidate_table
from collectors.importers.ms_trace import workload_names

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_logs"
REAL_LOGS = ROOT.parent / "shared" / "real_logs"


def first_record(path: Path, task_prefix: str = "") -> dict:
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "record" and event["task"].startswith(task_prefix):
            return event
    raise AssertionError(f"no record in {path}")


def test_metaschedule_conv_trace_decisions_named_by_loop():
    record = first_record(SAMPLES / "tune-cnn-model.jsonl", "fused_conv2d1_add1_relu1")
    loops = loops_from_database(SAMPLES / "metaschedule-cnn-model", record["workload_hash"])
    assert loops["conv2d_nhwc"] == ["nn", "yy", "xx", "ff", "ry", "rx", "rc"]
    got = decisions_of(record["trace"], record["origin"], loops)
    # The trace's decisions: [[7,[1,1,1,1]],[9,[1,16,1,2]],[11,[2,8,2,1]],[13,[1,1,16,2]],
    # [15,[3,1]],[17,[1,3]],[19,[4,4]],[26,3],[28,6]]; unroll options [0,16,64,512].
    assert [got[f"tile yy[{lv}]"] for lv in ("outer", "mid1", "mid2", "inner")] == [1, 16, 1, 2]
    assert [got[f"tile ff[{lv}]"] for lv in ("outer", "mid1", "mid2", "inner")] == [1, 1, 16, 2]
    assert (got["tile rc[outer]"], got["tile rc[inner]"]) == (4, 4)
    assert got["unroll"] == 512
    assert got["compute-at pad_temp"] == "loop 6"
    # Parallel: the six outer loops fused (nn, yy, xx, ff outer; nn, yy mid1) = 1*1*2*1*1*16.
    assert got["parallel extent"] == 32
    # Vectorized: the innermost loop of the conv block, ff[inner] = 2.
    assert got["vector lanes"] == 2


def test_metaschedule_without_loop_names_uses_block_and_position():
    record = first_record(SAMPLES / "tune-4-jobs.jsonl", "matmul")
    got = decisions_of(record["trace"], record["origin"])
    assert got["tile C loop 2[outer]"] * got["tile C loop 2[inner]"] == 128
    assert got["unroll"] in (0, 16, 64, 512)


def test_block_loops_of_matmul_workload():
    line = (SAMPLES / "metaschedule-matmul-128" / "database_workload.json").open().readline()
    assert block_loops(json.loads(line)[1]) == {"C": ["i", "j", "k"]}
    assert block_loops("not base64 json") == {}


def test_block_loops_when_the_length_header_holds_a_brace():
    """The 8-byte length header before the graph may contain a "{" byte (a graph of
    123 bytes modulo 256): the graph is still read from just after the header."""
    line = (SAMPLES / "metaschedule-matmul-128" / "database_workload.json").open().readline()
    raw = base64.b64decode(json.loads(line)[1])
    graph = raw[raw.index(b"{") :]
    for header in (b"{" + bytes(7), bytes(3) + b"{" + bytes(4)):
        encoded = base64.b64encode(header + graph).decode()
        assert block_loops(encoded) == {"C": ["i", "j", "k"]}
        assert workload_names(encoded) == workload_names(json.loads(line)[1])


def test_autotvm_knobs():
    config = {
        "index": 7,
        "entity": [
            ["tile_y", "sp", [-1, 8, 4]],
            ["tile_k", "sp", [-1, 16]],
            ["unroll_kw", "ot", True],
            ["reorder_0", "re", [0, 2, 1]],
        ],
    }
    got = decisions_of(json.dumps(config), "autotvm")
    assert got == {
        "tile_y[mid]": 8,
        "tile_y[inner]": 4,
        "tile_k[inner]": 16,
        "unroll_kw": 1,
        "reorder_0": "[0, 2, 1]",
    }


def test_real_autotvm_log_line():
    path = REAL_LOGS / "tophub_llvm_v0.04.log"
    if not path.exists():
        pytest.skip("real logs not present")
    line = next(x for x in path.read_text().splitlines() if x.startswith("{"))
    got = decisions_of(json.dumps(json.loads(line)["config"]), "autotvm")
    # entity: tile_ic [1, 3], tile_oc [2, 32], tile_ow [14, 8], unroll_kw false
    assert got == {
        "tile_ic[outer]": 1, "tile_ic[inner]": 3, "tile_oc[outer]": 2, "tile_oc[inner]": 32,
        "tile_ow[outer]": 14, "tile_ow[inner]": 8, "unroll_kw": 0,
    }  # fmt: skip


def test_ansor_steps():
    steps = [
        ["CI", 9],
        ["SP", 2, 0, 64, [1, 2, 16], 1],
        ["CA", 1, 4, 9],
        ["AN", 11, 0, 3],
        ["PR", 4, 0, "auto_unroll_max_step$64"],
        ["FU", 11, [0, 1]],
    ]
    got = decisions_of(json.dumps(steps), "ansor")
    assert got == {
        "compute-at s9": "inline",
        "split s2.i0[mid1]": 1,
        "split s2.i0[mid2]": 2,
        "split s2.i0[inner]": 16,
        "compute-at s1": "s4.i9",
        "parallel s11": "i0",
        "unroll s4": 64,
    }


def test_real_ansor_log_line():
    path = REAL_LOGS / "cutlass-eval_bert_ansor.log"
    if not path.exists():
        pytest.skip("real logs not present")
    first = json.loads(path.open().readline())
    got = decisions_of(json.dumps(first["i"][1][1]), "ansor")
    assert got["split s11.i0[inner]"] == 4
    assert got["blockIdx.x s11"] == "i0" and got["threadIdx.x s11"] == "i1"


@pytest.mark.parametrize(
    ("trace", "origin", "why"),
    [
        (None, "metaschedule", "no trace"),
        ("sample_perfect_tile(l2)", "metaschedule", "not JSON"),
        ('[[["SamplePerfectTile", ["l2"], [2, 64], ["v1", "v2"]]], []]', "metaschedule",
         "instruction 0 (SamplePerfectTile) has no decision"),
        ('{"index": 1}', "autotvm", "no knob list"),
        ('{"steps": 1}', "ansor", "not a list"),
        ("[1, 2]", "halide", "no decoder"),
    ],
)  # fmt: skip
def test_undecodable_trace_names_the_reason(trace, origin, why):
    with pytest.raises(DecisionError, match=re.escape(why)):
        decisions_of(trace, origin)


def test_candidate_table_keeps_the_rest_when_some_traces_fail():
    good = json.dumps({"entity": [["tile_x", "sp", [-1, 4]]]})
    rows = [(1, good, "autotvm", 1e-3), (2, "garbage", "autotvm", 2e-3), (3, good, "autotvm", None)]
    table = candidate_table(rows)
    assert list(table.pos) == [1] and table.failed == 1 and table.undecoded_count == 1
    assert "could not be decoded: the trace is not JSON" in table.undecoded_text()


def synthetic(n: int, decides: bool, seed: int = 3) -> Candidates:
    rng = np.random.default_rng(seed)
    features = pd.DataFrame(
        {
            "tile j[inner]": rng.choice([1, 2, 4, 8, 16], n),
            "tile i[inner]": rng.choice([1, 2, 4, 8, 16], n),
            "unroll": rng.choice([0, 16, 64, 512], n),
            "compute-at pad": rng.choice(["inline", "root", "loop 2"], n),
        }
    )
    latency = np.exp(rng.normal(0.0, 0.3, n)) * 1e-3
    if decides:
        latency = np.where(features["tile j[inner]"] == 16, latency * 0.3, latency)
    return Candidates(features, latency, np.arange(n))


def test_analysis_finds_the_decision_that_decides_latency():
    result = analyze(synthetic(400, decides=True))
    assert result.decides and result.meaningful
    assert result.importances[0].name == "tile j[inner]"
    assert result.importances[0].score > 5 * max(i.score for i in result.importances[1:])
    assert [(f.name, f.value) for f in result.findings] == [("tile j[inner]", 16)]
    assert result.findings[0].fast_share > 0.9 and result.findings[0].overall_share < 0.3
    assert (
        "tile j[inner] = 16 in " in result.summary[0] and "of the fastest 10 %" in result.summary[0]
    )


def test_analysis_says_when_no_decision_decides_latency():
    result = analyze(synthetic(400, decides=False))
    assert not result.decides and not result.findings and not result.meaningful
    assert result.summary[-1].startswith("No decision decides latency here")


def test_analysis_with_too_few_candidates_falls_back_clearly():
    result = analyze(synthetic(12, decides=True))
    assert result.held_out_r2 is None and not result.importances
    assert "no model fitted: 12 candidates" in result.method
    assert result.summary == (
        "Too few measured candidates (12) to say what the fastest 10 % share: "
        "at least 20 are needed.",
    )
