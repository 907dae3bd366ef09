"""A MetaSchedule database that several threads may use at once.

MetaSchedule's databases are not thread-safe: ``JSONDatabase`` keeps its records in a C++
ordered set that a select reads (the evolutionary search takes the workload's best records,
``GetTopK``, when it starts a batch) while an update of another task may be inserting into
it. ``LockedDatabase`` wraps a database so that every call, from Python or from the search's
C++, holds one lock for its duration: a call is short (a lookup, an insert and its line in
the file), so no thread waits for long, and a select never waits for an update to finish,
nor an update for a select.
"""

from __future__ import annotations

import threading
from typing import Any

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms


@derived_object
class LockedDatabase(ms.database.PyDatabase):
    """``inner`` behind ``lock`` (a fresh re-entrant lock unless given): hold ``lock`` to
    make several calls one step, e.g. to copy the database's files while nothing writes."""

    def __init__(self, inner: Any, lock: threading.RLock | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.lock = lock if lock is not None else threading.RLock()

    def has_workload(self, mod: Any) -> bool:
        with self.lock:
            return bool(self.inner.has_workload(mod))

    def commit_workload(self, mod: Any) -> Any:
        with self.lock:
            return self.inner.commit_workload(mod)

    def commit_tuning_record(self, record: Any) -> None:
        with self.lock:
            self.inner.commit_tuning_record(record)

    def get_top_k(self, workload: Any, top_k: int) -> list[Any]:
        with self.lock:
            return list(self.inner.get_top_k(workload, top_k))

    def get_all_tuning_records(self) -> list[Any]:
        with self.lock:
            return list(self.inner.get_all_tuning_records())

    def query_tuning_record(self, mod: Any, target: Any, workload_name: str | None = None) -> Any:
        with self.lock:
            return self.inner.query_tuning_record(mod, target, workload_name)

    def query_schedule(self, mod: Any, target: Any, workload_name: str | None = None) -> Any:
        with self.lock:
            return self.inner.query_schedule(mod, target, workload_name)

    def query_ir_module(self, mod: Any, target: Any, workload_name: str | None = None) -> Any:
        with self.lock:
            return self.inner.query_ir_module(mod, target, workload_name)

    def __len__(self) -> int:
        with self.lock:
            return len(self.inner)
