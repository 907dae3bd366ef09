"""Readable text of a record's trace, for a viewer showing one record.

Imported records keep their schedule as the tool wrote it (``origin`` says which tool):
AutoTVM's config and Ansor's transform steps as JSON, MetaSchedule's trace in its JSON form
(as tuneloom's own tuner records do). Rendering happens here, once per record shown, instead
of once per record imported.
"""

from __future__ import annotations

from collections.abc import Callable

from collectors.events import RecordEvent
from collectors.importers import ansor, autotvm, metaschedule

RENDERERS: dict[str, Callable[[str], str]] = {
    autotvm.ORIGIN: autotvm.render_trace,
    ansor.ORIGIN: ansor.render_trace,
    metaschedule.ORIGIN: metaschedule.render_trace,
}


def readable_trace(record: RecordEvent) -> str | None:
    """The record's schedule as lines of text, or None when it carries no trace.

    A trace in the JSON form of its origin's tool is rendered one step per line; any other
    trace (readable text already, or one that does not parse) is returned as stored.
    """
    trace = record.trace
    if trace is None:
        return None
    render = RENDERERS.get(record.origin or "")
    if render is None or not trace.lstrip().startswith(("[", "{")):
        return trace
    try:
        return render(trace)
    except ValueError:
        return trace
