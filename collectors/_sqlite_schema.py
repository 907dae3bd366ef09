"""The SQLite store's on-disk layout: tables, packed rows, and the upgrade of older files.

Schema version 3 (``PRAGMA user_version``):

- ``stages`` and ``records``: one row per stage and record event, keyed by its position,
  with typed columns for what queries filter on and ``row``, every other field packed as
  twelve little-endian int64 and three float64 (``STAGE_ROW``/``RECORD_ROW``); indexes on
  a stage's start and on the positions of failed records;
- ``traces``: record trace texts; a MetaSchedule trace (``[instructions, decisions]``) is
  split after its instruction list, which is stored once in ``trace_heads`` and referred to
  by ``head``, so each record keeps only its decisions (``split_trace``); a trace is
  ``head text || trace`` (``TRACE_TEXT``);
- ``job_task_events``: job and task events as canonical JSON;
- ``names``: the distinct texts of low-cardinality fields, held elsewhere as integer ids;
- ``seq_runs``: which ``seq`` values each source has stored, as runs of consecutive
  integers (see ``_seq_runs``): the idempotence check by ``(source, seq)``.

Schema version 2 had no ``trace_heads`` and kept every trace whole; ``upgrade_from_2`` adds
the table and the (empty) ``head`` column, so its traces stay whole.

Schema version 1 kept every event twice: a journal row in ``events`` (with a
``UNIQUE (source, seq)`` index) beside its typed row. ``upgrade_from_1`` rewrites such a file
in place inside the caller's transaction, so an interrupted upgrade leaves it as it was.
``upgrade`` runs the steps from any older version.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator

import numpy as np

SCHEMA_VERSION = 3
MAX_STAGE_SECS = "max_stage_secs"  # meta key: the longest stage stored so far

_META_NAMES_TRACES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value);
CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE traces (pos INTEGER PRIMARY KEY, trace TEXT NOT NULL);
"""
_TRACE_HEADS = "CREATE TABLE trace_heads (id INTEGER PRIMARY KEY, head TEXT NOT NULL)"
_TRACES_HEAD_COLUMN = "ALTER TABLE traces ADD COLUMN head INTEGER"
# A record's whole trace text, from ``traces t``.
TRACE_TEXT = (
    "CASE WHEN t.head IS NULL THEN t.trace "
    "ELSE (SELECT h.head FROM trace_heads h WHERE h.id = t.head) || t.trace END"
)
# A MetaSchedule trace in the compact JSON TVM writes: ``[[instructions...],[decisions...]]``;
# the head is what precedes the decisions. Shorter heads are not worth a row of their own.
MS_TRACE_START = "[[["
_DECISIONS_START = "]],[["
_MIN_HEAD_CHARS = 200
_SEQ_RUNS = """
CREATE TABLE seq_runs (
    source INTEGER NOT NULL,
    lo INTEGER NOT NULL,
    hi INTEGER NOT NULL,
    PRIMARY KEY (source, lo)
) WITHOUT ROWID
"""
# Float columns are declared without a type: REAL affinity would store -0.0 as integer 0.
_STAGES = """
CREATE TABLE {name} (
    pos INTEGER PRIMARY KEY,
    job INTEGER NOT NULL,
    task INTEGER NOT NULL,
    resource INTEGER NOT NULL,
    start NOT NULL,
    "end" NOT NULL,
    error TEXT,
    row BLOB NOT NULL
)"""
_RECORDS = """
CREATE TABLE {name} (
    pos INTEGER PRIMARY KEY,
    job INTEGER NOT NULL,
    task INTEGER NOT NULL,
    error TEXT,
    run_secs BLOB,
    row BLOB NOT NULL
)"""
_JOB_TASK_EVENTS = """
CREATE TABLE job_task_events (
    pos INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    job INTEGER NOT NULL,
    task INTEGER,
    body TEXT NOT NULL
);
CREATE INDEX job_task_events_kind ON job_task_events (kind, job);
"""
_STAGES_INDEX = "CREATE INDEX stages_start ON stages (start)"
# The few failed candidates, without scanning every record for them.
_RECORDS_INDEX = "CREATE INDEX records_failed ON records (pos) WHERE error IS NOT NULL"

# The packed ``row`` of a stage and of a record (name ids: 0 stands for None).
_INT, _FLOAT = "<i8", "<f8"
STAGE_ROW = np.dtype([
    ("pos", _INT), ("source", _INT), ("seq", _INT), ("clock", _INT), ("job", _INT),
    ("task", _INT), ("iteration", _INT), ("stage", _INT), ("resource", _INT),
    ("status", _INT), ("candidates", _INT), ("has_candidates", _INT),
    ("start", _FLOAT), ("end", _FLOAT), ("ts", _FLOAT),
])  # fmt: skip
RECORD_ROW = np.dtype([
    ("pos", _INT), ("source", _INT), ("seq", _INT), ("clock", _INT), ("job", _INT),
    ("task", _INT), ("iteration", _INT), ("has_iteration", _INT), ("candidate", _INT),
    ("workload_hash", _INT), ("error_class", _INT), ("origin", _INT),
    ("ts", _FLOAT), ("mean_secs", _FLOAT), ("predicted", _FLOAT),  # NaN: None
])  # fmt: skip
ROW = struct.Struct("<12q3d")  # the layout of both dtypes above
_ROW_V1 = struct.Struct("<11q3d")  # schema 1: the same without ``seq``


def create(conn: sqlite3.Connection) -> None:
    """Create every table of the current schema in an empty database (inside a transaction)."""
    for script in (_META_NAMES_TRACES, _TRACE_HEADS, _TRACES_HEAD_COLUMN, _SEQ_RUNS,
                   _STAGES.format(name="stages"), _STAGES_INDEX, _RECORDS.format(name="records"),
                   _RECORDS_INDEX, _JOB_TASK_EVENTS):  # fmt: skip
        _run(conn, script)
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [("schema_version", SCHEMA_VERSION), (MAX_STAGE_SECS, 0.0)],
    )


def trace_cut(trace: str) -> int:
    """Where a MetaSchedule trace in the compact JSON form is split (``split_trace``):
    the length of its head, or 0 when it is kept whole."""
    if not trace.startswith(MS_TRACE_START):
        return 0
    cut = trace.rfind(_DECISIONS_START) + 2
    return cut if cut >= _MIN_HEAD_CHARS else 0


def split_trace(trace: str) -> tuple[str, str] | None:
    """(head, rest) of a MetaSchedule trace in the compact JSON form, split where its
    decisions start (``head + rest == trace``); None for any other text or a short head.

    Any split point would read back the same text; this one makes the heads of records
    sharing an instruction list equal, so that it is stored once.
    """
    cut = trace_cut(trace)
    return (trace[:cut], trace[cut:]) if cut else None


def upgrade(conn: sqlite3.Connection, version: int) -> None:
    """Rewrite a store of an older schema ``version`` to the current one (inside the
    caller's transaction)."""
    if version == 1:
        upgrade_from_1(conn)
    upgrade_from_2(conn)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))


def upgrade_from_2(conn: sqlite3.Connection) -> None:
    """Add the trace heads to a schema-2 store: its traces stay whole (no head)."""
    _run(conn, _TRACE_HEADS)
    _run(conn, _TRACES_HEAD_COLUMN)


def upgrade_from_1(conn: sqlite3.Connection) -> None:
    """Rewrite a schema-1 store to schema 2 (inside the caller's transaction).

    The journal's ``(source, seq)`` pairs become runs, job and task events move to their
    own table, and each packed stage and record row gains its ``seq``.
    """
    _run(conn, _SEQ_RUNS)
    conn.executemany("INSERT INTO seq_runs (source, lo, hi) VALUES (?, ?, ?)", _journal_runs(conn))
    _run(conn, _JOB_TASK_EVENTS)
    conn.execute(
        "INSERT INTO job_task_events (pos, kind, job, task, body) "
        "SELECT pos, kind, job, task, body FROM events WHERE kind IN ('job', 'task')"
    )
    conn.create_function("tuneloom_row_with_seq", 2, _row_with_seq, deterministic=True)
    try:
        for table, ddl, columns in (
            ("stages", _STAGES, 'job, task, resource, start, "end", error'),
            ("records", _RECORDS, "job, task, error, run_secs"),
        ):
            old_columns = ", ".join(f"t.{c}" for c in columns.split(", "))
            conn.execute(ddl.format(name=f"{table}_v2"))
            conn.execute(
                f"INSERT INTO {table}_v2 (pos, {columns}, row) "
                f"SELECT t.pos, {old_columns}, tuneloom_row_with_seq(t.row, e.seq) "
                f"FROM {table} t JOIN events e ON e.pos = t.pos ORDER BY t.pos"
            )
            conn.execute(f"DROP TABLE {table}")
            conn.execute(f"ALTER TABLE {table}_v2 RENAME TO {table}")
    finally:
        conn.create_function("tuneloom_row_with_seq", 2, None)
    _run(conn, _STAGES_INDEX)
    _run(conn, _RECORDS_INDEX)
    conn.execute("DROP TABLE events")


def _journal_runs(conn: sqlite3.Connection) -> Iterator[tuple[int, int, int]]:
    """(source, lo, hi) runs of a schema-1 journal, read in index order."""
    rows = conn.execute("SELECT source, seq FROM events ORDER BY source, seq")
    source = lo = hi = None
    for src, seq in rows:
        if src == source and seq == hi + 1:  # type: ignore[operator]
            hi = seq
            continue
        if source is not None:
            yield source, lo, hi  # type: ignore[misc]
        source, lo, hi = src, seq, seq
    if source is not None:
        yield source, lo, hi  # type: ignore[misc]


def _row_with_seq(row: bytes, seq: int) -> bytes:
    values = _ROW_V1.unpack(row)
    return ROW.pack(values[0], values[1], seq, *values[2:])


def _run(conn: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)
