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
from typing import IO, Annotated, Any, Literal

import msgspec

from collectors._base import BaseStore
from collectors.events import (
    CLOCKS,
    ERROR_CLASSES,
    INT64_MAX,
    INT64_MIN,
    STAGE_KINDS,
    STAGE_STATUSES,
    Event,
    EventError,
    RecordEvent,
    StageEvent,
    from_json,
    trusted_constructor,
)

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
            event = decode_event(line) or from_json(line)
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


# --- fast decoding of the common kinds -------------------------------------------------
#
# Stage and record events, nearly every line of a tuning run, are decoded and checked by
# msgspec in C against structs that state the contract's rules for them (exact keys, types,
# 64-bit integers, choices, ``seq >= 0``, a non-empty ``source``, text without lone
# surrogates, finite floats; an integer is accepted for a float, as the contract coerces
# it). A line they accept gives the event ``from_json`` gives; any other line is left to
# ``from_json``, which also words the errors.

_Int = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
_Seq = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
_Source = Annotated[str, msgspec.Meta(min_length=1)]
_Clock = Literal[CLOCKS]  # type: ignore[valid-type]


class _Kind(msgspec.Struct, tag_field="kind", kw_only=True, forbid_unknown_fields=True, gc=False):
    """The envelope, for the kinds below."""

    v: Literal[1]
    source: _Source
    seq: _Seq
    ts: float
    clock: _Clock = "wall"
    job: str


class _Stage(_Kind, tag="stage"):
    task: str
    iteration: _Int
    stage: Literal[STAGE_KINDS]  # type: ignore[valid-type]
    resource: str
    start: float
    end: float
    status: Literal[STAGE_STATUSES] = "ok"  # type: ignore[valid-type]
    error: str | None = None
    candidates: _Int | None = None


class _Record(_Kind, tag="record"):
    task: str
    candidate: _Int
    iteration: _Int | None = None
    workload_hash: str | None = None
    trace: str | None = None
    run_secs: tuple[float, ...] | None = None
    error: str | None = None
    error_class: Literal[ERROR_CLASSES] | None = None  # type: ignore[valid-type]
    predicted: float | None = None
    origin: str | None = None


_DECODE = msgspec.json.Decoder(_Stage | _Record).decode
_make_stage = trusted_constructor(StageEvent, _Stage.__struct_fields__)
_make_record = trusted_constructor(RecordEvent, _Record.__struct_fields__)
_astuple = msgspec.structs.astuple


def decode_event(line: str | bytes) -> Event | None:
    """The stage or record event of one JSON line, decoded by msgspec; None for any other
    line (another kind, or anything the contract would coerce differently or refuse):
    ``from_json`` reads those and explains errors. Where it answers, it gives the event
    ``from_json(line)`` gives."""
    try:
        item = _DECODE(line)
    except (msgspec.MsgspecError, RecursionError):
        return None
    if type(item) is _Record:
        return _make_record(*_astuple(item))
    if item.end < item.start:
        return None
    return _make_stage(*_astuple(item))
