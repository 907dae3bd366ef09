"""`tuneloom import` and `tuneloom export`: summaries, idempotency, clear errors, round trips."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from collectors.sqlite_store import SQLiteStore
from tests.collectors.importers.importer_helpers import ANSOR_SMALL, AUTOTVM_SMALL, MS_DB
from tuneloom.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def _count(db: Path) -> int:
    with SQLiteStore(db, read_only=True) as store:
        return store.last_pos()


def test_import_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    result = _json(
        capsys, "import", str(AUTOTVM_SMALL), str(ANSOR_SMALL), str(MS_DB), "--db", str(db),
        "--no-tvm",
    )  # fmt: skip
    files = result["files"]
    assert [f["format"] for f in files] == ["autotvm", "ansor", "metaschedule"]
    assert [(f["records"], f["valid"], f["bad_lines"]) for f in files] == [
        (6, 4, 0), (5, 3, 0), (6, 5, 0),
    ]  # fmt: skip
    for f in files:
        assert set(f) >= {"path", "format", "records", "valid", "bad_lines", "workloads"}
        for w in f["workloads"]:
            assert set(w) == {"key", "records", "valid", "best_mean_cost_s"}
    assert files[2]["workloads"][0] == {
        "key": "matmul16(16x16, 16x16, 16x16)", "records": 5, "valid": 4,
        "best_mean_cost_s": 2.2487577583694218e-07,
    }  # fmt: skip
    assert _count(db) == sum(f["events"] for f in files)


def test_import_with_a_worker_process_stores_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alone = _json(capsys, "import", str(ANSOR_SMALL), "--db", str(tmp_path / "a.db"),
                  "--workers", "0")  # fmt: skip
    helped = _json(capsys, "import", str(ANSOR_SMALL), "--db", str(tmp_path / "b.db"),
                   "--workers", "1")  # fmt: skip
    assert alone["files"][0] == helped["files"][0] | {"path": alone["files"][0]["path"]}
    assert _count(tmp_path / "a.db") == _count(tmp_path / "b.db") > 0
    code, _, err = _run(capsys, "import", str(ANSOR_SMALL), "--db", str(tmp_path / "c.db"),
                        "--workers", "-1")  # fmt: skip
    assert code == 2 and "--workers must be >= 0" in err


def test_reimport_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    _json(capsys, "import", str(AUTOTVM_SMALL), "--db", str(db))
    before = _count(db)
    again = _json(capsys, "import", str(AUTOTVM_SMALL), "--db", str(db))
    assert again["files"][0]["stored"] == 0
    assert _count(db) == before


def test_human_output_and_bad_line_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = AUTOTVM_SMALL.read_text().splitlines()
    lines[3] = lines[3][:30]
    log = tmp_path / "cut.log"
    log.write_text("\n".join(lines) + "\n")
    code, out, err = _run(capsys, "import", str(log), "--db", str(tmp_path / "s.db"))
    assert code == 0
    assert "autotvm, 5 records (3 valid), 2 workloads, 1 bad lines" in out
    assert f"warning: {log}: line 4: not valid JSON" in err


def test_unknown_format_is_one_line_and_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.db"
    _json(capsys, "import", str(ANSOR_SMALL), "--db", str(db))
    before = _count(db)
    junk = tmp_path / "junk.txt"
    junk.write_text("nothing to see\n")
    code, out, err = _run(capsys, "import", str(AUTOTVM_SMALL), str(junk), "--db", str(db))
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("tuneloom import: error: ") and str(junk) in err
    assert _count(db) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["import", "/no/such/file.log", "--db", "{db}"], "no such file: /no/such/file.log"),
        (["import", str(AUTOTVM_SMALL), "--db", "{db}", "--gap", "-1"], "--gap must be >= 0"),
        (["export", "--db", "{db}"], "nothing to export"),
        (["export", "--jsonl", "{tmp}/x.jsonl"], "--db PATH is required"),
        (["export", "--db", "{tmp}/none.db", "--jsonl", "{tmp}/x"], "no tuneloom store"),
        (["export", "--db", "{db}", "--jsonl", "{tmp}/no/dir/x"], "does not exist"),
        (["export", "--db", "{db}", "--best-db", "{tmp}/best"], "names no MetaSchedule database"),
        (["export", "--from-db", str(MS_DB), "--jsonl", "{tmp}/x", "--db", "{db}"], "--from-db"),
        (["export", "--best-db", "{tmp}/best", "--from-db", "{tmp}/nope"], "no such file"),
    ],
)
def test_user_mistakes_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    db = tmp_path / "s.db"
    _json(capsys, "import", str(AUTOTVM_SMALL), "--db", str(db))
    filled = [a.replace("{db}", str(db)).replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = _run(capsys, *filled)
    assert code == 2
    assert err.count("\n") == 1 and message in err, err


def test_export_jsonl_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, copy = tmp_path / "s.db", tmp_path / "copy.db"
    _json(capsys, "import", str(AUTOTVM_SMALL), str(MS_DB), "--db", str(db), "--no-tvm")
    out = tmp_path / "events.jsonl"
    result = _json(capsys, "export", "--db", str(db), "--jsonl", str(out))
    assert result["jsonl"]["events"] == _count(db)
    back = _json(capsys, "import", str(out), "--db", str(copy))
    (summary,) = back["files"]
    assert summary["format"] == "tuneloom"
    assert (summary["records"], summary["valid"]) == (12, 9)
    assert _count(copy) == _count(db)
    with SQLiteStore(db, read_only=True) as a, SQLiteStore(copy, read_only=True) as b:
        assert [s.event for s in a.read()] == [s.event for s in b.read()]
    # and into the store it came from: nothing new
    assert _json(capsys, "import", str(out), "--db", str(db))["files"][0]["stored"] == 0


def test_export_chrome_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    _json(capsys, "import", str(AUTOTVM_SMALL), str(ANSOR_SMALL), "--db", str(db))
    out = tmp_path / "trace.json"
    result = _json(capsys, "export", "--db", str(db), "--chrome-trace", str(out))
    assert result["chrome_trace"]["stages"] == 6
    doc = json.loads(out.read_text())
    complete = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(complete) == 6
    assert len({e["args"]["job"] for e in complete}) == 2
    only = _json(
        capsys, "export", "--db", str(db), "--chrome-trace", str(out),
        "--job", complete[0]["args"]["job"],
    )  # fmt: skip
    assert only["chrome_trace"]["stages"] == 3


def test_export_best_db_from_store_and_from_db(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.db"
    source = Path(shutil.copytree(MS_DB, tmp_path / "tuned"))
    _json(capsys, "import", str(source), "--db", str(db), "--no-tvm")
    result = _json(capsys, "export", "--db", str(db), "--best-db", str(tmp_path / "best"))
    assert result["best_db"]["workloads_written"] == 2
    assert result["best_db"]["sources"] == [str(source.resolve())]
    direct = _json(capsys, "export", "--best-db", str(tmp_path / "b2"), "--from-db", str(source))
    assert direct["best_db"]["workloads_written"] == 2
    for name in ("database_workload.json", "database_tuning_record.json"):
        assert (tmp_path / "best" / name).read_bytes() == (tmp_path / "b2" / name).read_bytes()
    # a database the store names but that is gone is reported, not silently dropped
    shutil.rmtree(source)
    code, _, err = _run(capsys, "export", "--db", str(db), "--best-db", str(tmp_path / "b3"))
    assert code == 2 and "named but gone" in err


def test_commands_run_as_a_program(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tuneloom", "import", str(ANSOR_SMALL), "--db",
         str(tmp_path / "s.db"), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout)["files"][0]["records"] == 5
