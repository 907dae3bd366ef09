"""Whatever a line holds, an import finishes: each line is a record or a counted bad line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.importers import detect, import_file
from tests.collectors.importers.importer_helpers import ANSOR_SMALL, AUTOTVM_SMALL, MS_DB

_LEAF = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=5)
    | st.floats(allow_nan=False) | st.sampled_from([0, -1, 1e10, 1e400, "TENSOR", []])
)  # fmt: skip
JSON = st.recursive(
    _LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)  # fmt: skip
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position inside a decoded JSON value."""
    found = [prefix]
    if isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*prefix, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[head] = _replace(value[head], rest, new)
    return copy


def _mutated(lines: list[str], data: st.DataObject) -> list[str]:
    index = data.draw(st.integers(0, len(lines) - 1))
    obj = json.loads(lines[index])
    path = data.draw(st.sampled_from(_paths(obj)))
    out = list(lines)
    out[index] = json.dumps(_replace(obj, path, data.draw(JSON)))
    return out


def _check(path: Path, lines: int) -> None:
    summary = import_file(detect(path), None, use_tvm=False)
    assert summary.records + summary.bad_lines == lines


@SETTINGS
@given(data=st.data())
def test_mutated_autotvm_lines(tmp_path: Path, data: st.DataObject) -> None:
    lines = [x for x in AUTOTVM_SMALL.read_text().splitlines() if x.startswith("{")]
    path = tmp_path / "log"
    path.write_text("\n".join(_mutated(lines, data)) + "\n")
    _check(path, len(lines))


@SETTINGS
@given(data=st.data())
def test_mutated_ansor_lines(tmp_path: Path, data: st.DataObject) -> None:
    lines = ANSOR_SMALL.read_text().splitlines()
    path = tmp_path / "log"
    path.write_text("\n".join(_mutated(lines, data)) + "\n")
    _check(path, len(lines))


@SETTINGS
@given(data=st.data())
def test_mutated_metaschedule_records(tmp_path: Path, data: st.DataObject) -> None:
    lines = (MS_DB / "database_tuning_record.json").read_text().splitlines()
    db = tmp_path / "db"
    shutil.rmtree(db, ignore_errors=True)
    db.mkdir()
    shutil.copy(MS_DB / "database_workload.json", db / "database_workload.json")
    (db / "database_tuning_record.json").write_text("\n".join(_mutated(lines, data)) + "\n")
    _check(db, len(lines))
