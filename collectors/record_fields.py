"""Record events as plain tuples of their fields, for producers of many records at once.

An importer of a million-record log spends more time building frozen ``RecordEvent``
objects (one slot setter per field) than the SQLite store then spends unpacking them. So
an importer builds each record with ``ImportContext.record``: ``record_event`` (the event)
or ``record_fields`` (the same values as a tuple in ``RECORD_FIELDS`` order followed by
the record's ``mean_secs``, which the importer and the store would otherwise each compute
again), and a store with ``append_imported`` takes such tuples beside events. The values
are trusted as ``events.trusted_constructor`` trusts them: checked or built from checked
values by the producer; the event's ``v`` is always the current one.
"""

from __future__ import annotations

from typing import Any

from collectors.events import RecordEvent, trusted_constructor

# A record's fields in the order of a fields tuple (every field but ``v``), which ends with
# the record's ``mean_secs`` (``MEAN_SECS``).
RECORD_FIELDS = (
    "source", "seq", "ts", "clock", "job", "task", "iteration", "candidate", "workload_hash",
    "error", "error_class", "predicted", "origin", "run_secs", "trace",
)  # fmt: skip
MEAN_SECS = len(RECORD_FIELDS)  # the index of a fields tuple's mean_secs
DEFAULT_V, DEFAULT_CLOCK = (RecordEvent.__dataclass_fields__[f].default for f in ("v", "clock"))
_make = trusted_constructor(RecordEvent, (*RECORD_FIELDS, "v"))


def record_event(*fields: Any) -> RecordEvent:
    """The record event of trusted values given in ``RECORD_FIELDS`` order, then its
    ``mean_secs`` (not kept: the event computes it)."""
    return _make(*fields[:MEAN_SECS], DEFAULT_V)


def record_fields(*fields: Any) -> tuple[Any, ...]:
    """The values given in ``RECORD_FIELDS`` order, then the record's ``mean_secs``, as
    one tuple (``record_event``'s stand-in for a store's ``append_imported``)."""
    return fields


def fields_of(record: RecordEvent) -> tuple[Any, ...]:
    """A record event as its fields tuple."""
    return (*(getattr(record, name) for name in RECORD_FIELDS), record.mean_secs)


def as_events(items: list[Any]) -> list[Any]:
    """A batch of events and fields tuples with every tuple made a ``RecordEvent``."""
    return [record_event(*e) if type(e) is tuple else e for e in items]
