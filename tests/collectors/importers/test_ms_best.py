"""The best record per (workload, target) of MetaSchedule JSON databases, read as plain JSON:
targets kept apart, failures never winning, untuned records left out on request, bad lines
reported with their line numbers, records read back by offset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from collectors.importers.ms_best import best_records, record_at
from collectors.importers.ms_targets import target_key

ROOT = Path(__file__).resolve().parents[3]
ZEN = {"kind": "llvm", "mcpu": "znver5", "num-cores": 4, "keys": ["cpu"], "tag": ""}
LAKE = {"kind": "llvm", "mcpu": "cascadelake", "num-cores": 4, "keys": ["cpu"], "tag": ""}
TUNED = [[["GetSBlock", [], ["C", "main"], ["b0"]]], []]
UNTUNED = [[], []]  # no instruction: the workload as it is


def record(index: int, secs: list[float], target: Any, trace: Any = TUNED) -> list[Any]:
    return [index, [trace, secs, target, []]]


def write(path: Path, lines: list[Any]) -> Path:
    text = "".join(x if isinstance(x, str) else json.dumps(x) + "\n" for x in lines)
    path.write_text(text)
    return path


def scan(path: Path, workloads: list[Any], **options: bool):  # type: ignore[no-untyped-def]
    bad: list[tuple[int, str]] = []
    found = best_records([(path, workloads)], lambda _, n, why: bad.append((n, why)), **options)
    return found, bad


def test_each_target_keeps_its_own_best_record(tmp_path: Path) -> None:
    path = write(
        tmp_path / "records.json",
        [
            record(0, [4e-6], ZEN),
            record(0, [1e10], LAKE),  # failed: the 1e10 s marker
            record(0, [2e-6, 4e-6], ZEN),  # mean 3e-6: best for znver5
            record(0, [9e-6], LAKE),  # best for cascadelake, slower than both znver5 ones
            record(0, [5e-6], dict(ZEN, **{"num-cores": 8})),  # another core count: same code
            record(1, [1e10], ZEN),  # workload 1 only ever failed
            record(1, [1e10, 1e10], LAKE),
        ],
    )
    found, bad = scan(path, ["w0", "w1"])
    assert bad == []
    assert sorted(found.best) == sorted([("w0", target_key(ZEN)), ("w0", target_key(LAKE))])
    zen, lake = found.best["w0", target_key(ZEN)], found.best["w0", target_key(LAKE)]
    assert (zen.line, zen.mean_s, zen.trials) == (3, pytest.approx(3e-6), 3)
    assert (lake.line, lake.mean_s, lake.trials) == (4, 9e-6, 1)
    assert record_at(path, zen.offset) == record(0, [2e-6, 4e-6], ZEN)
    assert record_at(path, lake.offset) == record(0, [9e-6], LAKE)
    assert (found.records_read, found.valid_records) == (7, 4)
    assert [r.target for r in found.by_workload()["w0"]] == [target_key(ZEN), target_key(LAKE)]


def test_the_untuned_record_wins_only_when_untuned_records_count(tmp_path: Path) -> None:
    path = write(
        tmp_path / "records.json",
        [record(0, [5e-6], ZEN), record(0, [1e-6], ZEN, UNTUNED), record(0, [3e-6], ZEN)],
    )
    key = ("w", target_key(ZEN))
    everything, _ = scan(path, ["w"])
    tuned, _ = scan(path, ["w"], tuned_only=True)
    assert (everything.best[key].line, everything.best[key].trials) == (2, 3)
    assert (tuned.best[key].line, tuned.best[key].trials) == (3, 2)
    assert (everything.valid_records, tuned.valid_records) == (3, 2)


def test_workloads_named_alike_in_two_files_compete(tmp_path: Path) -> None:
    first = write(tmp_path / "a.json", [record(0, [4e-6], ZEN)])
    second = write(tmp_path / "b.json", ["\n", "# a comment\n", record(1, [2e-6], ZEN)])
    found = best_records([(first, ["w"]), (second, ["other", "w"])], lambda *_: None)
    (best,) = found.best.values()
    assert (best.source, best.line, best.trials) == (1, 3, 2)
    assert record_at(second, best.offset) == record(1, [2e-6], ZEN)


def test_bad_lines_are_reported_with_their_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "records.json",
        [
            "{not json\n",
            ["a", "list"],
            [0, [[["no kind first"]], [1e-6], ZEN]],
            [0, [TUNED, [1e-6]]],
            record(0, [1e-6], {"no": "kind"}),
            record(5, [1e-6], ZEN),
            record(1, [1e-6], ZEN),  # workload 1's line could not be read
            record(0, [7e-6], ZEN),
        ],
    )
    found, bad = scan(path, ["w0", None])
    assert [n for n, _ in bad] == [1, 2, 3, 4, 5, 6, 7]
    reasons = [why for _, why in bad]
    assert reasons[0] == "not JSON"
    assert reasons[2] == "trace is not [instructions, decisions]"
    assert reasons[3] == reasons[4] == "no target in the record"
    assert reasons[5] == "workload index 5 has no workload line"
    assert reasons[6] == "workload index 1 has no readable workload line"
    assert [(k, r.line) for k, r in found.best.items()] == [(("w0", target_key(ZEN)), 8)]


def test_a_raising_handler_stops_the_scan(tmp_path: Path) -> None:
    path = write(tmp_path / "records.json", [record(0, [1e-6], ZEN), "{oops\n"])

    def refuse(_: Path, line: int, why: str) -> None:
        raise ValueError(f"line {line}: {why}")

    with pytest.raises(ValueError, match="line 2: not JSON"):
        best_records([(path, ["w"])], refuse)


def test_the_plain_modules_import_no_tvm() -> None:
    code = (
        "import sys\n"
        "import collectors.importers.ms_best, collectors.importers.ms_targets\n"
        "import collectors.exporters.best_db\n"
        "assert 'tvm' not in sys.modules, 'tvm was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
