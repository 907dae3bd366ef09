"""Where a task's schedules came from: the ``reused=`` lines of a task event's detail.

A job that starts from a schedule library (``tuneloom reuse``, ``tuneloom tune
--warm-start``) measures library schedules applied to its tasks as ordinary records. Its
task events then carry one detail line per such record::

    reused={"candidate": 0, "source": "zoo:mobilenet/fused_conv2d_add_relu", "method": "replay"}

``candidate`` is the record's candidate index within the task, ``source`` the library entry
(``model/task``) and ``method`` how it was applied (``replay`` or ``anchor-transfer``, with
``refitted`` when tile sizes were fitted to the new shapes; ``untuned`` marks the fallback
record of a ``tuneloom reuse`` job: the workload without a schedule). Every other record of
the task was found by the job's own search. A schedule that another task of the same job
found and the task measured applied to itself (``tuner.metaschedule.siblings``) has a
``sibling=`` line of the same form, ``source`` naming that task. The event contract itself
is unchanged: this is a convention on the free-form ``detail`` field, parsed leniently (a
malformed line is ignored).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

REUSED_PREFIX = "reused="
SIBLING_PREFIX = "sibling="
SIBLING_TEXT = "from sibling "  # how the text of a sibling's schedule begins
TUNED_HERE = "tuned here"
UNTUNED = "untuned"  # a reuse job's fallback: the workload as it is, without a schedule
WARM_START = "warm start"  # a job whose search continued from library schedules
REUSE_ONLY = "library schedules"  # a ``tuneloom reuse`` job: library schedules, no search

ReuseIndex = dict[tuple[str, str], dict[int, "ReusedSchedule"]]


@dataclass(frozen=True, slots=True)
class ReusedSchedule:
    """One record of a task whose schedule came from a library entry, or with ``sibling``
    from another task of the same job (``source`` names it)."""

    candidate: int
    source: str
    method: str
    refitted: bool = False
    sibling: bool = False

    @property
    def from_library(self) -> bool:
        """True for a library schedule, False for the untuned fallback or a sibling's."""
        return self.method != UNTUNED and not self.sibling

    @property
    def text(self) -> str:
        """``reused from SOURCE (METHOD)``, ``from sibling TASK (METHOD)``, or ``untuned``
        for the fallback."""
        if self.method == UNTUNED and not self.sibling:
            return UNTUNED
        how = ", ".join(([self.method] if self.method else []) + ["refitted tiles"] * self.refitted)
        where = f"{SIBLING_TEXT}{self.source}" if self.sibling else f"reused from {self.source}"
        return f"{where} ({how})" if how else where

    def detail_line(self) -> str:
        data: dict[str, Any] = {
            "candidate": self.candidate,
            "source": self.source,
            "method": self.method,
        }
        if self.refitted:
            data["refitted"] = True
        prefix = SIBLING_PREFIX if self.sibling else REUSED_PREFIX
        return prefix + json.dumps(data, separators=(",", ":"))


def parse_reused(detail: str | None) -> dict[int, ReusedSchedule]:
    """The reused schedules a task's detail names, by candidate index (malformed lines are
    skipped: the detail is free-form text another tool may have written; a candidate named
    twice keeps its last line)."""
    found: dict[int, ReusedSchedule] = {}
    if not isinstance(detail, str) or not any(p in detail for p in (REUSED_PREFIX, SIBLING_PREFIX)):
        return found
    for line in detail.splitlines():
        line = line.strip()
        sibling = line.startswith(SIBLING_PREFIX)
        if not sibling and not line.startswith(REUSED_PREFIX):
            continue
        prefix = SIBLING_PREFIX if sibling else REUSED_PREFIX
        try:
            data = json.loads(line[len(prefix) :])
        except ValueError:
            continue
        if not isinstance(data, Mapping):
            continue
        candidate, source, method = data.get("candidate"), data.get("source"), data.get("method")
        if (
            isinstance(candidate, int)
            and not isinstance(candidate, bool)
            and candidate >= 0
            and isinstance(source, str)
            and isinstance(method, str)
        ):
            found[candidate] = ReusedSchedule(
                candidate, source, method, data.get("refitted") is True, sibling
            )
    return found


def reuse_index(tasks: pd.DataFrame) -> ReuseIndex:
    """Per (job, task) whose detail names reused schedules, those schedules by candidate.

    ``tasks`` is a tasks frame (``job, task, detail``; the latest task event per task).
    Parsed once per frame: the dashboard keeps the result with its snapshot."""
    index: ReuseIndex = {}
    if tasks is None or len(tasks) == 0:
        return index
    for job, task, detail in zip(tasks["job"], tasks["task"], tasks["detail"], strict=True):
        found = parse_reused(detail)
        if found:
            index[(str(job), str(task))] = found
    return index


def _as_index(tasks: pd.DataFrame | Mapping[tuple[str, str], Mapping[int, ReusedSchedule]]):
    return tasks if isinstance(tasks, Mapping) else reuse_index(tasks)


def _reused_keys(index: Mapping[tuple[str, str], Mapping[int, ReusedSchedule]]) -> pd.DataFrame:
    """One row per reused record the index names: ``job, task, candidate, text, library``."""
    rows = [
        (job, task, candidate, schedule.text, schedule.from_library)
        for (job, task), found in index.items()
        for candidate, schedule in found.items()
    ]
    return pd.DataFrame(rows, columns=["job", "task", "candidate", "text", "library"])


def _candidate_rows(records: pd.DataFrame, keys: pd.DataFrame) -> np.ndarray:
    """Row numbers of the records that may be reused ones: a job with reuse and a candidate
    index no higher than the highest reused one (library schedules come first: few rows;
    siblings' schedules come throughout a search)."""
    if keys.empty or records.empty:
        return np.arange(0)
    candidate = pd.to_numeric(records["candidate"], errors="coerce").to_numpy(dtype=float)
    near = np.flatnonzero(candidate <= float(keys["candidate"].max()))
    jobs = records["job"].to_numpy()[near]
    return near[pd.Series(jobs).isin(set(keys["job"])).to_numpy()]


def _keyed(records: pd.DataFrame) -> pd.DataFrame:
    """``job, task, candidate`` (and ``mean_secs`` when there) ready to merge with the keys."""
    columns = [c for c in ("job", "task", "candidate", "mean_secs") if c in records]
    part = records[columns].astype({"job": object, "task": object})
    return part.assign(candidate=pd.to_numeric(part["candidate"], errors="coerce"))


def record_origins(
    records: pd.DataFrame,
    tasks: pd.DataFrame | Mapping[tuple[str, str], Mapping[int, ReusedSchedule]],
) -> np.ndarray:
    """Per record (in ``records``' row order): where its schedule came from (``reused from
    ...`` or ``untuned``), or None for a record the job's own search found. ``tasks`` is a
    tasks frame or its ``reuse_index``. Pure and vectorized: records of jobs without reuse
    cost nothing."""
    index = _as_index(tasks)
    out = np.full(len(records), None, dtype=object)
    if not index or records.empty:
        return out
    keys = _reused_keys(index)
    rows = _candidate_rows(records, keys)
    if len(rows) == 0:
        return out
    part = _keyed(records.iloc[rows])
    merged = part.merge(keys, on=["job", "task", "candidate"], how="left", sort=False)
    out[rows] = merged["text"].astype(object).where(merged["text"].notna(), None).to_numpy()
    return out


def best_origins(
    records: pd.DataFrame,
    tasks: pd.DataFrame | Mapping[tuple[str, str], Mapping[int, ReusedSchedule]],
) -> pd.DataFrame:
    """Per (job, task) with a measured record: the best record's candidate, its mean latency
    and where its schedule came from (``origin``: ``reused from ...``, ``untuned`` or ``tuned
    here``), plus ``reused`` (how many of the task's records applied a library schedule,
    failed ones included, the untuned fallback not) and ``best_reused`` (the best latency
    among those, NaN when none was valid). On a tie the earlier record holds the best (it
    reached that latency first). ``tasks`` is a tasks frame or its ``reuse_index``. Pure:
    frames in, frame out, in order of each task's first record."""
    columns = ["job", "task", "candidate", "mean_secs", "origin", "reused", "best_reused"]
    measured = records[records["mean_secs"].notna()]
    if measured.empty:
        return pd.DataFrame(columns=columns)
    if "pos" in measured and not measured["pos"].is_monotonic_increasing:
        measured = measured.sort_values("pos", kind="stable")
    index = _as_index(tasks)
    at = measured.groupby(["job", "task"], sort=False)["mean_secs"].idxmin()
    best = measured.loc[at.to_numpy(), ["job", "task", "candidate", "mean_secs"]]
    best = best.reset_index(drop=True)
    origins = [
        origin_text(index.get((job, task), {}), int(candidate))
        for job, task, candidate in zip(best["job"], best["task"], best["candidate"], strict=True)
    ]
    counts = pd.Series(0, index=pd.MultiIndex.from_frame(best[["job", "task"]]), dtype=int)
    best_reused = pd.Series(np.nan, index=counts.index, dtype=float)
    keys = _reused_keys(index)
    keys = keys[keys["library"].astype(bool)]
    if len(keys):
        mine = _keyed(records.iloc[_candidate_rows(records, keys)])
        hit = mine.merge(keys[["job", "task", "candidate"]], on=["job", "task", "candidate"])
        if len(hit):
            grouped = hit.groupby(["job", "task"], sort=False)["mean_secs"]
            counts = counts.add(grouped.size(), fill_value=0).reindex(counts.index)
            best_reused = grouped.min().reindex(counts.index)
    return pd.DataFrame(
        {
            "job": best["job"].to_numpy(),
            "task": best["task"].to_numpy(),
            "candidate": best["candidate"].astype(int).to_numpy(),
            "mean_secs": best["mean_secs"].astype(float).to_numpy(),
            "origin": origins,
            "reused": counts.fillna(0).astype(int).to_numpy(),
            "best_reused": best_reused.astype(float).to_numpy(),
        }
    )[columns]


def origin_text(found: Mapping[int, ReusedSchedule], candidate: int) -> str:
    """Where a task's record ``candidate`` came from, given the task's reused schedules by
    candidate: ``reused from ...``, ``untuned``, or ``tuned here``."""
    schedule = found.get(candidate)
    return schedule.text if schedule is not None else TUNED_HERE


def job_reuse(
    tasks: pd.DataFrame | Mapping[tuple[str, str], Mapping[int, ReusedSchedule]],
) -> dict[str, str]:
    """Per job that started from library schedules, how: ``REUSE_ONLY`` when it measured an
    untuned fallback (what ``tuneloom reuse`` does), else ``WARM_START``."""
    index = _as_index(tasks)
    library = {
        key: [s for s in found.values() if not s.sibling] for key, found in index.items()
    }  # a sibling's schedule is the job's own search, not a start from a library
    only = {job for (job, _), found in library.items() if not all(s.from_library for s in found)}
    return {job: REUSE_ONLY if job in only else WARM_START for (job, _), f in library.items() if f}


def reused_records(
    records: pd.DataFrame,
    tasks: pd.DataFrame | Mapping[tuple[str, str], Mapping[int, ReusedSchedule]],
) -> dict[int, str]:
    """Record position -> where its schedule came from, for the reused (and untuned
    fallback) records among ``records``; empty when none is."""
    origins = record_origins(records, tasks)
    keep = np.flatnonzero(origins != None)  # noqa: E711 - elementwise on an object array
    if len(keep) == 0:
        return {}
    positions = records["pos"].to_numpy()[keep]
    return {int(p): str(o) for p, o in zip(positions, origins[keep], strict=True)}
