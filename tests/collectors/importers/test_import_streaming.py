"""Importers stream: peak memory does not grow with the number of lines in a file."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from collectors.events import RecordEvent
from collectors.importers import detect, iter_events
from collectors.importers.driver import context_for
from tests.collectors.importers.importer_helpers import ANSOR_SMALL, AUTOTVM_SMALL, MS_DB

SMALL, LARGE = 300, 3000


def _autotvm(path: Path, n: int) -> Path:
    lines = [json.loads(x) for x in AUTOTVM_SMALL.read_text().splitlines() if x.startswith("{")]
    with open(path, "w") as out:
        for i in range(n):
            line = lines[i % len(lines)]
            line["result"][3] = 1000.0 + i  # one batch after another
            out.write(json.dumps(line) + "\n")
    return path


def _ansor(path: Path, n: int) -> Path:
    lines = [json.loads(x) for x in ANSOR_SMALL.read_text().splitlines()]
    with open(path, "w") as out:
        for i in range(n):
            line = lines[i % len(lines)]
            line["r"][3] = 2000 + i
            out.write(json.dumps(line) + "\n")
    return path


def _metaschedule(path: Path, n: int) -> Path:
    path.mkdir()
    shutil.copy(MS_DB / "database_workload.json", path / "database_workload.json")
    lines = (MS_DB / "database_tuning_record.json").read_text().splitlines()
    with open(path / "database_tuning_record.json", "w") as out:
        for i in range(n):
            out.write(lines[i % len(lines)] + "\n")
    return path


def _tuneloom(path: Path, n: int) -> Path:
    with open(path, "w") as out:
        for i in range(n):
            event = RecordEvent(
                source="s", seq=i, ts=float(i), job="j", task=f"t{i % 3}", candidate=i,
                run_secs=(1e-3,), trace="split(stage=1)",
            )  # fmt: skip
            out.write(event.to_json() + "\n")
    return path


def _peak(path: Path) -> tuple[int, int]:
    found = detect(path)
    ctx = context_for(found, use_tvm=False)
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_events(found, ctx))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, peak


@pytest.mark.parametrize("write", [_autotvm, _ansor, _metaschedule, _tuneloom])
def test_peak_memory_is_flat_in_file_size(
    tmp_path: Path, write: Callable[[Path, int], Path]
) -> None:
    small_count, small_peak = _peak(write(tmp_path / "small", SMALL))
    large_count, large_peak = _peak(write(tmp_path / "large", LARGE))
    assert large_count > 9 * small_count  # all events of the larger file came through
    # ten times the lines, well under twice the memory (a list of events would be ~10x)
    assert large_peak < 2 * small_peak + 64 * 1024, (small_peak, large_peak)
