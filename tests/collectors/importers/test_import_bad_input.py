"""Bad input never stops an import: each bad line is counted and named by its line number,
every good line is imported, and a file rejected whole leaves the store as it was.

Files are drawn as good lines of one format with bad lines of every kind mixed in: truncated
lines, bytes that are not UTF-8, JSON of the wrong shape, lines of another format, NaN and
infinite numbers, text that is not valid UTF-8 once decoded (lone surrogates), integers
beyond 64 bits and, for MetaSchedule, records of a workload the database does not have.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.events import RecordEvent
from collectors.importers import LogFormatError, _common, import_file, import_paths
from collectors.memory_store import MemoryStore
from collectors.sqlite_store import SQLiteStore
from tests.collectors.importers.importer_helpers import ANSOR_SMALL, AUTOTVM_SMALL, MS_DB

AUTOTVM = [x for x in AUTOTVM_SMALL.read_text().splitlines() if x.startswith("{")]
ANSOR = ANSOR_SMALL.read_text().splitlines()
MS_RECORDS = (MS_DB / "database_tuning_record.json").read_text().splitlines()
TUNELOOM = [
    RecordEvent(
        source="run-x", seq=i, ts=float(i), job="j", task=f"t{i % 2}", candidate=i,
        run_secs=(1e-3 * (i + 1),), trace=f"[{i}]", origin="metaschedule",
    ).to_json()
    for i in range(6)
]  # fmt: skip
GOOD = {"autotvm": AUTOTVM, "ansor": ANSOR, "metaschedule": MS_RECORDS, "tuneloom": TUNELOOM}
OTHER = {"autotvm": ANSOR, "ansor": AUTOTVM, "metaschedule": AUTOTVM, "tuneloom": ANSOR}

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
_NOISE = st.binary(min_size=1, max_size=40).map(lambda b: b"\xff" + b.translate(None, b"\r\n"))
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _edit(line: str, change: Callable[[Any], None]) -> str:
    obj = json.loads(line)
    change(obj)
    return json.dumps(obj)


def _autotvm_bad(line: str, kind: str) -> str:
    def costs(o: Any) -> None:
        o["result"][0] = [float("nan")]

    def surrogate(o: Any) -> None:
        o["input"][1] = "dense_\ud800"

    def huge(o: Any) -> None:
        o["input"][2][0][1] = [2**70, 4]

    def late(o: Any) -> None:
        o["result"][3] = "@INF@"

    edits = {"nan": costs, "surrogate": surrogate, "huge": huge, "inf": late}
    return _edit(line, edits[kind]).replace('"@INF@"', "1e400")


def _ansor_bad(line: str, kind: str) -> str:
    def costs(o: Any) -> None:
        o["r"][0] = [float("inf")]

    def surrogate(o: Any) -> None:
        o["i"][0][0] = '["\ud800", [1, 2]]'

    def huge(o: Any) -> None:
        o["r"][1] = "@HUGE@"  # error_no must be an int; a string is not

    def late(o: Any) -> None:
        o["r"][3] = "@INF@"

    edits = {"nan": costs, "surrogate": surrogate, "huge": huge, "inf": late}
    return _edit(line, edits[kind]).replace('"@INF@"', "1e400").replace('"@HUGE@"', '"2"')


def _ms_bad(line: str, kind: str) -> str:
    def costs(o: Any) -> None:
        o[1][1] = [float("nan")]

    def unknown_workload(o: Any) -> None:
        o[0] = 99

    def huge(o: Any) -> None:
        o[0] = 2**70

    def not_a_trace(o: Any) -> None:
        o[1][0] = "trace"

    edits = {"nan": costs, "surrogate": unknown_workload, "huge": huge, "inf": not_a_trace}
    return _edit(line, edits[kind])


def _tuneloom_bad(line: str, kind: str) -> str:
    def ts(o: Any) -> None:
        o["ts"] = float("nan")

    def surrogate(o: Any) -> None:
        o["task"] = "t\ud800"

    def huge(o: Any) -> None:
        o["candidate"] = 2**70

    def late(o: Any) -> None:
        o["ts"] = "@INF@"

    edits = {"nan": ts, "surrogate": surrogate, "huge": huge, "inf": late}
    return _edit(line, edits[kind]).replace('"@INF@"', "1e400")


EDITED = {
    "autotvm": _autotvm_bad, "ansor": _ansor_bad, "metaschedule": _ms_bad,
    "tuneloom": _tuneloom_bad,
}  # fmt: skip
KINDS = ("truncated", "noise", "wrong_shape", "other_format", "nan", "inf", "surrogate", "huge")


@st.composite
def mixed_file(draw: st.DrawFn, fmt: str) -> tuple[list[bytes], list[int]]:
    """Lines (bytes, without newline) and the 1-based numbers of the bad ones."""
    good = GOOD[fmt]
    lines: list[bytes] = []
    bad_at: list[int] = []
    seq = 0
    for _ in range(draw(st.integers(1, 14))):
        if draw(st.booleans()):
            line = draw(st.sampled_from(good))
            if fmt == "tuneloom":  # every event needs its own (source, seq)
                line = _edit(line, lambda o, s=seq: o.update(seq=s))
                seq += 1
            lines.append(line.encode())
            continue
        kind = draw(st.sampled_from(KINDS))
        base = draw(st.sampled_from(good))
        if kind == "truncated":
            bad = base[: draw(st.integers(1, len(base) - 1))].encode()
        elif kind == "noise":
            bad = draw(_NOISE)
        elif kind == "wrong_shape":
            bad = json.dumps({"wrong": draw(_JSON)}).encode()
        elif kind == "other_format":
            bad = draw(st.sampled_from(OTHER[fmt])).encode()
        else:
            bad = EDITED[fmt](base, kind).encode()
        lines.append(bad)
        bad_at.append(len(lines))
    return lines, bad_at


def _write(fmt: str, folder: Path, lines: list[bytes]) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    body = b"\n".join(lines) + b"\n"
    if fmt == "metaschedule":
        shutil.copy(MS_DB / "database_workload.json", folder / "database_workload.json")
        (folder / "database_tuning_record.json").write_bytes(body)
        return folder
    path = folder / "log"
    path.write_bytes(body)
    return path


@SETTINGS
@pytest.mark.parametrize("fmt", sorted(GOOD))
@given(data=st.data())
def test_every_bad_line_is_counted_and_every_good_one_imported(
    tmp_path: Path, fmt: str, data: st.DataObject
) -> None:
    lines, bad_at = data.draw(mixed_file(fmt))
    path = _write(fmt, tmp_path / "case", lines)
    store = MemoryStore()
    summary = import_file(path, store, fmt=fmt, use_tvm=False)
    good = len(lines) - len(bad_at)
    details = [(d["line"], d["reason"]) for d in summary.bad_line_details]
    assert summary.bad_lines == len(bad_at), details
    assert [line for line, _ in details] == bad_at[: _common.MAX_BAD_DETAILS]
    assert all(reason for _, reason in details)
    assert summary.records == good
    assert len(store.records()) == good


@pytest.mark.parametrize("fmt", ["autotvm", "ansor", "tuneloom"])
def test_an_enormous_line_is_skipped_without_reading_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.setattr(_common, "MAX_LINE_CHARS", 1000)
    good = GOOD[fmt][0]
    huge = '{"input": "' + "x" * 5000 + '"}'
    path = _write(fmt, tmp_path / "case", [good.encode(), huge.encode(), good.encode()])
    store = MemoryStore()
    summary = import_file(path, store, fmt=fmt)
    assert summary.bad_lines == 1 and summary.records == 2
    assert summary.bad_line_details[0]["line"] == 2
    assert "longer than 1,000 characters" in summary.bad_line_details[0]["reason"]
    # the tuneloom line read twice is one event (the same source and seq)
    assert len(store.records()) == (1 if fmt == "tuneloom" else 2)


def test_a_deeply_nested_line_is_a_bad_line(tmp_path: Path) -> None:
    path = _write("autotvm", tmp_path / "case", [AUTOTVM[0].encode(), b"[" * 100_000])
    summary = import_file(path, MemoryStore(), fmt="autotvm")
    assert (summary.records, summary.bad_lines) == (1, 1)
    assert "nested too deeply" in summary.bad_line_details[0]["reason"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "file is empty"),
        (b"\n\n   \n# only a comment\n", "file is empty"),
        (b"\xff\xfe\x00garbage\n" * 30, "not JSON lines"),
        (b'{"wrong": 1}\n' * 30, "JSON of no known format"),
    ],
    ids=["empty", "blank-and-comments", "not-utf8", "wrong-shape"],
)
def test_a_file_rejected_whole_leaves_the_store_as_it_was(
    tmp_path: Path, content: bytes, match: str
) -> None:
    bad = tmp_path / "bad.log"
    bad.write_bytes(content)
    with SQLiteStore(tmp_path / "store.db") as store:
        import_paths([AUTOTVM_SMALL], store)
        before = store.read()
        with pytest.raises(LogFormatError, match=match):
            import_paths([ANSOR_SMALL, bad], store)
        assert store.read() == before


def test_nan_and_infinite_costs_of_a_real_record_are_bad_lines(tmp_path: Path) -> None:
    record = json.loads(AUTOTVM[0])
    lines = []
    for costs in ("[NaN]", "[Infinity]", "[-Infinity]", "[1e400]", "[1e-3, 1e999]"):
        record["result"][0] = "@C@"
        lines.append(json.dumps(record).replace('"@C@"', costs).encode())
    lines.append(AUTOTVM[0].encode())
    summary = import_file(_write("autotvm", tmp_path / "c", lines), MemoryStore(), fmt="autotvm")
    assert (summary.records, summary.bad_lines) == (1, 5)
    assert [d["line"] for d in summary.bad_line_details] == [1, 2, 3, 4, 5]


def test_costs_whose_sum_overflows_still_have_a_mean(tmp_path: Path) -> None:
    record = json.loads(AUTOTVM[0])
    record["result"][0] = [1.5e308, 1.5e308]
    path = _write("autotvm", tmp_path / "c", [json.dumps(record).encode()])
    with SQLiteStore(tmp_path / "store.db") as store:
        summary = import_file(path, store, fmt="autotvm")
        assert summary.records == 1 and summary.workloads[0].best_mean_cost_s == 1.5e308
        assert store.records()["mean_secs"].tolist() == [1.5e308]
