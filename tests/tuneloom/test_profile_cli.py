"""A model job stores its fused graph and untuned and tuned per-kernel profiles; `explain`
reads them back; `evaluate --profile` prints the per-kernel tables and appends profiles to
the model's job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from collectors.modelgraph import ModelGraph
from collectors.stores import open_store

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--trials-per-task", "4", "--batch", "4", "--population", "32", "--no-library"]


def tuneloom(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuneloom", *argv],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )  # fmt: skip


@pytest.mark.slow
def test_a_model_job_stores_graph_and_profiles_and_evaluate_adds_more(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    done = tuneloom("tune", "zoo:mlp", *SMALL, "--db", str(db), "--runs-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    store = open_store(str(db), read_only=True)
    (job,) = store.jobs()["job"]
    graph_event = store.graph(job)
    assert graph_event is not None and len(store.read(kinds=["graph"], job=job)) == 1
    graph = ModelGraph.from_json(graph_event.graph)
    assert [n.layers for n in graph.nodes] == [("fc1",), ("fc2",), ("logits",)]
    profiles = store.profiles(job)
    assert [p.variant for p in profiles] == ["untuned", "tuned"]
    task_names = set(store.tasks(job=job)["task"])
    for profile in profiles:
        kernels = dict(zip(profile.kernels, profile.tasks, strict=True))
        assert {n.kernel for n in graph.nodes} <= set(kernels)
        assert {kernels[n.kernel] for n in graph.nodes} <= task_names
        assert profile.end_to_end_secs > 0 and profile.kernel_sum_secs > 0
    assert profiles[1].end_to_end_secs < profiles[0].end_to_end_secs  # tuning helped
    stages = [s.event for s in store.read(kinds=["stage"], job=job)]
    runs = [(e.iteration, e.stage, e.resource.split(":")[0]) for e in stages
            if e.task == "model profile"]  # fmt: skip
    # The build runs on a client core or on the idle device lent to it; profiles on the device.
    assert [run[:2] for run in runs] == [(0, "build"), (0, "profile"), (1, "profile")]
    assert [run[2] for run in runs[1:]] == ["device", "device"]
    trials = store.records(job=job).groupby("task").size().to_dict()
    store.close()

    # explain reads what the job stored: the tuned profile's kernels with their layers.
    explained = tuneloom("explain", "zoo:mlp", "--db", str(db), "--json")
    assert explained.returncode == 0, explained.stderr[-3000:]
    report = json.loads(explained.stdout)
    assert report["end_to_end_ms"] == pytest.approx(profiles[1].end_to_end_secs * 1e3)
    by_name = {k["name"]: k for k in report["kernels"]}
    for node in graph.nodes:
        assert by_name[node.kernel]["layers"] == list(node.layers)
        assert by_name[node.kernel]["task"] == node.task
    # The heavy tasks (those of the kernels holding most of the time), heaviest first.
    heaviest = max(report["kernels"], key=lambda k: k["ms"] if k["task"] else -1)
    assert report["tasks"][0]["task"] == heaviest["task"]
    assert all(t["trials"] == trials[t["task"]] for t in report["tasks"])

    evaluated = tuneloom(
        "evaluate", "zoo:mlp", "--db", str(db), "--profile", "--baseline", "none",
        "--repeat", "3", "--json",
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    result = json.loads(evaluated.stdout)
    assert set(result["profiles"]) == {"untuned", "tuned"}
    rows = result["profiles"]["tuned"]["kernels"]
    assert {"fused_matmul_add_relu", "vm.builtin.alloc_storage"} <= {r["name"] for r in rows}
    assert all(set(r) >= {"name", "task", "calls", "ms", "share"} for r in rows)
    assert result["profiles_stored"]["job"] == job
    store = open_store(str(db), read_only=True)
    assert [p.variant for p in store.profiles(job)] == ["untuned", "tuned", "untuned", "tuned"]
    store.close()

    text = tuneloom("evaluate", "zoo:mlp", "--profile", "--baseline", "none", "--repeat", "3")
    assert text.returncode == 0, text.stderr[-3000:]
    assert "per-kernel profile, TVM untuned" in text.stdout and "sum of kernels" in text.stdout

    other = tuneloom("evaluate", "zoo:cnn", "--db", str(db), "--profile", "--baseline", "none")
    assert other.returncode != 0
    lines = [line for line in other.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "holds no job of model zoo:cnn" in lines[0]
