"""tuneloom's own JSON lines (event contract v1) back into a store.

Events keep their ``source`` and ``seq``, so importing a file twice, or a file exported from
the same store, adds nothing. A line that is not a valid event is counted as bad.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from collectors.events import Event, EventError, from_dict
from collectors.importers._common import BadLine, ImportContext, iter_json_lines, parse_json
from collectors.jsonl import decode_event


def looks_like(obj: Any) -> bool:
    """True for a decoded tuneloom event: an object with ``v`` and ``kind``."""
    return isinstance(obj, dict) and "v" in obj and "kind" in obj


def read(ctx: ImportContext) -> Iterator[Event]:
    """Stream validated events from ``ctx.path``."""
    for number, text in iter_json_lines(ctx.path, ctx.bad_line):
        event = decode_event(text)  # stage and record lines, decoded in C
        if event is not None:
            yield event
            continue
        try:
            obj = parse_json(text)
            if not looks_like(obj):
                raise BadLine("not a tuneloom event (no v/kind)")
            event = from_dict(obj)
        except (BadLine, EventError) as exc:
            ctx.bad_line(number, str(exc))
            continue
        yield event
