"""Sizing a candidate's timing repeats: a probe run sizes ``number`` so that each repeat lasts
a little over ``min_repeat_ms`` and runs once."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest

from tuner.metaschedule.run import REPEAT_MARGIN, EvalConfig, repeat_number


def test_repeats_are_sized_a_margin_over_the_minimum_from_one_run() -> None:
    config = EvalConfig(number=3, repeat=3, min_repeat_ms=100)
    assert repeat_number(1e-3, config) == math.ceil(100 * REPEAT_MARGIN)
    assert repeat_number(25e-6, config) == math.ceil(0.1 * REPEAT_MARGIN / 25e-6)
    # a run slower than the minimum: the configured number stands
    assert repeat_number(0.5, config) == 3
    # no minimum, or a probe too short for the timer: nothing to size
    assert repeat_number(1e-3, EvalConfig(number=3, min_repeat_ms=0)) == 3
    assert repeat_number(0.0, config) == 3


class _Recording:
    """A loaded module whose ``time_evaluator`` calls are recorded, then made for real."""

    def __init__(self, rt_mod: Any) -> None:
        self.rt_mod = rt_mod
        self.entry_name = rt_mod.entry_name
        self.calls: list[dict[str, Any]] = []

    def time_evaluator(self, name: str, device: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.rt_mod.time_evaluator(name, device, **kwargs)


@pytest.mark.parametrize("min_repeat_ms", [20, 60])
def test_a_real_kernel_s_repeats_each_last_just_over_the_minimum(
    tmp_path: Any, min_repeat_ms: int
) -> None:
    import tvm
    from tvm.target import Target

    from tuner.metaschedule import run
    from tuner.metaschedule.build import build_and_export
    from tuner.metaschedule.targets import target_config
    from tuner.metaschedule.workloads import workload_module

    n = 64
    path = build_and_export(
        workload_module(f"matmul:{n}"), Target(target_config("llvm", 1)), str(tmp_path)
    )
    device = tvm.runtime.device("cpu", 0)
    fill = tvm.get_global_func("tvm.contrib.random.random_fill_for_measure")
    args = run._allocate(device, [["TENSOR", "float32", [n, n]]] * 3, fill)
    module = _Recording(tvm.runtime.load_module(path))
    config = EvalConfig(number=2, repeat=3, min_repeat_ms=min_repeat_ms)

    secs = run._time(module, device, args, config)

    probe, timed = module.calls
    assert probe["number"] == 1 and probe["repeat"] == 1
    assert probe["min_repeat_ms"] == math.ceil(min_repeat_ms * run.PROBE_SHARE)
    assert timed["repeat"] == 3 and timed["min_repeat_ms"] == min_repeat_ms
    assert len(secs) == 3
    # sized from the kernel's own time: one repeat of ``number`` runs lasts about the
    # minimum times the margin (not TVM's own growth from number=2)
    repeat_ms = timed["number"] * statistics.median(secs) * 1e3
    assert min_repeat_ms * 0.9 <= repeat_ms <= min_repeat_ms * REPEAT_MARGIN * 1.5
