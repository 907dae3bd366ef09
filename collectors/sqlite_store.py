"""SQLiteStore: the embedded default store, one SQLite file in WAL mode.

Layout (schema version 1):

- ``events``: one row per event in position order (``pos``), ``UNIQUE(source, seq)``,
  kind, job and task for filtering, and for job and task events their canonical JSON;
- ``stages`` and ``records``: one narrow table per kind with typed columns for what the
  queries filter on (job, task, resource, start, end) and the error text, plus ``row``:
  every other field packed as eleven little-endian int64 and three float64
  (``STAGE_ROW``/``RECORD_ROW``). A typed query fetches one blob per row and decodes the
  whole column set with numpy, several times faster than fetching a dozen values per row;
- ``traces``: record trace texts; ``names``: the distinct texts of low-cardinality fields
  (source, clock, job, task, stage, resource, status, workload hash, error class, origin),
  which the other tables hold as integer ids.

Every field is kept losslessly (floats as float64; missing numbers flagged, not guessed),
so ``read`` and ``record`` rebuild the exact event, and ``to_json`` of it gives the
canonical JSON. Stage and record events, the bulk of a run, are not stored as JSON text:
formatting their floats would cost more than the rest of an append.

Several processes may append to one file at once: each batch is one ``BEGIN IMMEDIATE``
transaction and a busy timeout makes writers wait their turn; ``INSERT OR IGNORE`` on
``UNIQUE(source, seq)`` makes appends idempotent.

A file is only written after its header says it is a tuneloom store of a schema version
this build reads (or it is missing or empty); anything else raises ``StoreError`` and
leaves the file byte-for-byte as it was.
"""

from __future__ import annotations

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

from collectors import _frames
from collectors._base import BaseStore, Stored, StoreError
from collectors.events import (
    Event,
    JobEvent,
    RecordEvent,
    StageEvent,
    TaskEvent,
    from_json,
)

APPLICATION_ID = 0x544C4F4D  # "TLOM" in the SQLite header: marks a file as a tuneloom store
STORE_SCHEMA_VERSION = 1  # PRAGMA user_version of the layout below
_SQLITE_MAGIC = b"SQLite format 3\x00"
_DEFAULT_BUSY_TIMEOUT_S = 60.0
_PAGE_SIZE = 8192  # measured ~10% cheaper appends than the default 4096

# Float columns are declared without a type: REAL affinity would store -0.0 as integer 0.
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value);
CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE events (
    pos INTEGER PRIMARY KEY,
    source INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    job INTEGER NOT NULL,
    task INTEGER,
    body TEXT,
    UNIQUE (source, seq)
);
CREATE INDEX events_jobs ON events (job) WHERE kind = 'job';
CREATE INDEX events_tasks ON events (job) WHERE kind = 'task';
CREATE TABLE stages (
    pos INTEGER PRIMARY KEY,
    job INTEGER NOT NULL,
    task INTEGER NOT NULL,
    resource INTEGER NOT NULL,
    start NOT NULL,
    "end" NOT NULL,
    error TEXT,
    row BLOB NOT NULL
);
CREATE INDEX stages_start ON stages (start);
CREATE TABLE records (
    pos INTEGER PRIMARY KEY,
    job INTEGER NOT NULL,
    task INTEGER NOT NULL,
    error TEXT,
    run_secs BLOB,
    row BLOB NOT NULL
);
CREATE TABLE traces (pos INTEGER PRIMARY KEY, trace TEXT NOT NULL);
"""
_INSERT_EVENT = (
    "INSERT OR IGNORE INTO events (source, seq, kind, job, task, body) VALUES (?,?,?,?,?,?)"
)
_INSERT_STAGE = "INSERT INTO stages VALUES (?,?,?,?,?,?,?,?)"
_INSERT_RECORD = "INSERT INTO records VALUES (?,?,?,?,?,?)"
_INSERT_TRACE = "INSERT INTO traces VALUES (?,?)"

# The packed ``row`` of a stage and of a record (name ids: 0 stands for None).
_INT, _FLOAT = "<i8", "<f8"
STAGE_ROW = np.dtype([
    ("pos", _INT), ("source", _INT), ("clock", _INT), ("job", _INT), ("task", _INT),
    ("iteration", _INT), ("stage", _INT), ("resource", _INT), ("status", _INT),
    ("candidates", _INT), ("has_candidates", _INT),
    ("start", _FLOAT), ("end", _FLOAT), ("ts", _FLOAT),
])  # fmt: skip
RECORD_ROW = np.dtype([
    ("pos", _INT), ("source", _INT), ("clock", _INT), ("job", _INT), ("task", _INT),
    ("iteration", _INT), ("has_iteration", _INT), ("candidate", _INT),
    ("workload_hash", _INT), ("error_class", _INT), ("origin", _INT),
    ("ts", _FLOAT), ("mean_secs", _FLOAT), ("predicted", _FLOAT),  # NaN: None
])  # fmt: skip
_ROW = struct.Struct("<11q3d")  # the layout of both dtypes above
_NAN = math.nan

# The longest stage stored so far bounds a time-window query's scan of the start index.
_MAX_STAGE_SECS = "max_stage_secs"

_EVENT_SELECT = (
    "SELECT e.pos, e.kind, e.seq, e.body, s.row, s.error, r.row, r.error, r.run_secs, "
    "t.trace FROM events e LEFT JOIN stages s ON s.pos = e.pos "
    "LEFT JOIN records r ON r.pos = e.pos LEFT JOIN traces t ON t.pos = e.pos"
)

_stage_fields = attrgetter(
    "source", "seq", "ts", "clock", "job", "task", "iteration", "stage", "resource",
    "start", "end", "status", "error", "candidates",
)  # fmt: skip
_record_fields = attrgetter(
    "source", "seq", "ts", "clock", "job", "task", "iteration", "candidate", "workload_hash",
    "error", "error_class", "predicted", "origin", "run_secs", "trace",
)  # fmt: skip
_NAMED_FIELDS = {
    StageEvent: attrgetter("source", "clock", "job", "task", "stage", "resource", "status"),
    RecordEvent: attrgetter(
        "source", "clock", "job", "task", "workload_hash", "error_class", "origin"
    ),
    JobEvent: attrgetter("source", "job"),
    TaskEvent: attrgetter("source", "job", "task"),
}


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
        self._names = _Names()
        exists = _inspect(self.path)
        if read_only:
            if not exists:
                raise StoreError(f"{self.path}: no tuneloom store there to open read-only")
            with self._reading() as conn:
                _check_identity(conn, self.path)
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
        conn = self._writable()
        batch = list(events)
        if not batch:
            return []
        wanted: set[str | None] = set()
        try:
            for e in batch:
                wanted.update(_NAMED_FIELDS[type(e)](e))
        except KeyError:
            bad = next(e for e in batch if type(e) not in _NAMED_FIELDS)
            raise TypeError(f"append takes events, got {type(bad).__name__}") from None
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    ids, fresh = self._names.ids_for(conn, wanted)
                    stored = _insert(conn, batch, ids)
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
        return stored

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
        where, params = ["e.pos > ?"], [after]
        if kinds is not None:
            kinds = list(kinds)
            if not kinds:
                return []
            where.append(f"e.kind IN ({','.join('?' * len(kinds))})")
            params += kinds
        with self._reading() as conn:
            for column, name in (("e.job", job), ("e.task", task)):
                if name is not None:
                    code = self._names.code(conn, name)
                    if code is None:
                        return []
                    where.append(f"{column} = ?")
                    params.append(code)
            sql = f"{_EVENT_SELECT} WHERE {' AND '.join(where)} ORDER BY e.pos"
            if limit is not None:
                sql += " LIMIT ?"
                params.append(max(limit, 0))
            rows = _fetch(conn, sql, params)
            text = self._names.texts(conn)
        return [Stored(row[0], _decode(row, text)) for row in rows]

    def last_pos(self) -> int:
        """Position of the newest stored event, 0 when empty."""
        with self._reading() as conn:
            return conn.execute("SELECT ifnull(max(pos), 0) FROM events").fetchone()[0]

    def max_seq(self, source: str) -> int:
        """Highest ``seq`` stored for ``source``, -1 when it has none."""
        with self._reading() as conn:
            code = self._names.code(conn, source)
            if code is None:
                return -1
            value = conn.execute("SELECT max(seq) FROM events WHERE source = ?", (code,))
            found = value.fetchone()[0]
        return -1 if found is None else found

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
                    "SELECT value FROM meta WHERE key = ?", (_MAX_STAGE_SECS,)
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
        with self._reading() as conn:
            rows = conn.execute(f"{_EVENT_SELECT} WHERE e.pos = ?", (pos,)).fetchall()
            if not rows:
                return None
            text = self._names.texts(conn)
        return _decode(rows[0], text)

    def jobs(self) -> pd.DataFrame:
        """Current state of each job, replayed from its job events."""
        with self._reading() as conn:
            rows = _fetch(conn, "SELECT pos, body FROM events WHERE kind = 'job'", ())
        rows.sort(key=_first)
        return _frames.jobs_frame(Stored(pos, from_json(body)) for pos, body in rows)

    def tasks(self, *, job: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Registered tasks; the latest task event per (job, task)."""
        with self._reading() as conn:
            where, params = self._name_filters(conn, job=job)
            if where is None:
                return _frames.tasks_frame([])
            where.append("kind = 'task'")
            rows = _fetch(conn, _select("SELECT pos, body FROM events", where), params)
        rows.sort(key=_first)
        return _frames.tasks_frame(Stored(pos, from_json(body)) for pos, body in rows)

    def close(self) -> None:
        """Close every connection; the WAL is checkpointed when the last one closes."""
        with self._pool_lock:
            self._closed = True
            conns, self._all, self._idle = self._all, [], []
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
            conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache
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


class _Names:
    """The ``names`` table, cached both ways. Ids are never changed or reused, so cached
    entries stay valid; names added by a transaction are cached once it commits."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ids: dict[str | None, int | None] = {None: None}
        self._texts: list[str | None] = [None]  # index = id; id 0 is never used
        self._lookup: np.ndarray = np.array([None], dtype=object)

    def ids_for(
        self, conn: sqlite3.Connection, wanted: set[str | None]
    ) -> tuple[dict[str | None, int | None], dict[str, int]]:
        """Ids of ``wanted`` names, adding missing ones (call inside the write transaction).

        Returns the mapping to use and the names this transaction added.
        """
        with self._lock:
            if all(w in self._ids for w in wanted):
                return self._ids, {}
            self._load(conn)
            missing = sorted(w for w in wanted if w not in self._ids)  # never None
            if not missing:
                return self._ids, {}
            first = conn.execute("SELECT ifnull(max(id), 0) FROM names").fetchone()[0] + 1
            conn.executemany("INSERT INTO names (name) VALUES (?)", [(m,) for m in missing])
            fresh = dict(zip(missing, range(first, first + len(missing)), strict=True))
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
            self._lookup = np.array(self._texts, dtype=object)

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

    def lookup(self, conn: sqlite3.Connection) -> np.ndarray:
        """``texts`` as an object array, for mapping whole columns of ids."""
        self._load(conn)
        return self._lookup

    def _load(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            known = len(self._texts) - 1
            rows = conn.execute(
                "SELECT id, name FROM names WHERE id > ? ORDER BY id", (known,)
            ).fetchall()
            if not rows:
                return
            for code, name in rows:
                if code != len(self._texts):
                    raise StoreError(f"damaged store: names table skips to id {code}")
                self._ids[name] = code
                self._texts.append(name)
            self._lookup = np.array(self._texts, dtype=object)


# --- appending -------------------------------------------------------------------------


def _insert(
    conn: sqlite3.Connection, batch: list[Event], ids: dict[str | None, int | None]
) -> list[Stored]:
    """Insert a batch inside an open transaction; returns the newly stored events."""
    before = conn.execute("SELECT ifnull(max(pos), 0) FROM events").fetchone()[0]
    event_rows = []
    for e in batch:
        kind = e.kind
        if kind == "stage" or kind == "record":
            event_rows.append((ids[e.source], e.seq, kind, ids[e.job], ids[e.task], None))
        elif kind == "task":
            event_rows.append((ids[e.source], e.seq, kind, ids[e.job], ids[e.task], e.to_json()))
        else:
            event_rows.append((ids[e.source], e.seq, kind, ids[e.job], None, e.to_json()))
    changes = conn.total_changes
    conn.executemany(_INSERT_EVENT, event_rows)
    if conn.total_changes - changes == len(batch):
        stored = [Stored(pos, e) for pos, e in enumerate(batch, start=before + 1)]
    else:
        stored = _match_new(conn, before, batch, ids)

    pack = _ROW.pack
    stage_rows, record_rows, trace_rows = [], [], []
    longest = -1.0
    for item in stored:
        e, pos = item.event, item.pos
        if e.kind == "stage":
            (source, _, ts, clock, job, task, iteration, stage, resource, start, end, status,
             error, candidates) = _stage_fields(e)  # fmt: skip
            job, task, resource = ids[job], ids[task], ids[resource]
            row = pack(
                pos, ids[source], ids[clock], job, task, iteration, ids[stage], resource,
                ids[status], 0 if candidates is None else candidates, candidates is not None,
                start, end, ts,
            )  # fmt: skip
            stage_rows.append((pos, job, task, resource, start, end, error, row))
            longest = max(longest, end - start)
        elif e.kind == "record":
            (source, _, ts, clock, job, task, iteration, candidate, workload_hash, error,
             error_class, predicted, origin, run_secs, trace) = _record_fields(e)  # fmt: skip
            job, task = ids[job], ids[task]
            mean = math.fsum(run_secs) / len(run_secs) if run_secs else _NAN
            row = pack(
                pos, ids[source], ids[clock], job, task,
                0 if iteration is None else iteration, iteration is not None, candidate,
                ids[workload_hash] or 0, ids[error_class] or 0, ids[origin] or 0,
                ts, mean, _NAN if predicted is None else predicted,
            )  # fmt: skip
            secs = None if run_secs is None else _pack_floats(run_secs)
            record_rows.append((pos, job, task, error, secs, row))
            if trace is not None:
                trace_rows.append((pos, trace))
    if stage_rows:
        conn.executemany(_INSERT_STAGE, stage_rows)
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = ? AND value < ?",
            (longest, _MAX_STAGE_SECS, longest),
        )
    if record_rows:
        conn.executemany(_INSERT_RECORD, record_rows)
    if trace_rows:
        conn.executemany(_INSERT_TRACE, trace_rows)
    return stored


def _match_new(
    conn: sqlite3.Connection,
    before: int,
    batch: list[Event],
    ids: dict[str | None, int | None],
) -> list[Stored]:
    """Pair rows stored after ``before`` with their events (some were duplicates)."""
    by_key: dict[tuple[int | None, int], Event] = {}
    for e in batch:
        by_key.setdefault((ids[e.source], e.seq), e)
    rows = conn.execute(
        "SELECT pos, source, seq FROM events WHERE pos > ? ORDER BY pos", (before,)
    ).fetchall()
    return [Stored(pos, by_key[(source, seq)]) for pos, source, seq in rows]


def _pack_floats(values: tuple[float, ...]) -> bytes:
    return struct.pack(f"<{len(values)}d", *values)


def _unpack_floats(blob: bytes | None) -> tuple[float, ...] | None:
    if blob is None:
        return None
    return struct.unpack(f"<{len(blob) // 8}d", blob)


# --- reading ---------------------------------------------------------------------------


def _decode(row: Sequence[Any], text: list[str | None]) -> Event:
    """Rebuild the event of an ``_EVENT_SELECT`` row (validated like any new event)."""
    pos, kind, seq, body, stage_row, stage_error, record_row, record_error, run_secs, trace = row
    if body is not None:
        return from_json(body)
    if kind == "stage" and stage_row is not None:
        (_, source, clock, job, task, iteration, stage, resource, status, candidates,
         has_candidates, start, end, ts) = _ROW.unpack(stage_row)  # fmt: skip
        return StageEvent(
            source=text[source], seq=seq, ts=ts, clock=text[clock], job=text[job],
            task=text[task], iteration=iteration, stage=text[stage], resource=text[resource],
            start=start, end=end, status=text[status], error=stage_error,
            candidates=candidates if has_candidates else None,
        )  # type: ignore[arg-type]  # fmt: skip
    if kind == "record" and record_row is not None:
        (_, source, clock, job, task, iteration, has_iteration, candidate, workload_hash,
         error_class, origin, ts, _, predicted) = _ROW.unpack(record_row)  # fmt: skip
        return RecordEvent(
            source=text[source], seq=seq, ts=ts, clock=text[clock], job=text[job],
            task=text[task], candidate=candidate,
            iteration=iteration if has_iteration else None,
            workload_hash=text[workload_hash], trace=trace, run_secs=_unpack_floats(run_secs),
            error=record_error, error_class=text[error_class],
            predicted=None if math.isnan(predicted) else predicted, origin=text[origin],
        )  # type: ignore[arg-type]  # fmt: skip
    raise StoreError(f"damaged store: event at position {pos} of kind {kind!r} has no data")


# --- opening ---------------------------------------------------------------------------


def _inspect(path: Path) -> bool:
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
    _check_header(path, application_id, user_version)
    return True


def _check_header(path: Path, application_id: int, user_version: int) -> None:
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


def _check_identity(conn: sqlite3.Connection, path: Path) -> None:
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    _check_header(path, application_id, user_version)


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema in a new file, or check an existing one; then switch to WAL."""
    try:
        conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")  # takes effect on a new file only
        conn.execute("BEGIN IMMEDIATE")  # another process may be creating it right now
        try:
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
            if application_id == 0 and tables == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("schema_version", STORE_SCHEMA_VERSION), (_MAX_STAGE_SECS, 0.0)],
                )
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {STORE_SCHEMA_VERSION}")
            else:
                _check_identity(conn, path)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{path}: cannot switch to WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")
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
) -> tuple[np.ndarray, np.ndarray]:
    """The packed rows of ``table`` matching ``where`` in position order, and their error
    texts as an object array aligned with them (None where there is none)."""
    rows = _fetch(conn, _select(f"SELECT row FROM {table}", where), params)
    packed = np.frombuffer(b"".join(map(_first, rows)), dtype=dtype)
    positions = packed["pos"]
    if len(positions) > 1 and not bool(np.all(positions[1:] > positions[:-1])):
        packed = packed[np.argsort(positions, kind="stable")]  # an index gave another order
        positions = packed["pos"]
    errors = np.full(len(packed), None, dtype=object)
    failed = _fetch(
        conn, _select(f"SELECT pos, error FROM {table}", [*where, "error IS NOT NULL"]), params
    )
    if failed:
        at = np.searchsorted(positions, [pos for pos, _ in failed])
        for i, (_, error) in zip(at, failed, strict=True):
            errors[i] = error
    return packed, errors


def _columns(packed: np.ndarray, names: np.ndarray) -> Callable[[str], np.ndarray]:
    """A function giving one field of packed rows as its own writable array; fields that
    hold name ids come back as the names (an object array)."""

    def column(field: str) -> np.ndarray:
        if field in _NAME_FIELDS:
            return names[packed[field]]
        return np.array(packed[field], dtype=packed.dtype[field].newbyteorder("="))

    return column


_NAME_FIELDS = frozenset(
    ("source", "clock", "job", "task", "stage", "resource", "status", "workload_hash",
     "error_class", "origin")
)  # fmt: skip
_first = itemgetter(0)
