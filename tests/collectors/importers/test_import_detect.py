"""Format detection reads content, never the file name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from collectors.events import JobEvent
from collectors.importers import LogFormatError, detect
from collectors.importers.detect import PROBE_LINES, classify
from tests.collectors.importers.importer_helpers import ANSOR_SMALL, AUTOTVM_SMALL, MS_DB


@pytest.mark.parametrize(
    ("source", "fmt"),
    [
        (AUTOTVM_SMALL, "autotvm"),
        (ANSOR_SMALL, "ansor"),
        (MS_DB / "database_tuning_record.json", "metaschedule"),
    ],
)
def test_misleading_names_do_not_matter(tmp_path: Path, source: Path, fmt: str) -> None:
    target = tmp_path / "ansor_autotvm.jsonl"  # a name that would suggest other formats
    shutil.copy(source, target)
    if fmt == "metaschedule":
        shutil.copy(MS_DB / "database_workload.json", tmp_path / "database_workload.json")
    assert detect(target).format == fmt


def test_tuneloom_jsonl(tmp_path: Path) -> None:
    event = JobEvent(source="s", seq=0, ts=1.0, job="j", change="submitted")
    path = tmp_path / "events.log"
    path.write_text(event.to_json() + "\n")
    assert detect(path).format == "tuneloom"


def test_comments_blank_lines_and_corrupt_first_lines_are_skipped(tmp_path: Path) -> None:
    body = AUTOTVM_SMALL.read_text().splitlines()[2]
    path = tmp_path / "log"
    path.write_text("# a comment\n\n{not json\n" + body + "\n")
    assert detect(path).format == "autotvm"


def test_too_many_corrupt_lines_is_unknown(tmp_path: Path) -> None:
    body = AUTOTVM_SMALL.read_text().splitlines()[2]
    path = tmp_path / "log"
    path.write_text("{broken\n" * PROBE_LINES + body + "\n")
    with pytest.raises(LogFormatError, match="not JSON lines"):
        detect(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "empty"),
        ("# only a comment\n\n", "empty"),
        ('{"hello": "world"}\n', "JSON of no known format"),
        ("[1, 2, 3]\n", "JSON of no known format"),
        ("just some text\n", "not JSON lines"),
    ],
)
def test_unknown_content_names_the_file(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "mystery.txt"
    path.write_text(content)
    with pytest.raises(LogFormatError, match=match) as info:
        detect(path)
    assert str(path) in str(info.value)


def test_binary_file_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(LogFormatError, match="unknown log format"):
        detect(path)


def test_missing_path() -> None:
    with pytest.raises(FileNotFoundError):
        detect("/no/such/log.json")


def test_directory_without_database(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match="no MetaSchedule database"):
        detect(tmp_path)


def test_format_override_and_unknown_format(tmp_path: Path) -> None:
    assert detect(AUTOTVM_SMALL, "ansor").format == "ansor"
    with pytest.raises(LogFormatError, match="unknown format 'relay'"):
        detect(AUTOTVM_SMALL, "relay")
    with pytest.raises(LogFormatError, match="directory"):
        detect(tmp_path, "autotvm")


def test_classify_each_line_shape() -> None:
    assert classify({"v": 1, "kind": "job"}) == "tuneloom"
    assert classify({"input": [], "config": {}, "result": []}) == "autotvm"
    assert classify({"i": [["key", "llvm"], [[], []]], "r": []}) == "ansor"
    assert classify([0, [[[], []], [1.0]]]) == "metaschedule"
    assert classify(["123", "b64"]) == "metaschedule"
    assert classify(["abc", "b64"]) is None
    assert classify(json.loads('{"i": 1, "r": 2}')) is None
