"""Shared helpers of the importer and exporter tests (paths to fixtures and real logs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.events import Event, JobEvent, RecordEvent, StageEvent, TaskEvent
from collectors.importers import detect, iter_events
from collectors.importers._common import ImportContext
from collectors.importers.driver import context_for

DATA = Path(__file__).resolve().parent / "data"
AUTOTVM_SMALL = DATA / "autotvm_small.log"
ANSOR_SMALL = DATA / "ansor_small.log"
MS_DB = DATA / "ms_db"
# Real logs from other people's TVM runs live outside the repository (licence unstated).
REAL_LOGS = Path(__file__).resolve().parents[3].parent / "shared" / "real_logs"


def real_log(name: str) -> Path:
    """Path of a real log, or skip the test when the shared folder is absent."""
    path = REAL_LOGS / name
    if not path.is_file():
        pytest.skip(f"real log {name} not found under {REAL_LOGS} (kept outside the repository)")
    return path


def read_events(path: Path, **options: object) -> tuple[list[Event], ImportContext]:
    """All events of a file plus its context (bad-line counts)."""
    found = detect(path)
    ctx = context_for(found, **options)  # type: ignore[arg-type]
    return list(iter_events(found, ctx)), ctx


def by_kind(events: list[Event]) -> dict[str, list[Event]]:
    kinds: dict[str, list[Event]] = {"job": [], "task": [], "stage": [], "record": []}
    for event in events:
        kinds[event.kind].append(event)
    return kinds


def records(events: list[Event]) -> list[RecordEvent]:
    return [e for e in events if isinstance(e, RecordEvent)]


def tasks(events: list[Event]) -> list[TaskEvent]:
    return [e for e in events if isinstance(e, TaskEvent)]


def stages(events: list[Event]) -> list[StageEvent]:
    return [e for e in events if isinstance(e, StageEvent)]


def jobs(events: list[Event]) -> list[JobEvent]:
    return [e for e in events if isinstance(e, JobEvent)]
