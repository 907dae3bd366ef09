"""Synthetic logs (``data/synthetic_logs``, made-up values) with the format features of real
AutoTVM and Ansor logs whose excerpts stay outside the repository (see
``test_import_more_real_logs.py``): old log layouts and conv2d arguments, several targets in
one log, target text written in other ways, error codes, Ansor "v0.5" task inputs.

Expected values are computed from the lines themselves, read here with ``json`` alone: costs,
timestamps, error numbers, targets, and FLOPs from each template's documented arguments.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from collectors.importers import import_paths
from collectors.sqlite_store import SQLiteStore
from tests.collectors.importers.importer_helpers import (
    DATA,
    jobs,
    read_events,
    records,
    stages,
    tasks,
)

SYNTHETIC = DATA / "synthetic_logs"

# AutoTVM ``MeasureErrorNo`` (and Ansor's ``MeasureErrorNO``): name and error class.
MEASURE_ERRORS = {
    1: ("INSTANTIATION_ERROR", "build"),
    2: ("COMPILE_HOST", "build"),
    4: ("RUNTIME_DEVICE", "run"),
    6: ("BUILD_TIMEOUT", "timeout"),
}


def _lines(path: Path) -> list[dict[str, Any]]:
    """The log's records, decoded (``#`` comments and blank lines skipped)."""
    text = path.read_text().splitlines()
    return [json.loads(x) for x in text if x.strip() and not x.lstrip().startswith("#")]


def _autotvm(line: dict[str, Any]) -> tuple[str, str, list[Any], list[Any]]:
    """(target, task name, args, result) of an AutoTVM v0.1 or v0.2 line."""
    inp, result = (line["input"], line["result"]) if "input" in line else (line["i"], line["r"])
    return inp[0], inp[1], inp[2], result


def _shape(arg: list[Any]) -> list[int]:
    assert arg[0] == "TENSOR"
    return arg[1]


def _task_name(name: str, args: list[Any]) -> str:
    shapes = [_shape(a) for a in args if isinstance(a, list) and a and a[0] == "TENSOR"]
    return f"{name}({', '.join('x'.join(map(str, s)) for s in shapes)})"


def _conv2d_flops(
    data: list[int],
    kernel: list[int],
    strides: list[int],
    pad: tuple[int, int],
    dilation: list[int],
) -> float:
    """2 * N * K * OH * OW * C * KH * KW of an NCHW convolution; ``pad`` is the total
    padding (height, width)."""
    n, c, h, w = data
    k, _, kh, kw = kernel
    oh = (h + pad[0] - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    ow = (w + pad[1] - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    return float(2 * math.prod((n, k, oh, ow, c, kh, kw)))


def _flops(name: str, args: list[Any]) -> float:
    """FLOPs of a task, from its arguments as each template lays them out."""
    if name == "topi_x86_conv2d_NCHWc":
        # TVM 0.5-0.6: data, kernel, in_channel, kernel_size, strides, padding, layout,
        # out_layout, dtype; padding [h, w] on each side
        data, kernel, _, _, strides, padding = args[:6]
        return _conv2d_flops(
            _shape(data), _shape(kernel), strides, (2 * padding[0], 2 * padding[1]), [1, 1]
        )
    if name == "topi_nn_conv2d" and len(args) == 6:
        # TVM 0.4: data, kernel, strides, padding, layout, dtype (no dilation)
        data, kernel, strides, padding = args[:4]
        return _conv2d_flops(
            _shape(data), _shape(kernel), strides, (2 * padding[0], 2 * padding[1]), [1, 1]
        )
    if name == "topi_nn_conv2d" and len(args) == 7:
        # TVM 0.5: data, kernel, strides, padding, dilation, layout, dtype
        data, kernel, strides, padding, dilation = args[:5]
        return _conv2d_flops(
            _shape(data), _shape(kernel), strides, (2 * padding[0], 2 * padding[1]), dilation
        )
    if name == "conv2d_NCHWc.x86":
        # TVM 0.7+: data, kernel, strides, padding [top, left, bottom, right], dilation, ...
        data, kernel, strides, padding, dilation = args[:5]
        pad = (padding[0] + padding[2], padding[1] + padding[3])
        return _conv2d_flops(_shape(data), _shape(kernel), strides, pad, dilation)
    if name.removeprefix("topi_nn_").startswith("dense"):
        (m, k), (n, _) = _shape(args[0]), _shape(args[1])
        return float(2 * m * n * k)
    raise AssertionError(f"no FLOPs formula for {name}")


def _unique(items: list[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def _same_target(target: str) -> str:
    """The target's kind, then its options sorted."""
    kind, *options = target.split()
    return " ".join([kind, *sorted(options)])


def test_autotvm_v01_x86_nchwc_conv2d_flops() -> None:
    """TVM 0.5-0.6 x86 NCHWc arguments put a channel count and the kernel size before the
    strides and padding: the FLOPs are those of the convolution they describe."""
    path = SYNTHETIC / "autotvm_v01_x86_nchwc.log"
    lines = _lines(path)
    parts = [_autotvm(x) for x in lines]
    assert all(x["v"] == 0.1 and "i" in x and "r" in x for x in lines)
    assert {name for _, name, _, _ in parts} == {"topi_x86_conv2d_NCHWc"}
    events, ctx = read_events(path)
    assert ctx.bad_lines == 0
    found = tasks(events)
    assert [t.task for t in found] == [_task_name(name, args) for _, name, args, _ in parts]
    assert [t.flops for t in found] == [_flops(name, args) for _, name, args, _ in parts]
    recs = records(events)
    assert [r.run_secs for r in recs] == [tuple(result[0]) for *_, result in parts]
    assert [r.ts for r in recs] == [result[3] for *_, result in parts]
    assert [json.loads(r.trace or "") for r in recs] == [x["i"][5] for x in lines]
    (target,) = _unique([target for target, *_ in parts])
    assert {j.target for j in jobs(events)} == {target}


def test_autotvm_v01_two_targets_are_two_jobs(tmp_path: Path) -> None:
    """One workload tuned for two devices (TVM 0.4 conv2d arguments, no dilation): one job
    per target, each with its own tasks, latencies and device."""
    path = SYNTHETIC / "autotvm_v01_two_targets.log"
    parts = [_autotvm(x) for x in _lines(path)]
    targets = _unique([target for target, *_ in parts])
    assert len(targets) == 2
    events, ctx = read_events(path)
    assert ctx.bad_lines == 0
    finished = [j for j in jobs(events) if j.change == "finished"]
    assert [(j.target, j.trials) for j in finished] == [
        (t, sum(target == t for target, *_ in parts)) for t in targets
    ]
    first, second = (j.job for j in finished)
    assert (first, second) == (ctx.job, f"{ctx.job}-t2")
    job_of = dict(zip(targets, (first, second), strict=True))
    assert [j.name for j in finished] == [f"{path.name} [{t}]" for t in targets]
    # every record in its target's job, with the costs the line gives
    assert [(r.job, r.run_secs) for r in records(events)] == [
        (job_of[target], tuple(result[0])) for target, *_, result in parts
    ]
    want_tasks = _unique(
        [
            (job_of[target], _task_name(name, args), _flops(name, args))
            for target, name, args, _ in parts
        ]
    )
    assert [(t.job, t.task, t.flops) for t in tasks(events)] == want_tasks
    fingerprint = ctx.source.rsplit(":", 1)[-1][:6]
    assert {s.job: s.resource for s in stages(events)} == {
        first: f"device:imported:{fingerprint}:0",
        second: f"device:imported:{fingerprint}:1",
    }
    best: dict[str, float] = {}
    counts: dict[str, int] = {}
    for target, name, args, result in parts:
        key = f"{job_of[target]}/{_task_name(name, args)}"
        best[key] = min(best.get(key, math.inf), sum(result[0]) / len(result[0]))
        counts[key] = counts.get(key, 0) + 1
    with SQLiteStore(tmp_path / "store.db") as store:
        (summary,) = import_paths([path], store)
        assert summary.jobs == [first, second]
        assert sorted((w.key, w.records, w.best_mean_cost_s) for w in summary.workloads) == sorted(
            (key, counts[key], best[key]) for key in best
        )
        assert list(store.jobs()["target"]) == targets
        per_job = store.records().groupby("job").size()
        assert dict(per_job) == {j.job: j.trials for j in finished}


def test_autotvm_v01_target_options_in_two_orders_are_one_job() -> None:
    path = SYNTHETIC / "autotvm_v01_reordered_target.log"
    parts = [_autotvm(x) for x in _lines(path)]
    written = _unique([target for target, *_ in parts])
    assert len(written) == 2 and len({_same_target(t) for t in written}) == 1
    events, ctx = read_events(path)
    assert ctx.bad_lines == 0
    assert {j.job for j in jobs(events)} == {ctx.job}
    finished = jobs(events)[-1]
    assert (finished.target, finished.name, finished.trials) == (written[0], path.name, len(parts))
    assert [r.run_secs for r in records(events)] == [tuple(result[0]) for *_, result in parts]
    found = tasks(events)
    assert [t.task for t in found] == _unique(
        [_task_name(name, args) for _, name, args, _ in parts]
    )
    # TVM 0.5 conv2d arguments, dilation included, and the old ``topi_nn_dense`` name
    assert [(t.task, t.flops) for t in found] == _unique(
        [(_task_name(name, args), _flops(name, args)) for _, name, args, _ in parts]
    )


def test_autotvm_v02_trailing_space_target_and_three_costs() -> None:
    path = SYNTHETIC / "autotvm_v02_spaced_target.log"
    lines = _lines(path)
    parts = [_autotvm(x) for x in lines]
    (written,) = _unique([target for target, *_ in parts])
    assert written.endswith(" ")
    assert all(len(result[0]) == 3 for *_, result in parts)
    events, ctx = read_events(path)
    assert ctx.bad_lines == 0
    assert {j.target for j in jobs(events)} == {" ".join(written.split())}
    assert [r.run_secs for r in records(events)] == [tuple(result[0]) for *_, result in parts]
    assert [json.loads(r.trace or "") for r in records(events)] == [x["config"] for x in lines]
    assert [(t.task, t.flops) for t in tasks(events)] == _unique(
        [(_task_name(name, args), _flops(name, args)) for _, name, args, _ in parts]
    )


def test_autotvm_v02_error_codes() -> None:
    """Errors 1, 2, 4 and 6 keep their AutoTVM name and class; their costs are not run
    times."""
    path = SYNTHETIC / "autotvm_v02_error_codes.log"
    parts = [_autotvm(x) for x in _lines(path)]
    errors = [result[1] for *_, result in parts]
    assert set(errors) - {0} == set(MEASURE_ERRORS)
    events, ctx = read_events(path)
    assert ctx.bad_lines == 0
    want = []
    for *_, (costs, error_no, _, ts) in parts:
        if error_no == 0:
            want.append((None, None, tuple(costs), ts))
        else:
            want.append((*MEASURE_ERRORS[error_no], None, ts))
    assert [(r.error, r.error_class, r.run_secs, r.ts) for r in records(events)] == want
    assert [(t.task, t.op, t.flops) for t in tasks(events)] == _unique(
        [(_task_name(name, args), name, _flops(name, args)) for _, name, args, _ in parts]
    )


def test_ansor_log_v05_five_item_task_input() -> None:
    """Ansor "v0.5" task inputs have five items (v0.6 adds a trailing list)."""
    path = SYNTHETIC / "ansor_v05_task_input.json"
    lines = _lines(path)
    assert all(x["v"] == "v0.5" and len(x["i"][0]) == 5 for x in lines)
    (key,) = _unique([x["i"][0][0] for x in lines])
    (target,) = _unique([x["i"][0][1] for x in lines])
    (dag_hash,) = json.loads(key)
    events, ctx = read_events(path)
    assert ctx.bad_lines == 0
    (task,) = tasks(events)
    assert (task.op, task.task) == ("compute_dag", f"{dag_hash[:8]}()")
    want = []
    for x in lines:
        costs, error_no, _, ts = x["r"]
        if error_no == 0:
            want.append((None, tuple(costs), ts))
        else:
            want.append((MEASURE_ERRORS[error_no][0], None, ts))
    assert [(r.error, r.run_secs, r.ts) for r in records(events)] == want
    assert [json.loads(r.trace or "") for r in records(events)] == [x["i"][1][1] for x in lines]
    assert {j.target for j in jobs(events)} == {target}


def test_synthetic_logs_are_described() -> None:
    readme = (SYNTHETIC / "README.md").read_text()
    assert "made up" in readme
    for path in sorted(SYNTHETIC.iterdir()):
        if path.name != "README.md":
            assert f"`{path.name}`" in readme, path.name
