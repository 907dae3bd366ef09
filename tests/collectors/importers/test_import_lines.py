"""Lines of a log read in blocks are numbered, skipped and refused exactly as reading one
line at a time does, wherever the blocks end."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.importers import _common

PIECES = st.sampled_from(["a", "b c", " ", "#x", "", "\n", "\n", "\r\n", "\r", "x" * 12, "é"])


def _one_at_a_time(data: bytes, limit: int) -> tuple[list[tuple[int, str]], list[int], int]:
    """What a ``readline`` loop reads: kept lines, too long lines, lines in all."""
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace")
    kept, too_long, number = [], [], 0
    for line in stream:
        number += 1
        if len(line.rstrip("\n")) >= limit:
            too_long.append(number)
            continue
        text = line.strip()
        if text and text[0] != "#":
            kept.append((number, text))
    return kept, too_long, number


@settings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(PIECES, max_size=14),
    limit=st.integers(1, 20),
    block=st.integers(1, 9),
)
def test_lines_read_in_blocks_match_reading_one_at_a_time(
    pieces: list[str], limit: int, block: int
) -> None:
    data = "".join(pieces).encode()
    too_long: list[int] = []
    counted: list[int] = []
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_common, "MAX_LINE_CHARS", limit)
        patch.setattr(_common, "READ_CHARS", block)
        kept = list(_common.numbered_lines(stream, lambda n, _: too_long.append(n), counted))
    assert (kept, too_long, counted[0]) == _one_at_a_time(data, limit)


def test_a_too_long_line_is_named_and_the_next_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "MAX_LINE_CHARS", 10)
    monkeypatch.setattr(_common, "READ_CHARS", 4)
    reasons: list[tuple[int, str]] = []
    stream = io.StringIO("ok\n" + "y" * 50 + "\n# note\nlast")
    kept = list(_common.numbered_lines(stream, lambda n, why: reasons.append((n, why))))
    assert kept == [(1, "ok"), (4, "last")]
    assert reasons == [(2, "line longer than 10 characters")]
