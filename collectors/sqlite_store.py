"""SQLiteStore: the embedded default store, one SQLite file in WAL mode.

Each event is stored once, in the table of its kind (layout: ``_sqlite_schema``): stages
and records as narrow rows whose fields are packed into one blob, so a typed query fetches
one blob per row and decodes whole columns with numpy; job and task events as canonical
JSON. Low-cardinality texts (source, clock, job, task, stage, resource, status, workload
hash, error class, origin) are stored once in ``names`` and referred to by id.

Every field is kept losslessly (floats as float64; missing numbers flagged, not guessed),
so ``read`` and ``record`` rebuild the exact event, and ``to_json`` of it gives the
canonical JSON.

Positions are assigned store-wide in append order. Idempotence by ``(source, seq)`` is kept
by ``seq_runs``: per source, the runs of consecutive seqs stored. Producers number their
events 0, 1, 2, ..., so checking a batch costs one small query per source in it instead of
a unique-index entry per event (the one cost schema 1 paid twice per event).

Several processes may append to one file at once: each batch is one ``BEGIN IMMEDIATE``
transaction and a busy timeout makes writers wait their turn.

A file is only written after its header says it is a tuneloom store this build reads (or
it is missing or empty); anything else raises ``StoreError`` and leaves the file
byte-for-byte as it was. A store of an older schema version (1 or 2) is upgraded in place,
in one transaction, when opened for writing. Opened read-only, a schema-2 store is read as
it is (its traces are whole: schema 3 only added the shared trace heads); a schema-1 store
is refused with a message saying so, and left untouched.
"""

from __future__ import annotations

import functools
import math
import os
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collectors import _frames, _seq_runs
from collectors._base import BaseStore, RecordTrace, Stored, StoreError
from collectors._sqlite_checkpoint import WAL_LIMIT_PAGES, BackgroundCheckpointer
from collectors._sqlite_schema import (
    MAX_STAGE_SECS,
    MS_TRACE_START,
    RECORD_ROW,
    ROW,
    SCHEMA_VERSION,
    STAGE_ROW,
    TRACE_TEXT,
    create,
    trace_cut,
    upgrade,
)
from collectors.events import (
    Event,
    GraphEvent,
    JobEvent,
    MemoryEvent,
    ProfileEvent,
    RecordEvent,
    ResourceEvent,
    StageEvent,
    TaskEvent,
    from_json,
    mean_secs_of,
)
from collectors.record_fields import RECORD_FIELDS

APPLICATION_ID = 0x544C4F4D  # "TLOM" in the SQLite header: marks a file as a tuneloom store
STORE_SCHEMA_VERSION = SCHEMA_VERSION  # PRAGMA user_version of the layout written
READABLE_SCHEMA_VERSION = 2  # the oldest layout read as it is (read-only, never upgraded)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_DEFAULT_BUSY_TIMEOUT_S = 60.0
_PAGE_SIZE = 8192  # measured ~10% cheaper appends than the default 4096
# WAL pages before an automatic checkpoint (SQLite's default is 1000): fewer, larger
# checkpoints write a page changed by several batches once.
_WAL_AUTOCHECKPOINT = 4096
_INT64_MAX = 2**63 - 1
_READER_CACHE_KIB = 65536  # page cache of each reading connection (64 MiB)
_WRITER_CACHE_KIB = 8192  # and of the writing one: appends touch the last pages only

__all__ = ["APPLICATION_ID", "RECORD_ROW", "STAGE_ROW", "STORE_SCHEMA_VERSION", "SQLiteStore"]

# The inserts of each table's rows: the columns, then one row's values. Python 3.11's sqlite3
# binds None and bytes through its adapter lookup, which formats an AttributeError each time
# (~0.4 us a value, four values of every record); it binds exact ints, floats, text and
# bytearrays directly. So blobs are bound as bytearrays, and a value that may be NULL as the
# integer 0 in its place (``NULLIF(?,0)``: never equal to text, a blob or a head id). One
# insert per table keeps the rows in position order: their B-trees are only appended to.
_INSERT_STAGE = (
    'INSERT INTO stages (pos, job, task, resource, start, "end", error, row) VALUES ',
    "(?,?,?,?,?,?,NULLIF(?,0),?)",
)
_INSERT_RECORD = (
    "INSERT INTO records (pos, job, task, error, run_secs, row) VALUES ",
    "(?,?,?,NULLIF(?,0),NULLIF(?,0),?)",
)
_INSERT_TRACE = ("INSERT INTO traces (pos, trace, head) VALUES ", "(?,?,NULLIF(?,0))")
_NULL = 0  # what stands for NULL in an insert's ``NULLIF(?,0)``
_INSERT_TRACE_HEAD = "INSERT INTO trace_heads (id, head) VALUES (?,?)"
_NEXT_TRACE_HEAD = "SELECT ifnull(max(id), 0) + 1 FROM trace_heads"
_INSERT_JOB_TASK = "INSERT INTO job_task_events VALUES (?,?,?,?,?)"
_NAN = math.nan

_LAST_POS = (
    "SELECT max(ifnull((SELECT max(pos) FROM stages), 0), "
    "ifnull((SELECT max(pos) FROM records), 0), "
    "ifnull((SELECT max(pos) FROM job_task_events), 0))"
)
# The run holding or preceding ``lo`` and every later run starting at or before ``hi``.
_RUNS_IN_WINDOW = (
    "SELECT lo, hi FROM seq_runs WHERE source = ?1 AND lo <= ?3 AND lo >= ifnull("
    "(SELECT lo FROM seq_runs WHERE source = ?1 AND lo <= ?2 ORDER BY lo DESC LIMIT 1), ?2) "
    "ORDER BY lo"
)
_LAST_RUN = "SELECT lo, hi FROM seq_runs WHERE source = ? ORDER BY lo DESC LIMIT 1"
_DELETE_RUN = "DELETE FROM seq_runs WHERE source = ? AND lo = ?"
_INSERT_RUN = "INSERT INTO seq_runs (source, lo, hi) VALUES (?, ?, ?)"


# What ``read`` and ``record`` select from each table: pos, kind, row, error, run_secs, text
# (a record's trace, or a job or task event's JSON).
def _read_arms(trace_text: str) -> dict[str, str]:
    return {
        "stage": "SELECT pos, 'stage', row, error, NULL, NULL FROM stages",
        "record": (
            f"SELECT r.pos, 'record', r.row, r.error, r.run_secs, {trace_text} FROM records r "
            "LEFT JOIN traces t ON t.pos = r.pos"
        ),
        "job_task": "SELECT pos, kind, NULL, NULL, NULL, body FROM job_task_events",
    }


_READ_ARMS = _read_arms(TRACE_TEXT)
# A schema-2 store (read-only: it is never upgraded then) keeps every trace whole.
_WHOLE_TRACE_TEXT = "t.trace"
_READ_POS = {"stage": "pos", "record": "r.pos", "job_task": "pos"}
_READ_NAME_COLUMNS = {"stage": "", "record": "r.", "job_task": ""}

_seq = attrgetter("seq")
_source = attrgetter("source")
_stage_fields = attrgetter(
    "source", "seq", "ts", "clock", "job", "task", "iteration", "stage", "resource",
    "start", "end", "status", "error", "candidates",
)  # fmt: skip
_record_fields = attrgetter(*RECORD_FIELDS)  # a record's fields tuple, less its mean_secs
_RECORD_NAMES = ("source", "clock", "job", "task", "workload_hash", "error_class", "origin")
_NAMED_FIELDS = {
    StageEvent: attrgetter("source", "clock", "job", "task", "stage", "resource", "status"),
    RecordEvent: attrgetter(*_RECORD_NAMES),
    JobEvent: attrgetter("source", "job"),
    TaskEvent: attrgetter("source", "job", "task"),
    ProfileEvent: attrgetter("source", "job"),
    GraphEvent: attrgetter("source", "job"),
    MemoryEvent: attrgetter("source", "job"),
    ResourceEvent: attrgetter("source", "job"),
}
# ... and of a record's fields tuple (``record_fields``)
_NAMES_OF = {**_NAMED_FIELDS, tuple: itemgetter(*map(RECORD_FIELDS.index, _RECORD_NAMES))}


def _any_seq(e: Any) -> int:
    return e[1] if type(e) is tuple else e.seq  # type: ignore[no-any-return]


def _any_source(e: Any) -> str:
    return e[0] if type(e) is tuple else e.source  # type: ignore[no-any-return]


# Kinds kept as JSON text in ``job_task_events``: job and task events and the kinds added
# to v1 later. ``read`` selects only these by name, so a kind this build does not know is
# never decoded.
_JSON_KINDS = ("job", "task", "profile", "graph", "memory", "resource")


class SQLiteStore(BaseStore):
    """Events in one SQLite file (created when missing or empty).

    ``read_only=True`` opens an existing store for viewing: nothing is written, and
    ``append`` raises StoreError. Safe to share between threads: writes go through one
    connection under a lock, reads use a small pool of connections (WAL lets them run
    while a write is in progress).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        busy_timeout: float = _DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._busy_timeout = busy_timeout
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._closed = False
        self._writer: sqlite3.Connection | None = None
        self._checkpointer: BackgroundCheckpointer | None = None
        self._names = _Names()
        self._heads = _TraceHeads()
        self._trace_text = TRACE_TEXT
        self._read_arms = _READ_ARMS
        exists = _inspect(self.path, read_only=read_only)
        if read_only:
            if not exists:
                raise StoreError(f"{self.path}: no tuneloom store there to open read-only")
            with self._reading() as conn:
                if _check_identity(conn, self.path, read_only=True) < 3:
                    self._trace_text = _WHOLE_TRACE_TEXT
                    self._read_arms = _read_arms(_WHOLE_TRACE_TEXT)
            return
        self._writer = self._connect(read_only=False)
        try:
            _prepare(self._writer, self.path)
        except BaseException:
            self.close()
            raise

    # --- writing -----------------------------------------------------------------------

    def append(self, events: Iterable[Event]) -> list[Stored]:
        """Store events in one transaction; returns the newly stored ones with positions."""
        first, new = self._store(list(events))
        return list(map(_stored, range(first, first + len(new)), new))

    def append_counting(self, events: Iterable[Event]) -> int:
        """``append`` that returns only how many events were new."""
        return len(self._store(list(events))[1])

    def append_imported(self, items: Iterable[Event | tuple[Any, ...]]) -> int:
        """``append_counting`` of an importer's batch: events, and records as tuples of
        their fields (``record_fields``), stored as those records' events would be."""
        return len(self._store(list(items), fields=True)[1])

    def _store(self, batch: list[Any], *, fields: bool = False) -> tuple[int, list[Any]]:
        """Store ``batch`` in one transaction: the position of the first new event, and the
        new events (stored at the following positions, in order). ``fields``: the batch
        may hold records as fields tuples."""
        conn = self._writable()
        if not batch:
            return 0, []
        sources = set()
        for e in batch:
            if type(e) is tuple and fields:
                sources.add(e[0])
            elif type(e) not in _NAMED_FIELDS:
                raise TypeError(f"append takes events, got {type(e).__name__}")
            else:
                sources.add(e.source)
        if self._checkpointer is not None:
            self._checkpointer.catch_up()
        with self._write_lock:
            fresh: dict[str, int] = {}
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    with _frames.gc_paused():
                        heads = self._heads.batch(conn)
                        first, new, fresh = _append(
                            conn, batch, sources, self._names, heads, fields=fields
                        )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except (struct.error, OverflowError) as exc:
                raise StoreError(
                    f"{self.path}: cannot append (an integer field does not fit in 64 bits: "
                    f"{exc}); nothing from this batch was stored"
                ) from exc
            except UnicodeEncodeError as exc:
                raise StoreError(
                    f"{self.path}: cannot append (text with a lone surrogate: {exc.reason}); "
                    "nothing from this batch was stored"
                ) from exc
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot append ({exc})") from exc
            self._names.committed(fresh)
            self._heads.committed(heads)
        if self._checkpointer is not None:
            self._checkpointer.poke()
        return first, new

    @contextmanager
    def appending_in_bulk(self) -> Iterator[None]:
        """While inside, the WAL is checkpointed by a thread of its own after each append
        instead of by the appending one (``_sqlite_checkpoint``); what is stored and how
        durably is the same."""
        conn = self._writable()
        if self._checkpointer is not None:  # already inside
            yield
            return
        checkpointer = BackgroundCheckpointer(self.path, self._busy_timeout)
        with self._write_lock:
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_LIMIT_PAGES}")
        self._checkpointer = checkpointer
        try:
            yield
        finally:
            self._checkpointer = None
            checkpointer.stop()
            with self._write_lock, suppress(sqlite3.Error):
                conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT}")

    # --- reading -----------------------------------------------------------------------

    def read(
        self,
        after: int = 0,
        *,
        kinds: Sequence[str] | None = None,
        job: str | None = None,
        task: str | None = None,
        limit: int | None = None,
    ) -> list[Stored]:
        """Events with position > ``after`` in position order, optionally filtered."""
        wanted = None if kinds is None else set(kinds)
        if wanted is not None and not wanted:
            return []
        if limit is not None and limit <= 0:
            return []
        with self._snapshot() as conn:
            codes: dict[str, int] = {}
            for column, name in (("job", job), ("task", task)):
                if name is not None:
                    code = self._names.code(conn, name)
                    if code is None:
                        return []
                    codes[column] = code
            arms, params = [], []
            for arm, kinds_here in (("stage", ("stage",)), ("record", ("record",)),
                                    ("job_task", _JSON_KINDS)):  # fmt: skip
                chosen = [k for k in kinds_here if wanted is None or k in wanted]
                if not chosen:
                    continue
                prefix = _READ_NAME_COLUMNS[arm]
                where = [f"{_READ_POS[arm]} > ?"]
                params.append(after)
                if arm == "job_task":
                    where.append(f"kind IN ({', '.join('?' * len(chosen))})")
                    params.extend(chosen)
                for column, code in codes.items():
                    where.append(f"{prefix}{column} = ?")
                    params.append(code)
                arms.append(f"{self._read_arms[arm]} WHERE {' AND '.join(where)}")
            if not arms:
                return []
            sql = " UNION ALL ".join(arms) + " ORDER BY 1"
            if limit is not None:
                sql += " LIMIT ?"
                params.append(limit)
            rows = _fetch(conn, sql, params)
            text = self._names.texts(conn)
        return [Stored(row[0], _decode(row, text)) for row in rows]

    def last_pos(self) -> int:
        """Position of the newest stored event, 0 when empty."""
        with self._reading() as conn:
            return conn.execute(_LAST_POS).fetchone()[0]

    def max_seq(self, source: str) -> int:
        """Highest ``seq`` stored for ``source``, -1 when it has none."""
        with self._reading() as conn:
            code = self._names.code(conn, source)
            if code is None:
                return -1
            found = conn.execute(_LAST_RUN, (code,)).fetchone()
        return -1 if found is None else found[1]

    def stage_intervals(
        self,
        *,
        job: str | Sequence[str] | None = None,
        task: str | None = None,
        resource: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> pd.DataFrame:
        """Stage events as intervals; ``start``/``end`` keep those overlapping the window.

        An interval overlaps when ``interval.end >= start`` and ``interval.start <= end``.
        """
        with self._snapshot() as conn:
            where, params = self._name_filters(conn, job=job, task=task, resource=resource)
            if where is None:
                return _frames.stage_frame([])
            if start is not None:
                longest = conn.execute(
                    "SELECT value FROM meta WHERE key = ?", (MAX_STAGE_SECS,)
                ).fetchone()
                # A stage ending at or after ``start`` began at most ``longest`` earlier;
                # the extra second absorbs rounding, the exact test follows.
                where.append('start >= ? AND "end" >= ?')
                params += [start - (longest[0] if longest else 0.0) - 1.0, start]
            if end is not None:
                where.append("start <= ?")
                params.append(end)
            packed, errors = _fetch_packed(conn, "stages", where, params, STAGE_ROW)
            names = self._names.lookup(conn)
        column = _columns(packed, names)
        return _frames.stage_frame_from_columns({
            name: column(name)
            for name in ("pos", "source", "clock", "job", "task", "iteration", "stage",
                         "resource", "start", "end", "status")
        } | {
            "error": errors,
            "candidates": pd.arrays.IntegerArray(
                column("candidates"), column("has_candidates") == 0
            ),
        })  # fmt: skip

    def records(
        self, *, job: str | Sequence[str] | None = None, task: str | None = None
    ) -> pd.DataFrame:
        """Measured candidates in position order, without trace text."""
        with self._snapshot() as conn:
            where, params = self._name_filters(conn, job=job, task=task)
            if where is None:
                return _frames.record_frame([])
            packed, errors = _fetch_packed(conn, "records", where, params, RECORD_ROW)
            names = self._names.lookup(conn)
        column = _columns(packed, names)
        return _frames.record_frame_from_columns({
            name: column(name)
            for name in ("pos", "source", "clock", "ts", "job", "task", "candidate",
                         "workload_hash", "mean_secs", "error_class", "predicted", "origin")
        } | {
            "iteration": pd.arrays.IntegerArray(
                column("iteration"), column("has_iteration") == 0
            ),
            "error": errors,
        })  # fmt: skip

    def record(self, pos: int) -> Event | None:
        """The full event at a position (trace text included), or None."""
        with self._snapshot() as conn:
            rows = []
            for arm in self._read_arms:
                sql = f"{self._read_arms[arm]} WHERE {_READ_POS[arm]} = ?"
                rows = conn.execute(sql, (pos,)).fetchall()
                if rows:
                    break
            if not rows:
                return None
            text = self._names.texts(conn)
        return _decode(rows[0], text)

    def jobs(self) -> pd.DataFrame:
        """Current state of each job, replayed from its job events."""
        with self._reading() as conn:
            rows = _fetch(
                conn, "SELECT pos, body FROM job_task_events WHERE kind = 'job' ORDER BY pos", ()
            )
        return _frames.jobs_frame(Stored(pos, from_json(body)) for pos, body in rows)

    def tasks(self, *, job: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Registered tasks; the latest task event per (job, task)."""
        with self._reading() as conn:
            where, params = self._name_filters(conn, job=job)
            if where is None:
                return _frames.tasks_frame([])
            where.append("kind = 'task'")
            rows = _fetch(
                conn, _select("SELECT pos, body FROM job_task_events", where) + " ORDER BY pos",
                params,
            )  # fmt: skip
        return _frames.tasks_frame(Stored(pos, from_json(body)) for pos, body in rows)

    def close(self) -> None:
        """Close every connection; the WAL is checkpointed when the last one closes."""
        with self._pool_lock:
            self._closed = True
            conns, self._all, self._idle = self._all, [], []
        # The writer last: the last connection to close checkpoints the WAL into the file,
        # which a read-only connection cannot do.
        conns.sort(key=lambda conn: conn is self._writer)
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()

    def __repr__(self) -> str:
        mode = ", read_only=True" if self.read_only else ""
        return f"SQLiteStore({str(self.path)!r}{mode})"

    # --- helpers -----------------------------------------------------------------------

    def _name_filters(
        self,
        conn: sqlite3.Connection,
        *,
        job: str | Sequence[str] | None = None,
        task: str | None = None,
        resource: str | None = None,
    ) -> tuple[list[str] | None, list[Any]]:
        """SQL terms for name filters; ``None`` terms when a name was never stored."""
        where: list[str] = []
        params: list[Any] = []
        jobs = _frames.job_filter(job)
        if jobs is not None:
            codes = [c for c in (self._names.code(conn, j) for j in sorted(jobs)) if c]
            if not codes:
                return None, []
            where.append(f"job IN ({','.join('?' * len(codes))})")
            params += codes
        for column, name in (("task", task), ("resource", resource)):
            if name is not None:
                code = self._names.code(conn, name)
                if code is None:
                    return None, []
                where.append(f"{column} = ?")
                params.append(code)
        return where, params

    def _connect(self, *, read_only: bool) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"{self.path}: store is closed")
        try:
            if read_only:
                conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                    timeout=self._busy_timeout, isolation_level=None, check_same_thread=False,
                )  # fmt: skip
            else:
                conn = sqlite3.connect(
                    self.path, timeout=self._busy_timeout, isolation_level=None,
                    check_same_thread=False,
                )  # fmt: skip
            # Readers scan whole tables; the writer only touches the last pages of each table.
            cache_kib = _READER_CACHE_KIB if read_only else _WRITER_CACHE_KIB
            conn.execute(f"PRAGMA cache_size = -{cache_kib}")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open ({exc})") from exc
        with self._pool_lock:
            self._all.append(conn)
        return conn

    def _writable(self) -> sqlite3.Connection:
        if self.read_only or self._writer is None:
            raise StoreError(f"{self.path}: store is open read-only")
        if self._closed:
            raise StoreError(f"{self.path}: store is closed")
        return self._writer

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A reading connection inside one read transaction: every query sees the same
        committed state."""
        with self._reading() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect(read_only=True)
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read ({exc})") from exc
        finally:
            with self._pool_lock:
                if not self._closed:
                    self._idle.append(conn)

    def record_traces(self, job: str, task: str, after: int = 0) -> list[RecordTrace]:
        """The task's measured candidates in one job after position ``after``, in position
        order, with their traces: one query, no event rebuilt."""
        with self._snapshot() as conn:
            job_id, task_id = self._names.code(conn, job), self._names.code(conn, task)
            if job_id is None or task_id is None:
                return []
            rows = _fetch(
                conn,
                f"SELECT r.pos, r.row, r.error, {self._trace_text} FROM records r "
                "LEFT JOIN traces t ON t.pos = r.pos "
                "WHERE r.job = ? AND r.task = ? AND r.pos > ? ORDER BY r.pos",
                (job_id, task_id, after),
            )
            text = self._names.texts(conn)
        packed = np.frombuffer(b"".join(row[1] for row in rows), dtype=RECORD_ROW)
        return [
            RecordTrace(pos, None if secs != secs else secs, error, text[origin], trace)
            for (pos, _, error, trace), secs, origin in zip(
                rows, packed["mean_secs"].tolist(), packed["origin"].tolist(), strict=True
            )
        ]


class _TraceHeads:
    """The ``trace_heads`` table's heads known to this process (at most ``_HEADS_CACHED``;
    a head missing here is stored again under a new id, which reads the same). Heads added
    by a transaction are known once it commits.

    Heads are found by their last characters, then compared in full with the trace's
    start, so that a known head costs no hash of its whole text.
    """

    def __init__(self) -> None:
        self._known: _HeadIndex = {}
        self._count = 0

    def batch(self, conn: sqlite3.Connection) -> _HeadBatch:
        """The heads of one write transaction (call inside it)."""
        return _HeadBatch(self._known, conn)

    def committed(self, batch: _HeadBatch) -> None:
        """Know the heads added by a transaction that has committed."""
        if not batch.rows:
            return
        if self._count + len(batch.rows) > _HEADS_CACHED:
            self._known, self._count = {}, 0
        for key, entries in batch.fresh.items():
            self._known.setdefault(key, []).extend(entries)
        self._count += len(batch.rows)


# a head's last characters -> [(head, id)]
_HeadIndex = dict[str, list[tuple[str, int]]]
_HEAD_KEY_CHARS = 32


class _HeadBatch:
    """Ids of the trace heads one transaction writes: known ones, and new ones (``rows``)
    numbered after the largest stored id."""

    __slots__ = ("_conn", "_next", "fresh", "known", "rows")

    def __init__(self, known: _HeadIndex, conn: sqlite3.Connection) -> None:
        self.known = known
        self.fresh: _HeadIndex = {}
        self.rows: list[tuple[int, str]] = []
        self._conn = conn
        self._next = 0

    def id_of(self, trace: str, cut: int) -> int:
        """The id of the head ``trace[:cut]``: a known one, this transaction's, or new."""
        key = trace[cut - _HEAD_KEY_CHARS : cut]
        entries = self.known.get(key)
        if entries is not None:
            for head, code in entries:
                if len(head) == cut and trace.startswith(head):
                    return code
        entries = self.fresh.setdefault(key, [])
        for head, code in entries:
            if len(head) == cut and trace.startswith(head):
                return code
        if not self._next:
            self._next = self._conn.execute(_NEXT_TRACE_HEAD).fetchone()[0]
        code = self._next
        self._next += 1
        head = trace[:cut]
        entries.append((head, code))
        self.rows.append((code, head))
        return code


_HEADS_CACHED = 4096


class _Names:
    """The ``names`` table, cached both ways. Ids are never changed or reused, so cached
    entries stay valid; names added by a transaction are cached once it commits."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ids: dict[str | None, int | None] = {None: None}
        self._texts: list[str | None] = [None]  # index = id; id 0 is never used
        self._lookup: Any = None  # ``_texts`` as a pandas text array, built on demand

    @property
    def ids(self) -> dict[str | None, int | None]:
        """The committed names known to this process (read-only for callers)."""
        return self._ids

    def ids_for(
        self,
        conn: sqlite3.Connection,
        wanted: set[str | None],
        pending: dict[str, int] | None = None,
    ) -> tuple[dict[str | None, int | None], dict[str, int]]:
        """Ids of ``wanted`` names, adding missing ones (call inside the write transaction;
        ``pending``: the names it added already, which are not cached before it commits).

        Returns the mapping to use and every name this transaction added.
        """
        pending = pending or {}
        with self._lock:
            if all(w in self._ids or w in pending for w in wanted):
                return {**self._ids, **pending} if pending else self._ids, pending
            self._load(conn, below=min(pending.values(), default=None))
            missing = sorted(w for w in wanted if w not in self._ids and w not in pending)
            if not missing:
                return {**self._ids, **pending} if pending else self._ids, pending
            first = conn.execute("SELECT ifnull(max(id), 0) FROM names").fetchone()[0] + 1
            conn.executemany("INSERT INTO names (name) VALUES (?)", [(m,) for m in missing])
            fresh = pending | dict(zip(missing, range(first, first + len(missing)), strict=True))
            return {**self._ids, **fresh}, fresh

    def committed(self, fresh: dict[str, int]) -> None:
        """Cache names added by a transaction that has committed."""
        if not fresh:
            return
        with self._lock:
            for name, code in sorted(fresh.items(), key=itemgetter(1)):
                if code == len(self._texts):  # else a reader loaded it already
                    self._ids[name] = code
                    self._texts.append(name)
            self._lookup = None

    def code(self, conn: sqlite3.Connection, name: str) -> int | None:
        """The id of a stored name, or None when it was never stored."""
        code = self._ids.get(name)
        if code is None:
            self._load(conn)
            code = self._ids.get(name)
        return code

    def texts(self, conn: sqlite3.Connection) -> list[str | None]:
        """Names by id (index 0 -> None), covering every name stored before this call."""
        self._load(conn)
        return self._texts

    def lookup(self, conn: sqlite3.Connection) -> Any:
        """``texts`` as a pandas text array (missing for id 0), for mapping whole columns of
        ids with ``take``: the names are checked once, not once per row."""
        self._load(conn)
        with self._lock:
            if self._lookup is None or len(self._lookup) != len(self._texts):
                self._lookup = pd.array(self._texts, dtype=_frames.TEXT)
            return self._lookup

    def _load(self, conn: sqlite3.Connection, below: int | None = None) -> None:
        """Cache the names stored after the cached ones; ``below``: only those with a smaller
        id (the ones from there on are the open transaction's, not committed yet)."""
        with self._lock:
            known = len(self._texts) - 1
            rows = conn.execute(
                "SELECT id, name FROM names WHERE id > ? AND id < ? ORDER BY id",
                (known, _INT64_MAX if below is None else below),
            ).fetchall()
            if not rows:
                return
            for code, name in rows:
                if code != len(self._texts):
                    raise StoreError(f"damaged store: names table skips to id {code}")
                self._ids[name] = code
                self._texts.append(name)
            self._lookup = None


# --- appending -------------------------------------------------------------------------


def _append(
    conn: sqlite3.Connection,
    batch: list[Event],
    sources: set[str],
    names: _Names,
    heads: _HeadBatch,
    *,
    fields: bool = False,
) -> tuple[int, list[Any], dict[str, int]]:
    """Store the new events of a batch inside an open transaction (``fields``: records may
    be fields tuples).

    Returns the position of the first, the new events (at the following positions), and
    the names this transaction added.
    """
    ids, fresh = names.ids_for(conn, sources)  # type: ignore[arg-type]
    new = _claim_new(conn, batch, ids, sources, fields=fields)
    if not new:
        return 0, [], fresh
    before = conn.execute(_LAST_POS).fetchone()[0]
    rows = _Rows()
    done = _encode(rows, new, before + 1, ids, heads)
    while done < len(new):  # an event uses a name no batch has used before
        wanted: set[str | None] = set()
        for e in new[done:]:
            wanted.update(_NAMES_OF[type(e)](e))
        ids, fresh = names.ids_for(conn, wanted, fresh)
        done += _encode(rows, new[done:], before + 1 + done, ids, heads)
    for insert, flat in ((_INSERT_STAGE, rows.stages), (_INSERT_RECORD, rows.records),
                         (_INSERT_TRACE, rows.traces)):  # fmt: skip
        if flat:
            _insert(conn, insert, flat)
    if rows.stages:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = ? AND value < ?",
            (rows.longest, MAX_STAGE_SECS, rows.longest),
        )
    if heads.rows:
        conn.executemany(_INSERT_TRACE_HEAD, heads.rows)
    if rows.job_task:
        conn.executemany(_INSERT_JOB_TASK, rows.job_task)
    return before + 1, new, fresh


def _insert(conn: sqlite3.Connection, insert: tuple[str, str], flat: list[Any]) -> None:
    """Run ``insert`` (the ``INSERT ... VALUES`` and one row's values) for every row of
    ``flat`` (the rows' values one after another), up to ``_ROWS_PER_INSERT`` rows a
    statement: SQLite then runs one statement for many rows instead of one per row (~15 %
    less time per record row, measured)."""
    width = insert[1].count("?")
    count = len(flat) // width
    whole = count - count % _ROWS_PER_INSERT
    if whole:
        step = width * _ROWS_PER_INSERT
        conn.executemany(
            _values_sql(insert, _ROWS_PER_INSERT),
            [flat[at : at + step] for at in range(0, whole * width, step)],
        )
    if whole < count:
        rest = flat[whole * width :]
        conn.executemany(
            _values_sql(insert, 1),
            [rest[at : at + width] for at in range(0, len(rest), width)],
        )


@functools.cache
def _values_sql(insert: tuple[str, str], count: int) -> str:
    columns, row = insert
    return columns + ",".join([row] * count)


_ROWS_PER_INSERT = 50  # at most 8 columns: 400 values, well within SQLite's limit


def _stored(pos: int, event: Event) -> Stored:
    """``Stored(pos, event)`` without the frozen dataclass's per-field ``__setattr__``
    (about 0.1 us less per appended event)."""
    item = _new_stored(Stored)
    _set_pos(item, pos)
    _set_event(item, event)
    return item


_new_stored = object.__new__
_set_pos = Stored.pos.__set__  # type: ignore[attr-defined]  # the slots' own setters
_set_event = Stored.event.__set__  # type: ignore[attr-defined]


def _claim_new(
    conn: sqlite3.Connection,
    batch: list[Event],
    ids: dict[str | None, int | None],
    sources: set[str],
    *,
    fields: bool = False,
) -> list[Any]:
    """The events of ``batch`` not stored yet (a repeated key counts once), in order;
    records their keys in ``seq_runs``. ``sources``: the batch's sources; ``fields``:
    records may be fields tuples."""
    seq_of, source_of = (_any_seq, _any_source) if fields else (_seq, _source)
    by_source: dict[int, list[int]] = {}
    if len(sources) == 1:
        by_source[ids[next(iter(sources))]] = list(map(seq_of, batch))  # type: ignore[index]
    else:
        for e in batch:
            source = ids[source_of(e)]
            seqs = by_source.get(source)  # type: ignore[arg-type]
            if seqs is None:
                seqs = by_source[source] = []  # type: ignore[index]
            seqs.append(seq_of(e))
    keep: dict[int, list[bool]] = {}
    for source, seqs in by_source.items():
        lo = min(seqs)
        last = conn.execute(_LAST_RUN, (source,)).fetchone()
        if seqs == list(range(lo, lo + len(seqs))) and (last is None or last[1] < lo):
            # The usual batch: consecutive seqs after every stored one, joining the last
            # run when adjacent to it.
            start = lo
            if last is not None and last[1] == lo - 1:
                conn.execute(_DELETE_RUN, (source, last[0]))
                start = last[0]
            conn.execute(_INSERT_RUN, (source, start, seqs[-1]))
            continue
        if _seq_runs.strictly_increasing_after(seqs, -1 if last is None else last[1]):
            # The usual case: every seq is beyond what is stored; only the last run can
            # be adjacent to the new ones.
            new_seqs = seqs
            window = [last] if last is not None and last[1] == lo - 1 else []
        else:
            hi = min(max(seqs) + 1, _INT64_MAX)
            window = [
                (a, b)
                for a, b in conn.execute(_RUNS_IN_WINDOW, (source, lo - 1, hi)).fetchall()
                if b >= lo - 1
            ]
            flags = keep[source] = _seq_runs.fresh(seqs, window)
            new_seqs = [s for s, f in zip(seqs, flags, strict=True) if f]
            if not new_seqs:
                continue
        merged = _seq_runs.merge([*window, *_seq_runs.runs_of(new_seqs)])
        conn.executemany(_DELETE_RUN, [(source, a) for a, _ in window])
        conn.executemany(_INSERT_RUN, [(source, a, b) for a, b in merged])
    if not keep:
        return batch
    flags_of = {source: iter(flags) for source, flags in keep.items()}
    return [
        e for e in batch
        if (it := flags_of.get(ids[source_of(e)])) is None or next(it)  # type: ignore[arg-type]
    ]  # fmt: skip


class _Rows:
    """The table rows of a batch, filled event by event: each insert's rows as one flat
    list of their values, the job and task rows as tuples."""

    __slots__ = ("job_task", "longest", "records", "stages", "traces")

    def __init__(self) -> None:
        self.stages: list[Any] = []
        self.records: list[Any] = []
        self.traces: list[Any] = []
        self.job_task: list[tuple[Any, ...]] = []
        self.longest = -1.0  # the longest stage, in seconds


def _encode(
    rows: _Rows,
    events: list[Event],
    first_pos: int,
    ids: dict[str | None, int | None],
    heads: _HeadBatch,
) -> int:
    """Add the rows of ``events``, stored at positions ``first_pos``, ``first_pos + 1``, ...;
    returns how many were added: fewer than all when one uses a name without an id."""
    pack = ROW.pack
    head_id = heads.id_of
    stage_rows, record_rows, trace_rows = rows.stages, rows.records, rows.traces
    longest = rows.longest
    pos = first_pos - 1
    try:
        for e in events:
            pos += 1
            cls = type(e)
            if cls is tuple or cls is RecordEvent:
                if cls is tuple:
                    (source, seq, ts, clock, job, task, iteration, candidate, workload_hash,
                     error, error_class, predicted, origin, run_secs, trace, mean) = e  # fmt: skip
                else:
                    (source, seq, ts, clock, job, task, iteration, candidate, workload_hash,
                     error, error_class, predicted, origin, run_secs, trace,
                     ) = _record_fields(e)  # fmt: skip
                    mean = mean_secs_of(run_secs)
                job, task = ids[job], ids[task]
                row = pack(
                    pos, ids[source], seq, ids[clock], job, task,
                    0 if iteration is None else iteration, iteration is not None, candidate,
                    ids[workload_hash] or 0, ids[error_class] or 0, ids[origin] or 0,
                    ts, _NAN if mean is None else mean, _NAN if predicted is None else predicted,
                )  # fmt: skip
                secs = (
                    _NULL if run_secs is None
                    else bytearray(_FLOAT_STRUCTS[len(run_secs)].pack(*run_secs))
                    if len(run_secs) < _MANY_FLOATS else bytearray(_pack_floats(run_secs))
                )  # fmt: skip
                record_rows += (
                    pos, job, task, _NULL if error is None else error, secs, bytearray(row)
                )  # fmt: skip
                if trace is not None:
                    if trace.startswith(MS_TRACE_START) and (cut := trace_cut(trace)):
                        trace_rows += pos, trace[cut:], head_id(trace, cut)
                    else:
                        trace_rows += pos, trace, _NULL
            elif cls is StageEvent:
                (source, seq, ts, clock, job, task, iteration, stage, resource, start, end,
                 status, error, candidates) = _stage_fields(e)  # fmt: skip
                job, task, resource = ids[job], ids[task], ids[resource]
                row = pack(
                    pos, ids[source], seq, ids[clock], job, task, iteration, ids[stage],
                    resource, ids[status], 0 if candidates is None else candidates,
                    candidates is not None, start, end, ts,
                )  # fmt: skip
                stage_rows += (
                    pos, job, task, resource, start, end, _NULL if error is None else error,
                    bytearray(row),
                )  # fmt: skip
                if end - start > longest:
                    longest = end - start
            else:
                task_id = ids[e.task] if cls is TaskEvent else None  # type: ignore[attr-defined]
                rows.job_task.append((pos, e.kind, ids[e.job], task_id, e.to_json()))
    except KeyError:  # raised before this event added any row
        pos -= 1
    rows.longest = longest
    return pos - first_pos + 1


_MANY_FLOATS = 17
_FLOAT_STRUCTS = [struct.Struct(f"<{n}d") for n in range(_MANY_FLOATS)]


def _pack_floats(values: tuple[float, ...]) -> bytes:
    if len(values) < len(_FLOAT_STRUCTS):
        return _FLOAT_STRUCTS[len(values)].pack(*values)
    return struct.pack(f"<{len(values)}d", *values)


def _unpack_floats(blob: bytes | None) -> tuple[float, ...] | None:
    if blob is None:
        return None
    return struct.unpack(f"<{len(blob) // 8}d", blob)


# --- reading ---------------------------------------------------------------------------


def _decode(row: Sequence[Any], text: list[str | None]) -> Event:
    """Rebuild the event of a ``_READ_ARMS`` row (validated like any new event)."""
    pos, kind, packed, error, run_secs, body = row
    if kind == "stage":
        (_, source, seq, clock, job, task, iteration, stage, resource, status, candidates,
         has_candidates, start, end, ts) = ROW.unpack(packed)  # fmt: skip
        return StageEvent(
            source=text[source], seq=seq, ts=ts, clock=text[clock], job=text[job],
            task=text[task], iteration=iteration, stage=text[stage], resource=text[resource],
            start=start, end=end, status=text[status], error=error,
            candidates=candidates if has_candidates else None,
        )  # type: ignore[arg-type]  # fmt: skip
    if kind == "record":
        (_, source, seq, clock, job, task, iteration, has_iteration, candidate, workload_hash,
         error_class, origin, ts, _, predicted) = ROW.unpack(packed)  # fmt: skip
        return RecordEvent(
            source=text[source], seq=seq, ts=ts, clock=text[clock], job=text[job],
            task=text[task], candidate=candidate,
            iteration=iteration if has_iteration else None,
            workload_hash=text[workload_hash], trace=body, run_secs=_unpack_floats(run_secs),
            error=error, error_class=text[error_class],
            predicted=None if math.isnan(predicted) else predicted, origin=text[origin],
        )  # type: ignore[arg-type]  # fmt: skip
    if body is not None:
        return from_json(body)
    raise StoreError(f"damaged store: event at position {pos} of kind {kind!r} has no data")


# --- opening ---------------------------------------------------------------------------


def _inspect(path: Path, *, read_only: bool) -> bool:
    """True for an existing tuneloom store, False for a missing or empty file.

    Reads only the 100-byte database header, so a file that turns out to be something
    else is never opened by SQLite (which could create a journal or WAL beside it).
    """
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        raise StoreError(f"{path}: is a directory, not a tuneloom store") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not header:
        return False
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise StoreError(f"{path}: not a tuneloom store (not an SQLite database)")
    user_version = int.from_bytes(header[60:64], "big")
    application_id = int.from_bytes(header[68:72], "big")
    _check_header(path, application_id, user_version, read_only=read_only)
    return True


def _check_header(path: Path, application_id: int, user_version: int, *, read_only: bool) -> None:
    if application_id != APPLICATION_ID:
        raise StoreError(
            f"{path}: not a tuneloom store (an SQLite database of another application, "
            f"application_id {application_id:#x})"
        )
    if user_version > STORE_SCHEMA_VERSION:
        raise StoreError(
            f"{path}: tuneloom store of schema version {user_version}, newer than this "
            f"build reads ({STORE_SCHEMA_VERSION}); upgrade tuneloom to open it"
        )
    if user_version < 1:
        raise StoreError(f"{path}: damaged tuneloom store (schema version {user_version})")
    if user_version < READABLE_SCHEMA_VERSION and read_only:
        raise StoreError(
            f"{path}: tuneloom store of schema version {user_version}, written by an older "
            f"tuneloom; this build reads version {STORE_SCHEMA_VERSION} and upgrades a store "
            "in place when it opens it for writing. Open it once without read-only to "
            "upgrade it (the file was left unchanged)"
        )


def _check_identity(conn: sqlite3.Connection, path: Path, *, read_only: bool) -> int:
    """Check the open database's header; returns its schema version."""
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    _check_header(path, application_id, user_version, read_only=read_only)
    return user_version


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema in a new file, or check (and upgrade) an existing one; then
    switch to WAL."""
    try:
        conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")  # takes effect on a new file only
        conn.execute("BEGIN IMMEDIATE")  # another process may be creating it right now
        try:
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
            if application_id == 0 and tables == 0:
                create(conn)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {STORE_SCHEMA_VERSION}")
            elif (version := _check_identity(conn, path, read_only=False)) < SCHEMA_VERSION:
                try:
                    upgrade(conn, version)
                except (sqlite3.Error, struct.error) as exc:
                    raise StoreError(
                        f"{path}: cannot upgrade this store from schema version {version} "
                        f"({exc}); the file was left unchanged"
                    ) from exc
                conn.execute(f"PRAGMA user_version = {STORE_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{path}: cannot switch to WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT}")
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open ({exc})") from exc


# --- helpers ---------------------------------------------------------------------------


def _select(select: str, where: list[str]) -> str:
    return f"{select} WHERE {' AND '.join(where)}" if where else select


def _fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    with _frames.gc_paused():
        return conn.execute(sql, params).fetchall()


def _fetch_packed(
    conn: sqlite3.Connection, table: str, where: list[str], params: list[Any], dtype: np.dtype
) -> tuple[np.ndarray, Any]:
    """The packed rows of ``table`` matching ``where`` in position order, and their error
    texts as a pandas text array aligned with them (missing where there is none).

    SQLite concatenates the rows' blobs itself (``group_concat``, up to ``_PACKED_CHUNK``
    rows a query), so a million rows cost one value instead of a million tuples (the fetch
    of a million records took half the time)."""
    chunks, after = [], 0
    while True:
        sql = (
            f"SELECT group_concat(row, ''), count(*), max(pos) FROM (SELECT pos, row FROM "
            f"{_select(table, [*where, 'pos > ?'])} ORDER BY pos LIMIT {_PACKED_CHUNK})"
        )
        conn.text_factory = bytes  # the concatenated blobs, as they are
        try:
            joined, count, last = conn.execute(sql, [*params, after]).fetchone()
        finally:
            conn.text_factory = str
        if count:
            chunks.append(joined)
        if count < _PACKED_CHUNK:
            break
        after = last
    packed = np.frombuffer(chunks[0] if len(chunks) == 1 else b"".join(chunks), dtype=dtype)
    positions = packed["pos"]
    if len(positions) > 1 and not bool(np.all(positions[1:] > positions[:-1])):
        packed = packed[np.argsort(positions, kind="stable")]  # an index gave another order
        positions = packed["pos"]
    # Error texts repeat: each distinct one once, with the positions that carry it.
    failed = _fetch(
        conn,
        _select(f"SELECT error, group_concat(pos) FROM {table}", [*where, "error IS NOT NULL"])
        + " GROUP BY error",
        params,
    )
    codes = np.zeros(len(packed), dtype=np.int64)
    for code, (_, where_failed) in enumerate(failed, start=1):
        at = np.array(where_failed.split(","), dtype=np.int64)
        codes[np.searchsorted(positions, at)] = code
    texts = pd.array([None, *(error for error, _ in failed)], dtype=_frames.TEXT)
    return packed, texts.take(codes)


def _columns(packed: np.ndarray, names: Any) -> Callable[[str], Any]:
    """A function giving one field of packed rows as its own writable array; fields that
    hold name ids come back as the names (``names``: a pandas text array by id)."""

    def column(field: str) -> Any:
        if field in _NAME_FIELDS:
            return names.take(packed[field])
        return np.array(packed[field], dtype=packed.dtype[field].newbyteorder("="))

    return column


# Rows per query of ``_fetch_packed``: their blobs make one value, which SQLite caps at
# 1e9 bytes (8.3M rows of 120 bytes).
_PACKED_CHUNK = 1_000_000
_NAME_FIELDS = frozenset(
    ("source", "clock", "job", "task", "stage", "resource", "status", "workload_hash",
     "error_class", "origin")
)  # fmt: skip
