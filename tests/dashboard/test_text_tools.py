"""Side-by-side diff, table filter queries and access rules."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard import filterquery
from dashboard.access import Access, is_loopback
from dashboard.textdiff import side_by_side, split_spans


def test_side_by_side_aligns_lines_and_marks_changed_characters() -> None:
    left = "a = 1\nsplit(l0, [None, 8])\nvectorize(l1)\nend"
    right = "a = 1\nsplit(l0, [None, 16])\nparallel(l0)\nvectorize(l1)\nend"
    rows = side_by_side(left, right)
    tags = [r.tag for r in rows]
    assert tags == ["equal", "replace", "insert", "equal", "equal"]
    replaced = rows[1]
    assert (replaced.left_no, replaced.right_no) == (2, 2)
    pieces = split_spans(replaced.right, replaced.right_spans)
    assert "".join(p for p, _ in pieces) == replaced.right
    assert [p for p, changed in pieces if changed] == ["16"]
    assert rows[2].left_no is None and rows[2].right == "parallel(l0)"


def test_side_by_side_context_keeps_lines_around_changes() -> None:
    left = "\n".join(f"line {i}" for i in range(100))
    right = left.replace("line 50", "line fifty")
    rows = side_by_side(left, right, context=2)
    assert [r.left_no for r in rows] == [49, 50, 51, 52, 53]
    assert side_by_side("same", "same", context=0) == []


TABLE = pd.DataFrame(
    {
        "task": ["matmul:64", "dense:1x8x8", "matmul:128", None],
        "latency_ms": [1.5, 0.2, 3.0, None],
        "error_class": [None, None, None, "build"],
    }
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("{latency_ms} > 1", [0, 2]),
        ("{latency_ms} s<= 1.5 && {task} contains matmul", [0]),
        ("{task} icontains MATMUL", [0, 2]),
        ('{task} = "dense:1x8x8"', [1]),
        ("{error_class} is blank", [0, 1, 2]),
        ("{error_class} is not blank", [3]),
        ("{latency_ms} != 0.2", [0, 2, 3]),
        ("{task} contains 64", [0]),
        ("{task} contains 1", [1, 2]),
        ("", [0, 1, 2, 3]),
    ],
)
def test_filter_queries_select_rows(query: str, expected: list[int]) -> None:
    clauses = filterquery.parse(query, list(TABLE.columns))
    assert list(filterquery.apply(TABLE, clauses).index) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [("{nope} > 1", "unknown column 'nope'"), ("latency > 1", "cannot read the filter")],
)
def test_bad_filter_queries_name_the_problem(query: str, message: str) -> None:
    with pytest.raises(filterquery.FilterError, match=message):
        filterquery.parse(query, list(TABLE.columns))


def text(type_: str, value: str | None = None) -> dict:
    return {"filterType": "text", "type": type_, "filter": value}


def number(type_: str, value: float | None = None, to: float | None = None) -> dict:
    return {"filterType": "number", "type": type_, "filter": value, "filterTo": to}


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"latency_ms": number("greaterThan", 1)}, [0, 2]),
        ({"latency_ms": number("lessThanOrEqual", 1.5), "task": text("contains", "mat")}, [0]),
        ({"task": text("contains", "MATMUL")}, [0, 2]),
        ({"task": text("notContains", "matmul")}, [1, 3]),
        ({"task": text("equals", "dense:1x8x8")}, [1]),
        ({"task": text("startsWith", "matmul:1")}, [2]),
        ({"task": text("endsWith", "x8")}, [1]),
        ({"error_class": text("blank")}, [0, 1, 2]),
        ({"error_class": text("notBlank")}, [3]),
        ({"latency_ms": number("notEqual", 0.2)}, [0, 2, 3]),
        ({"latency_ms": number("inRange", 0.1, 1.5)}, [0, 1]),
        (
            {"latency_ms": {"filterType": "number", "operator": "OR", "conditions": [
                number("lessThan", 1), number("greaterThan", 2)]}},
            [1, 2],
        ),
        (
            {"task": {"filterType": "text", "operator": "AND", "conditions": [
                text("contains", "matmul"), text("notContains", "128")]}},
            [0],
        ),
        ({}, [0, 1, 2, 3]),
    ],
)  # fmt: skip
def test_grid_filter_models_select_rows(model: dict, expected: list[int]) -> None:
    clauses = filterquery.from_grid_model(model, list(TABLE.columns))
    assert list(filterquery.apply(TABLE, clauses).index) == expected


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"nope": text("contains", "a")}, "unknown column 'nope'"),
        ({"task": text("greaterThan", "a")}, "unknown text filter 'greaterThan'"),
        ({"latency_ms": number("contains", 1)}, "unknown number filter 'contains'"),
        ({"latency_ms": number("equals", None)}, "needs a number, got None"),
        ({"task": {"filterType": "set", "values": ["a"]}}, "unknown filter kind 'set'"),
    ],
)
def test_bad_grid_filters_name_the_problem(model: dict, message: str) -> None:
    with pytest.raises(filterquery.FilterError, match=message):
        filterquery.from_grid_model(model, list(TABLE.columns))


def test_grid_sort_models_become_sort_keys() -> None:
    model = [{"colId": "latency_ms", "sort": "desc"}, {"colId": "task", "sort": None}]
    assert filterquery.from_sort_model(model) == [{"column_id": "latency_ms", "direction": "desc"}]
    assert filterquery.from_sort_model(None) == []


def test_rows_between_never_hands_out_more_than_the_limit() -> None:
    frame = pd.DataFrame({"x": range(100)})
    assert filterquery.rows_between(frame, 10, 20, 50)["x"].tolist() == list(range(10, 20))
    assert len(filterquery.rows_between(frame, 0, 10**9, 50)) == 50
    assert filterquery.rows_between(frame, 95, 200, 50)["x"].tolist() == list(range(95, 100))
    assert filterquery.rows_between(frame, -5, None, 3)["x"].tolist() == [0, 1, 2]


def test_sort_puts_missing_values_last() -> None:
    ordered = filterquery.sort(TABLE, [{"column_id": "latency_ms", "direction": "desc"}])
    assert list(ordered.index) == [2, 0, 1, 3]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.5.5.5", True),
     ("0.0.0.0", False), ("192.168.1.4", False), ("::", False), ("example.org", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_access_rules() -> None:
    assert Access().allows(None)
    open_wide = Access(host="0.0.0.0")
    assert open_wide.needs_token and not open_wide.allows(None) and not open_wide.allows("x")
    assert "without a token" in open_wide.refusal(None)
    guarded = Access(host="0.0.0.0", token="s3cret")
    assert guarded.allows("s3cret")
    assert not guarded.allows("s3cre") and not guarded.allows("") and not guarded.allows(None)
    assert "not valid" in guarded.refusal("bad")
    local_with_token = Access(token="t")
    assert local_with_token.needs_token and not local_with_token.allows(None)
