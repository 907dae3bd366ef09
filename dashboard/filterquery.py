"""Server-side filtering, sorting and paging of tables (Dash DataTable's custom mode).

``parse`` reads the DataTable ``filter_query`` language (``{col} op value`` joined by
``&&``) into clauses; ``apply`` filters a DataFrame with them. Bad queries raise
``FilterError`` with a message for the page.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

OPERATORS = {
    "=": "eq", "eq": "eq", "!=": "ne", "ne": "ne", "<": "lt", "lt": "lt", "<=": "le",
    "le": "le", ">": "gt", "gt": "gt", ">=": "ge", "ge": "ge", "contains": "contains",
    "datestartswith": "startswith", "is blank": "blank", "is not blank": "notblank",
}  # fmt: skip
_CLAUSE = re.compile(
    r"^\s*\{(?P<col>[^}]+)\}\s+(?P<op>(?:[si](?=\S))?(?:is not blank|is blank|[!<>=]=?|"
    r"eq|ne|lt|le|gt|ge|contains|datestartswith))\s*(?P<value>.*?)\s*$"
)


class FilterError(ValueError):
    """A table filter that cannot be understood; the message names the problem."""


@dataclass(frozen=True)
class Clause:
    """``column op value``; ``text`` is the value as typed (quotes removed)."""

    column: str
    op: str
    value: Any
    case_sensitive: bool = False
    text: str = ""


def parse(query: str | None, columns: Sequence[str]) -> list[Clause]:
    """Clauses of a DataTable filter query; unknown columns or operators raise FilterError."""
    if not query or not query.strip():
        return []
    clauses = []
    for part in query.split(" && "):
        match = _CLAUSE.match(part)
        if not match:
            raise FilterError(f"cannot read the filter {part.strip()!r}")
        column, op = match["col"], match["op"]
        if column not in columns:
            raise FilterError(f"unknown column {column!r} in the filter")
        case_sensitive = op.startswith("s") and op[1:] in OPERATORS
        if op[:1] in "si" and op[1:] in OPERATORS:
            op = op[1:]
        if op not in OPERATORS:
            raise FilterError(f"unknown operator {op!r} in the filter")
        raw = match["value"]
        text = _unquote(raw)
        clauses.append(Clause(column, OPERATORS[op], _value(raw), case_sensitive, text))
    return clauses


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        return text[1:-1]
    return text


def _value(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        return text[1:-1]
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def apply(frame: pd.DataFrame, clauses: Sequence[Clause]) -> pd.DataFrame:
    """Rows of ``frame`` matching every clause."""
    mask = pd.Series(True, index=frame.index)
    for c in clauses:
        col = frame[c.column]
        if c.op == "blank":
            mask &= col.isna() | (col.astype(str) == "")
        elif c.op == "notblank":
            mask &= col.notna() & (col.astype(str) != "")
        elif c.op in ("contains", "startswith"):
            text = col.astype(str).where(col.notna(), "")
            needle = c.text
            if not c.case_sensitive:
                text, needle = text.str.lower(), needle.lower()
            hit = text.str.contains(needle, regex=False) if c.op == "contains" else (
                text.str.startswith(needle))  # fmt: skip
            mask &= hit
        else:
            mask &= _compare(col, c)
    return frame[mask.to_numpy()]


def _compare(col: pd.Series, c: Clause) -> pd.Series:
    if isinstance(c.value, float):
        values = pd.to_numeric(col, errors="coerce")
        if values.notna().any() or col.isna().all():
            return _op(values, c.op, c.value).fillna(False).astype(bool)
    text = col.astype(str).where(col.notna(), "")
    value = c.text
    if not c.case_sensitive:
        text, value = text.str.lower(), value.lower()
    return _op(text, c.op, value).fillna(False).astype(bool)


def _op(values: pd.Series, op: str, value: Any) -> pd.Series:
    return _COMPARE[op](values, value)


_COMPARE = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt,
    "le": operator.le, "gt": operator.gt, "ge": operator.ge,
}  # fmt: skip


def sort(frame: pd.DataFrame, sort_by: Sequence[Mapping[str, str]] | None) -> pd.DataFrame:
    """``frame`` sorted as DataTable's ``sort_by`` says; missing values go last."""
    if not sort_by:
        return frame
    keys = [s["column_id"] for s in sort_by if s.get("column_id") in frame.columns]
    if not keys:
        return frame
    ascending = [s.get("direction", "asc") == "asc" for s in sort_by if s["column_id"] in keys]
    return frame.sort_values(keys, ascending=ascending, kind="stable", na_position="last")


def page(frame: pd.DataFrame, current: int | None, size: int) -> tuple[pd.DataFrame, int]:
    """Rows of page ``current`` (0-based) and the page count (at least 1)."""
    size = max(int(size), 1)
    count = max(math.ceil(len(frame) / size), 1)
    current = min(max(int(current or 0), 0), count - 1)
    return frame.iloc[current * size : (current + 1) * size], count
