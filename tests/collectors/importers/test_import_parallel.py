"""Worker processes parse a big log in chunks: the events and bad lines are exactly those of
reading it in one process, whatever the chunks and whether a worker fails."""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collectors.importers import import_file, parallel
from collectors.memory_store import MemoryStore
from tests.collectors.importers.importer_helpers import ANSOR_SMALL, AUTOTVM_SMALL, MS_DB


def _mixed_log(path: Path, source: Path, repeat: int) -> Path:
    """The fixture's lines repeated with new timestamps, and lines of every awkward kind."""
    lines = [x for x in source.read_text().splitlines() if x.startswith("{")]
    out: list[bytes] = [b"# a comment line", b""]
    for r in range(repeat):
        for i, line in enumerate(lines):
            obj = json.loads(line)
            result = obj["result"] if "result" in obj else obj["r"]
            result[3] += 100 * r
            if (r + i) % 5 == 0:  # costs that are not all floats: valid, or not at all
                result[0] = [1, 2] if r % 2 else ["fast"]
                result[1] = 0
            text = json.dumps(obj).encode()
            if (r + i) % 7 == 0:
                text = text[: len(text) // 2]  # truncated
            if (r + i) % 11 == 0:
                text = b"\xff\xfe not utf-8 " + text
            out.append(text)
        out.append(b"   ")
    path.write_bytes(b"\n".join(out).replace(b"\n", b"\r\n", 3) + b"\n")
    return path


# an import's events as JSON, its bad line details and its count of bad lines
_Imported = tuple[list[str], list[dict[str, object]], int]


def _import(path: Path, workers: int, **options: bool) -> _Imported:
    store = MemoryStore()
    summary = import_file(path, store, workers=workers, **options)  # type: ignore[arg-type]
    return [s.event.to_json() for s in store.read()], summary.bad_line_details, summary.bad_lines


def _in_chunks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: Path = ANSOR_SMALL,
    repeat: int = 60,
    chunk_bytes: int = 3000,
) -> tuple[Path, _Imported]:
    """``_mixed_log`` of ``source`` cut into chunks of ``chunk_bytes`` (many chunks, cut at
    every position), and its one-process import."""
    path = _mixed_log(tmp_path / "big.log", source, repeat)
    monkeypatch.setattr(parallel, "CHUNK_BYTES", chunk_bytes)
    return path, _import(path, workers=0)


@pytest.mark.parametrize("source", [AUTOTVM_SMALL, ANSOR_SMALL], ids=["autotvm", "ansor"])
def test_workers_give_exactly_the_one_process_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path
) -> None:
    path, alone = _in_chunks(tmp_path, monkeypatch, source)
    assert len(list(parallel.chunk_bounds(path, parallel.CHUNK_BYTES))) > 20
    assert alone[2] > 20  # the file has bad lines of several kinds

    def not_here(*args: object) -> None:
        raise AssertionError("a chunk was parsed in this process, not by a worker")

    monkeypatch.setattr(parallel, "parse_chunk", not_here)
    monkeypatch.setattr(parallel, "PARSE_WHILE_STARTING", False)
    monkeypatch.setattr(parallel, "PARSE_WHILE_WAITING", False)
    assert _import(path, workers=2) == alone


def _parsed_here(
    monkeypatch: pytest.MonkeyPatch, then: Callable[[int], None] | None = None
) -> list[int]:
    """The starts of the chunks this process parses from now on; ``then(count)`` runs after
    each is noted."""
    here: list[int] = []
    parse = parallel.parse_chunk

    def counted(name: str, start: int, end: int, fmt: str) -> parallel.Chunk:
        here.append(start)
        if then is not None:
            then(len(here))
        return parse(name, start, end, fmt)

    monkeypatch.setattr(parallel, "parse_chunk", counted)
    return here


def test_this_process_parses_while_the_workers_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, alone = _in_chunks(tmp_path, monkeypatch)
    go, up = tmp_path / "go", tmp_path / "up"

    def start_the_worker(count: int) -> None:
        if count == 3:  # let the worker start now, and wait until it has
            go.touch()
            deadline = time.monotonic() + 60
            while not up.exists() and time.monotonic() < deadline:
                time.sleep(0.01)

    here = _parsed_here(monkeypatch, start_the_worker)
    monkeypatch.setattr(parallel, "PARSE_WHILE_WAITING", False)
    # A worker that starts only when told: this process reads the first chunks meanwhile.
    slow = (
        f"import os, pathlib, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
        f"from collectors.importers.parallel import serve\npathlib.Path({str(up)!r}).touch()\n"
        "serve()"
    )
    monkeypatch.setattr(parallel, "WORKER_COMMAND", [sys.executable, "-c", slow])
    chunks = list(parallel.chunk_bounds(path, parallel.CHUNK_BYTES))
    assert _import(path, workers=1) == alone
    assert here == [start for start, _ in chunks[: len(here)]]  # the first ones, in order
    assert 0 < len(here) < len(chunks)  # the rest was parsed by the worker


def test_this_process_parses_ahead_while_its_worker_is_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, alone = _in_chunks(tmp_path, monkeypatch)
    here = _parsed_here(monkeypatch)
    monkeypatch.setattr(parallel, "PARSE_WHILE_STARTING", False)
    slow = (  # a worker taking 50 ms a chunk
        "import time\nfrom collectors.importers import parallel\n"
        "parse = parallel.parse_chunk\n"
        "parallel.parse_chunk = lambda *a: (time.sleep(0.05), parse(*a))[1]\n"
        "parallel.serve()"
    )
    monkeypatch.setattr(parallel, "WORKER_COMMAND", [sys.executable, "-c", slow])
    chunks = [start for start, _ in parallel.chunk_bounds(path, parallel.CHUNK_BYTES)]
    assert _import(path, workers=1) == alone
    assert here and chunks[0] not in here  # chunks parsed here while the worker was busy
    assert len(here) < len(chunks)  # and the worker parsed the others
    assert here == sorted(here)


def test_chunks_cover_the_file_in_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "lines"
    path.write_bytes(b"".join(b"x" * (i % 13) + b"\n" for i in range(500)) + b"tail")
    bounds = list(parallel.chunk_bounds(path, 64))
    data = path.read_bytes()
    assert bounds[0][0] == 0 and bounds[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert all(data[end - 1 : end] == b"\n" for _, end in bounds[:-1])


def test_a_failing_worker_leaves_the_work_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, alone = _in_chunks(tmp_path, monkeypatch, AUTOTVM_SMALL, 30, 2000)
    monkeypatch.setattr(parallel, "WORKER_COMMAND", [sys.executable, "-c", "import sys"])
    assert _import(path, workers=2) == alone


def test_without_a_folder_for_answers_this_process_reads_it_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, alone = _in_chunks(tmp_path, monkeypatch, repeat=30)

    def no_folder(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", "/tmp")

    monkeypatch.setattr(parallel.tempfile, "TemporaryDirectory", no_folder)
    started: list[object] = []
    monkeypatch.setattr(parallel, "_Worker", lambda *args: started.append(args))
    assert _import(path, workers=2) == alone
    assert started == []  # no worker was started


def test_small_files_and_explicit_choices(tmp_path: Path) -> None:
    assert parallel.worker_count(AUTOTVM_SMALL, None) == 0  # too small to pay for workers
    assert parallel.worker_count(AUTOTVM_SMALL, 2) == 2
    assert parallel.worker_count(AUTOTVM_SMALL, -1) == 0
    assert parallel.worker_count(tmp_path / "missing", None) == 0


def _mixed_database(folder: Path, repeat: int) -> Path:
    """The fixture database's records repeated, with lines of every awkward kind: ones
    naming a missing workload, in another layout, not UTF-8, malformed, truncated at the
    end of the file."""
    folder.mkdir()
    (folder / "database_workload.json").write_bytes((MS_DB / "database_workload.json").read_bytes())
    lines = (MS_DB / "database_tuning_record.json").read_text().splitlines()
    out: list[bytes] = [b"# a comment line"]
    for r in range(repeat):
        for i, line in enumerate(lines):
            text = line.encode()
            if (r + i) % 7 == 0:
                text = text.replace(b"[", b"[ ", 2)  # another layout
            if (r + i) % 11 == 0:
                text = b"[7" + text[2:]  # a workload index without a workload line
            if (r + i) % 13 == 0:
                text = text[: len(text) // 2]  # malformed
            if (r + i) % 17 == 0:
                text = b"\xff" + text
            out.append(text)
    out.append(lines[0].encode()[:-40])  # truncated last line, without a line end
    (folder / "database_tuning_record.json").write_bytes(b"\n".join(out))
    return folder


def test_workers_read_a_metaschedule_database_as_one_process_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _mixed_database(tmp_path / "db", 12)
    monkeypatch.setattr(parallel, "CHUNK_BYTES", 5000)
    record_file = folder / "database_tuning_record.json"
    assert len(list(parallel.chunk_bounds(record_file, parallel.CHUNK_BYTES))) > 20
    alone = _import(folder, workers=0, use_tvm=False)
    assert 10 < alone[2] < 50  # bad lines of several kinds, each one's reason kept
    assert alone[1][-1]["line"] == 12 * 6 + 2  # the truncated last line among them

    def not_here(*args: object) -> None:
        raise AssertionError("a chunk was parsed in this process, not by a worker")

    monkeypatch.setattr(parallel, "parse_chunk", not_here)
    monkeypatch.setattr(parallel, "PARSE_WHILE_STARTING", False)
    monkeypatch.setattr(parallel, "PARSE_WHILE_WAITING", False)
    assert _import(folder, workers=2, use_tvm=False) == alone


def test_a_big_metaschedule_record_file_gets_workers_unasked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _mixed_database(tmp_path / "db", 12)
    alone = _import(folder, workers=0, use_tvm=False)
    # A machine where a record file this big gets a worker by default.
    monkeypatch.setattr(parallel, "worker_count", lambda path, asked: 1 if asked is None else asked)
    started: list[int] = []
    read_lines = parallel.read_lines

    def counted(path: Path, fmt: str, workers: int, on_bad: Any) -> Any:
        started.append(workers)
        return read_lines(path, fmt, workers, on_bad)

    monkeypatch.setattr(parallel, "read_lines", counted)
    assert _import(folder, workers=None, use_tvm=False) == alone
    assert started == [1]
