"""Server-side filtering, sorting and paging of tables.

Filters are clauses (``column op value``), read from a typed query (``parse``: ``{col} op
value`` joined by ``&&``) or from an AG Grid filter model (``from_grid_model``); ``apply``
filters a DataFrame with them. ``from_sort_model`` turns AG Grid's sort model into the
``sort_by`` list ``sort`` takes. Bad filters raise ``FilterError`` with a message for the page.
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


@dataclass(frozen=True)
class AnyOf:
    """Rows matching every clause of at least one of ``options``."""

    options: tuple[tuple[Clause, ...], ...]


# AG Grid's text and number filter types -> clause operators.
GRID_TYPES = {
    "equals": "eq", "notEqual": "ne", "lessThan": "lt", "lessThanOrEqual": "le",
    "greaterThan": "gt", "greaterThanOrEqual": "ge", "contains": "contains",
    "notContains": "notcontains", "startsWith": "startswith", "endsWith": "endswith",
    "blank": "blank", "notBlank": "notblank",
}  # fmt: skip


def parse(query: str | None, columns: Sequence[str]) -> list[Clause]:
    """Clauses of a typed filter query; unknown columns or operators raise FilterError."""
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


def from_grid_model(
    model: Mapping[str, Any] | None, columns: Sequence[str]
) -> list[Clause | AnyOf]:
    """Clauses of an AG Grid filter model (text and number column filters, one condition or
    two joined by AND/OR); unknown columns or filter types raise FilterError."""
    out: list[Clause | AnyOf] = []
    for column, spec in (model or {}).items():
        if column not in columns:
            raise FilterError(f"unknown column {column!r} in the filter")
        if not isinstance(spec, Mapping):
            raise FilterError(f"cannot read the filter on {column!r}")
        if "conditions" in spec:
            parts = tuple(_grid_condition(column, c) for c in spec.get("conditions") or ())
            if spec.get("operator") == "OR":
                out.append(AnyOf(parts))
            else:
                out.extend(c for part in parts for c in part)
        else:
            out.extend(_grid_condition(column, spec))
    return out


def _grid_condition(column: str, spec: Any) -> tuple[Clause, ...]:
    if not isinstance(spec, Mapping):
        raise FilterError(f"cannot read the filter on {column!r}")
    kind, type_ = spec.get("filterType"), spec.get("type")
    if kind not in ("text", "number"):
        raise FilterError(f"unknown filter kind {kind!r} on {column!r}")
    if type_ in ("blank", "notBlank"):
        return (Clause(column, GRID_TYPES[type_], None),)
    if kind == "number":
        low = _number(column, spec.get("filter"))
        if type_ == "inRange":
            high = _number(column, spec.get("filterTo"))
            return (
                Clause(column, "ge", low, text=str(low)),
                Clause(column, "le", high, text=str(high)),
            )
        if type_ not in GRID_TYPES or GRID_TYPES[type_] in _TEXT_ONLY:
            raise FilterError(f"unknown number filter {type_!r} on {column!r}")
        return (Clause(column, GRID_TYPES[type_], low, text=str(low)),)
    if type_ not in GRID_TYPES or type_ in _NUMBER_ONLY:
        raise FilterError(f"unknown text filter {type_!r} on {column!r}")
    text = "" if spec.get("filter") is None else str(spec["filter"])
    return (Clause(column, GRID_TYPES[type_], text, text=text),)


_TEXT_ONLY = {"contains", "notcontains", "startswith", "endswith"}
_NUMBER_ONLY = {"lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual"}


def _number(column: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FilterError(f"the filter on {column!r} needs a number, got {value!r}") from None
    if not math.isfinite(number):
        raise FilterError(f"the filter on {column!r} needs a finite number, got {value!r}")
    return number


def from_sort_model(model: Sequence[Mapping[str, Any]] | None) -> list[dict[str, str]]:
    """AG Grid's sort model (``colId``, ``sort``) as the ``sort_by`` list ``sort`` takes."""
    return [
        {"column_id": str(s["colId"]), "direction": "desc" if s.get("sort") == "desc" else "asc"}
        for s in model or ()
        if isinstance(s, Mapping) and s.get("colId") and s.get("sort") in ("asc", "desc")
    ]


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


def apply(frame: pd.DataFrame, clauses: Sequence[Clause | AnyOf]) -> pd.DataFrame:
    """Rows of ``frame`` matching every clause."""
    return frame[_all(frame, clauses).to_numpy()]


def _all(frame: pd.DataFrame, clauses: Sequence[Clause | AnyOf]) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for c in clauses:
        if isinstance(c, AnyOf):
            either = pd.Series(False, index=frame.index)
            for option in c.options:
                either |= _all(frame, option)
            mask &= either
        else:
            mask &= _mask(frame[c.column], c)
    return mask


def _mask(col: pd.Series, c: Clause) -> pd.Series:
    if c.op == "blank":
        return col.isna() | (col.astype(str) == "")
    if c.op == "notblank":
        return col.notna() & (col.astype(str) != "")
    if c.op in _TEXT_ONLY:
        text = col.astype(str).where(col.notna(), "")
        needle = c.text
        if not c.case_sensitive:
            text, needle = text.str.lower(), needle.lower()
        if c.op == "startswith":
            return text.str.startswith(needle)
        if c.op == "endswith":
            return text.str.endswith(needle)
        hit = text.str.contains(needle, regex=False)
        return ~hit if c.op == "notcontains" else hit
    return _compare(col, c)


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
    """``frame`` sorted as ``sort_by`` (``column_id``, ``direction``) says; missing last."""
    if not sort_by:
        return frame
    keys = [s["column_id"] for s in sort_by if s.get("column_id") in frame.columns]
    if not keys:
        return frame
    ascending = [s.get("direction", "asc") == "asc" for s in sort_by if s["column_id"] in keys]
    return frame.sort_values(keys, ascending=ascending, kind="stable", na_position="last")


def rows_between(frame: pd.DataFrame, start: Any, end: Any, limit: int) -> pd.DataFrame:
    """Rows ``start`` to ``end`` (exclusive) of ``frame``, at most ``limit`` of them."""
    first = max(int(start or 0), 0)
    last = min(max(int(end if end is not None else first + limit), first), first + limit)
    return frame.iloc[first:last]
