"""Side-by-side line diff of two texts with the changed characters marked (pure)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

Span = tuple[int, int]


@dataclass(frozen=True)
class DiffRow:
    """One row of a side-by-side diff. ``tag`` is equal, replace, delete or insert.

    Line numbers are 1-based, None where that side has no line; ``*_spans`` are character
    ranges that differ inside a replaced line.
    """

    tag: str
    left_no: int | None
    left: str
    right_no: int | None
    right: str
    left_spans: tuple[Span, ...] = ()
    right_spans: tuple[Span, ...] = ()


def side_by_side(left: str, right: str, *, context: int | None = None) -> list[DiffRow]:
    """Rows aligning ``left`` and ``right`` line by line.

    ``context`` keeps only that many equal lines around each change (None keeps all).
    """
    a, b = left.splitlines(), right.splitlines()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    rows: list[DiffRow] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows.extend(DiffRow("equal", i + 1, a[i], j + 1, b[j]) for i, j in zip(
                range(i1, i2), range(j1, j2), strict=True))  # fmt: skip
            continue
        left_part, right_part = a[i1:i2], b[j1:j2]
        for k in range(max(len(left_part), len(right_part))):
            has_l, has_r = k < len(left_part), k < len(right_part)
            lt = left_part[k] if has_l else ""
            rt = right_part[k] if has_r else ""
            if has_l and has_r:
                ls, rs = char_spans(lt, rt)
                rows.append(DiffRow("replace", i1 + k + 1, lt, j1 + k + 1, rt, ls, rs))
            elif has_l:
                rows.append(DiffRow("delete", i1 + k + 1, lt, None, "", ((0, len(lt)),)))
            else:
                rows.append(DiffRow("insert", None, "", j1 + k + 1, rt, (), ((0, len(rt)),)))
    if context is not None:
        rows = _with_context(rows, context)
    return rows


def char_spans(left: str, right: str) -> tuple[tuple[Span, ...], tuple[Span, ...]]:
    """Character ranges of ``left`` and ``right`` that differ from each other."""
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    ls: list[Span] = []
    rs: list[Span] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if i2 > i1:
            ls.append((i1, i2))
        if j2 > j1:
            rs.append((j1, j2))
    return tuple(ls), tuple(rs)


def _with_context(rows: list[DiffRow], context: int) -> list[DiffRow]:
    changed = [i for i, r in enumerate(rows) if r.tag != "equal"]
    keep = set()
    for i in changed:
        keep.update(range(max(0, i - context), min(len(rows), i + context + 1)))
    return [r for i, r in enumerate(rows) if i in keep]


def split_spans(text: str, spans: tuple[Span, ...]) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, changed) runs along ``spans``."""
    out: list[tuple[str, bool]] = []
    cursor = 0
    for start, end in spans:
        if start > cursor:
            out.append((text[cursor:start], False))
        out.append((text[start:end], True))
        cursor = end
    if cursor < len(text):
        out.append((text[cursor:], False))
    return out
