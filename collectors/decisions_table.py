"""Every measured candidate of a task as one row of decisions beside its latency."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from collectors._base import BaseStore
from collectors.decisions import DecisionError, LoopNames, MsPlan, Value, decisions_of
from collectors.decisions_columns import ColumnReader, column_reader
from collectors.decisions_loops import database_folder, loops_from_database


@dataclass(frozen=True)
class Candidates:
    """Decoded candidates of one task: ``features`` (one column per decision, numbers or
    text; missing where a candidate has no such decision) beside ``latency_secs`` and the
    store position of each row. Failed candidates (no latency) and traces that cannot be
    decoded are counted, not kept; ``undecoded`` maps each reason to how many."""

    features: pd.DataFrame
    latency_secs: np.ndarray
    pos: np.ndarray
    failed: int = 0
    undecoded: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.latency_secs)

    @property
    def undecoded_count(self) -> int:
        """How many measured candidates have a trace that could not be decoded."""
        return sum(self.undecoded.values())

    def undecoded_text(self) -> str:
        """One line naming why traces could not be decoded ('' when all were)."""
        if not self.undecoded:
            return ""
        reason, count = max(self.undecoded.items(), key=lambda kv: kv[1])
        more = len(self.undecoded) - 1
        tail = f" (and {more} other reason{'s' if more > 1 else ''})" if more else ""
        return (
            f"{self.undecoded_count:,} candidate trace(s) could not be decoded: {reason}"
            f" ({count:,}){tail}"
        )


def candidate_table(
    rows: Iterable[tuple[int, str | None, str | None, float | None]],
    loops: LoopNames | None = None,
) -> Candidates:
    """Candidates from ``(pos, trace, origin, mean seconds or None)`` rows."""
    table = CandidateTable(loops)
    table.extend(rows)
    return table.candidates()


class TraceDecoder:
    """``decisions_of`` for many candidates of one task, reading each distinct MetaSchedule
    instruction list once.

    A MetaSchedule trace is stored as compact JSON ``[instructions, decisions]``; candidates
    of one design space repeat the instructions text and differ in the short decisions at
    its end. The text is cut there; the first trace with a given instructions text is read
    whole, checked to be exactly those instructions and those decisions, and the plan of its
    instructions kept (with a reader of many candidates' decisions at once, when they have a
    regular shape); later traces with the same text only have their decisions read. A trace
    that cannot be cut that way is read whole, as ``decisions_of`` does.
    """

    def __init__(self, loops: LoopNames | None = None) -> None:
        self.loops = loops
        # (length, end) of an instructions text -> each such text with its plan and column
        # reader (None: read such traces whole); looking up by the text's end hashes less.
        self._plans: dict[tuple[int, str], list[tuple[str, _Entry]]] = {}
        self._count = 0

    @property
    def plans(self) -> int:
        """How many distinct instruction lists were read."""
        return sum(e is not None for found in self._plans.values() for _, e in found)

    def locate(
        self, trace: str | None, origin: str | None
    ) -> tuple[MsPlan, ColumnReader | None, str] | None:
        """The plan of a trace's instructions, its column reader and its decisions text;
        None when the trace is to be read whole."""
        if trace is None or origin not in (None, "", "metaschedule"):
            return None
        cut = _decisions_cut(trace)
        if cut is None:
            return None
        key = (cut, trace[max(0, cut - KEY_CHARS) : cut])
        seen = self._plans.get(key, ())
        entry = next((e for head, e in seen if trace.startswith(head)), _UNSEEN)
        if entry is _UNSEEN:
            entry = _checked_plan(trace, cut, self.loops)
            if self._count < MAX_PLANS:
                self._plans.setdefault(key, []).append((trace[:cut], entry))
                self._count += 1
        if entry is None:
            return None
        return entry[0], entry[1], trace[cut:-1]

    def decisions(self, trace: str | None, origin: str | None) -> dict[str, Value]:
        """The named decisions of one trace; raises DecisionError as ``decisions_of`` does."""
        found = self.locate(trace, origin)
        if found is not None:
            try:
                raw = json.loads(found[2])
            except json.JSONDecodeError:
                pass  # read whole below, for the error's message
            else:
                return found[0].decisions(raw)
        return decisions_of(trace, origin, self.loops)


_Entry = tuple[MsPlan, ColumnReader | None] | None
_UNSEEN: Any = object()
MAX_PLANS = 2_048  # distinct instruction texts kept per task; beyond, traces are read whole
_INF = float("inf")
KEY_CHARS = 160  # characters at the end of an instructions text it is looked up by


def _decisions_cut(trace: str) -> int | None:
    """Where the decisions start in a compact ``[instructions,decisions]`` text, if found."""
    if not trace.endswith("]"):
        return None
    cut = trace.rfind("],[[")
    if cut >= 0:
        return cut + 2
    if trace.endswith("],[]]"):
        return len(trace) - 3
    return None


def _checked_plan(
    trace: str, cut: int, loops: LoopNames | None
) -> tuple[MsPlan, ColumnReader | None] | None:
    """The plan of a trace's instructions (and its column reader) when the cut at ``cut``
    separates them exactly from its decisions; None when the trace must be read whole."""
    try:
        whole = json.loads(trace)
        decisions = json.loads(trace[cut:-1])
    except json.JSONDecodeError:
        return None
    if not (isinstance(whole, list) and len(whole) == 2 and isinstance(whole[0], list)):
        return None
    if whole[1] != decisions:
        return None
    plan = MsPlan(whole[0], loops)
    return plan, column_reader(plan, decisions)


class CandidateTable:
    """A task's decoded candidates, grown by the rows stored after the last one seen.

    ``extend`` decodes new ``(pos, trace, origin, mean seconds or None)`` rows (positions
    increasing); ``candidates`` gives every row decoded so far. Candidates that share an
    instruction list and a shape of decisions are decoded together, as columns.
    """

    def __init__(self, loops: LoopNames | None = None) -> None:
        self.decoder = TraceDecoder(loops)
        self.last_pos = 0
        self._parts: list[pd.DataFrame] = []
        self._latency: list[float] = []
        self._pos: list[int] = []
        self._failed = 0
        self._reasons: Counter[str] = Counter()
        self._built: Candidates | None = None

    def extend(self, rows: Iterable[tuple[int, str | None, str | None, float | None]]) -> int:
        """Decode rows after the last one seen; returns how many rows were new."""
        latency: list[float] = []
        positions: list[int] = []
        # Per column reader: the rows (numbered as in ``latency``), decisions texts, plan.
        groups: dict[int, tuple[ColumnReader, list[int], list[str], list[str]]] = {}
        single: list[tuple[int, str | None, str | None]] = []
        count = 0
        locate = self.decoder.locate
        last = self.last_pos
        for pos, trace, origin, secs in rows:
            count += 1
            last = pos if pos > last else last
            if secs is None or secs != secs or secs in (_INF, -_INF):
                self._failed += 1
                continue
            row = len(latency)
            latency.append(float(secs))
            positions.append(int(pos))
            found = locate(trace, origin)
            if found is not None and found[1] is not None:
                group = groups.setdefault(id(found[1]), (found[1], [], [], []))
                group[1].append(row)
                group[2].append(found[2])
                group[3].append(trace)  # type: ignore[arg-type]
            else:
                single.append((row, trace, origin))
        self.last_pos = int(last)
        frames: list[pd.DataFrame] = []
        kept = np.zeros(len(latency), dtype=bool)
        named: list[tuple[int, list[str]]] = []  # (row, its features' names)
        for reader, numbers, texts, traces in groups.values():
            columns, ok = reader.read(texts)
            rows_ok = np.asarray(numbers, dtype=np.int64)[ok]
            if len(rows_ok):
                frames.append(pd.DataFrame(columns, index=rows_ok))
                kept[rows_ok] = True
                named.append((int(rows_ok[0]), list(columns)))
            single += [(numbers[i], traces[i], "metaschedule") for i in np.flatnonzero(~ok)]
        decoded: list[dict[str, Value]] = []
        decoded_rows: list[int] = []
        for row, trace, origin in single:
            try:
                decoded.append(self.decoder.decisions(trace, origin))
            except DecisionError as exc:
                self._reasons[str(exc)] += 1
                continue
            decoded_rows.append(row)
        if decoded:
            frames.append(pd.DataFrame.from_records(decoded, index=decoded_rows))
            kept[decoded_rows] = True
            named += [(r, list(v)) for r, v in zip(decoded_rows, decoded, strict=True)]
        if frames:
            part = frames[0] if len(frames) == 1 else pd.concat(frames).sort_index()
            # Columns in the order the rows first name them, as if read one by one.
            named.sort(key=lambda item: item[0])
            order = list(dict.fromkeys(name for _, names in named for name in names))
            self._parts.append(part[order].reset_index(drop=True))
        self._latency += np.asarray(latency)[kept].tolist()
        self._pos += np.asarray(positions, dtype=np.int64)[kept].tolist()
        if count:
            self._built = None
        return count

    def candidates(self) -> Candidates:
        """Every candidate decoded so far."""
        if self._built is None:
            if len(self._parts) > 1:
                self._parts = [pd.concat(self._parts, ignore_index=True)]
            self._built = Candidates(
                features=self._parts[0] if self._parts else pd.DataFrame(),
                latency_secs=np.asarray(self._latency, dtype=float),
                pos=np.asarray(self._pos, dtype=np.int64),
                failed=self._failed,
                undecoded=dict(self._reasons),
            )
        return self._built


def encoded(features: pd.DataFrame) -> tuple[np.ndarray, dict[str, list[Value]]]:
    """Features as a float matrix: numbers as they are, text as codes of its sorted values
    (``levels`` lists them per column); missing decisions are NaN."""
    columns, levels = [], {}
    for name in features.columns:
        column = features[name]
        numeric = pd.to_numeric(column, errors="coerce")
        if numeric.notna().sum() == column.notna().sum():
            columns.append(numeric.to_numpy(dtype=float))
            continue
        text = column.map(lambda v: None if v is None or v != v else str(v))
        values = sorted(text.dropna().unique())
        code = {v: float(i) for i, v in enumerate(values)}
        columns.append(text.map(code).to_numpy(dtype=float))
        levels[name] = values
    matrix = np.column_stack(columns) if columns else np.empty((len(features), 0))
    return matrix, levels


def store_candidates(store: BaseStore, job: str, task: str) -> Candidates:
    """The task's candidates in one job of a store, loops named from the job's MetaSchedule
    database when its task or job detail names one that is still there."""
    table = CandidateTable(task_loops(store, job, task))
    refresh(table, store, job, task)
    return table.candidates()


def refresh(table: CandidateTable, store: BaseStore, job: str, task: str) -> int:
    """Decode the task's candidates stored after the last one ``table`` has seen; returns
    how many records were new."""
    rows = store.record_traces(job, task, after=table.last_pos)
    return table.extend((r.pos, r.trace, r.origin, r.mean_secs) for r in rows)


def task_loops(store: BaseStore, job: str, task: str) -> dict[str, list[str]]:
    """Block loop names of a task's workload, {} when its database cannot be found."""
    tasks = store.tasks(job=job)
    row = tasks[tasks["task"] == task]
    if row.empty or not isinstance(row["workload_hash"].iloc[0], str):
        return {}
    jobs = store.jobs()
    job_detail = jobs.loc[jobs["job"] == job, "detail"]
    for detail in (row["detail"].iloc[0], job_detail.iloc[0] if len(job_detail) else None):
        folder = database_folder(detail if isinstance(detail, str) else None)
        if folder:
            found = loops_from_database(folder, row["workload_hash"].iloc[0])
            if found:
                return found
    return {}
