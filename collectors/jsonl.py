"""JSON lines: a store's events as one canonical JSON object per line, and back.

``export_jsonl`` writes every event in position order, streaming in chunks.
``import_jsonl`` reads a file in one pass and appends it in batches. A bad line stops the
import: every event on the lines before it is stored, nothing from it on is, and
``JsonlImportError`` (an ``EventError``) names the line. Appends are idempotent by
``(source, seq)``, so importing the fixed file again adds exactly the rest; events already
in the store are never changed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from collectors._base import BaseStore
from collectors.events import Event, EventError, from_json

DEFAULT_BATCH = 5_000
_EXPORT_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import did: events ``read`` = newly ``stored`` + ``duplicates`` skipped."""

    read: int
    stored: int
    duplicates: int


class JsonlImportError(EventError):
    """A bad line stopped an import; the events on the lines before it are stored."""

    def __init__(self, message: str, *, line: int, summary: ImportSummary) -> None:
        super().__init__(message)
        self.line = line
        self.summary = summary


def export_jsonl(store: BaseStore, path_or_stream: str | os.PathLike[str] | IO[str]) -> int:
    """Write every event of ``store`` (as of the call) to a file or text stream.

    A path is written through a temporary file beside it and renamed when complete, so
    an interrupted export never leaves a truncated file under the final name. Returns the
    number of events written.
    """
    if not isinstance(path_or_stream, str | os.PathLike):
        return _write_events(store, path_or_stream)
    path = Path(path_or_stream)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "w", encoding="utf-8", newline="\n") as f:
            count = _write_events(store, f)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return count


def import_jsonl(
    path_or_stream: str | os.PathLike[str] | Iterable[str] | Iterable[bytes],
    store: BaseStore,
    *,
    batch: int = DEFAULT_BATCH,
) -> ImportSummary:
    """Append the events of a JSON-lines file (or an iterable of lines) to ``store``.

    Blank lines are skipped. Stops at the first bad line with ``JsonlImportError``
    (after storing the lines before it; see the module notes).
    """
    if batch < 1:
        raise ValueError(f"batch: must be >= 1, got {batch}")
    if isinstance(path_or_stream, str | os.PathLike):
        with open(path_or_stream, "rb") as f:
            return _import_lines(f, store, batch)
    return _import_lines(path_or_stream, store, batch)


def _import_lines(lines: Iterable[Any], store: BaseStore, batch: int) -> ImportSummary:
    pending: list[Event] = []
    read = stored = 0

    def flush() -> None:
        nonlocal stored
        if pending:
            stored += len(store.append(pending))
            pending.clear()

    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            if not line.strip():
                continue
            event = from_json(line)
        except (EventError, UnicodeDecodeError) as exc:
            flush()
            problem = "not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)
            summary = ImportSummary(read, stored, read - stored)
            raise JsonlImportError(
                f"line {number}: {problem} (the {read} events before it were imported: "
                f"{stored} new, {read - stored} already stored)",
                line=number,
                summary=summary,
            ) from None
        pending.append(event)
        read += 1
        if len(pending) >= batch:
            flush()
    flush()
    return ImportSummary(read, stored, read - stored)


def _write_events(store: BaseStore, stream: IO[str]) -> int:
    upto = store.last_pos()  # events appended while exporting are left for the next export
    count = after = 0
    while after < upto:
        chunk = store.read(after, limit=_EXPORT_CHUNK)
        if not chunk:
            break
        lines = [s.event.to_json() for s in chunk if s.pos <= upto]
        if lines:
            stream.write("\n".join(lines))
            stream.write("\n")
        count += len(lines)
        after = chunk[-1].pos
    return count
