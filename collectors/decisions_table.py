"""Every measured candidate of a task as one row of decisions beside its latency."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from collectors._base import BaseStore
from collectors.decisions import DecisionError, LoopNames, Value, decisions_of
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
    decoded: list[dict[str, Value]] = []
    latency: list[float] = []
    positions: list[int] = []
    reasons: Counter[str] = Counter()
    failed = 0
    for pos, trace, origin, secs in rows:
        if secs is None or not np.isfinite(secs):
            failed += 1
            continue
        try:
            values = decisions_of(trace, origin, loops)
        except DecisionError as exc:
            reasons[str(exc)] += 1
            continue
        decoded.append(values)
        latency.append(float(secs))
        positions.append(int(pos))
    features = pd.DataFrame.from_records(decoded) if decoded else pd.DataFrame()
    return Candidates(
        features=features,
        latency_secs=np.asarray(latency, dtype=float),
        pos=np.asarray(positions, dtype=np.int64),
        failed=failed,
        undecoded=dict(reasons),
    )


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
    rows = [
        (s.pos, s.event.trace, s.event.origin, s.event.mean_secs)  # type: ignore[attr-defined]
        for s in store.read(kinds=["record"], job=job, task=task)
    ]
    return candidate_table(rows, task_loops(store, job, task))


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
