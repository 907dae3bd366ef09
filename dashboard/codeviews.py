"""The inspector's code views: trace text, scheduled TIR, LLVM IR and assembly of a record.

Code generation needs TVM, which the dashboard never imports: it calls a backend passed to
``create_app`` (``tuner.metaschedule.inspector.MetaScheduleInspector`` in ``tuneloom serve``).
``CodeViews`` fetches records from the store, asks the backend on demand and caches each
answer by record position, so nothing is generated at import time or twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from collectors._base import BaseStore
from collectors.events import RecordEvent
from collectors.importers import readable_trace

VIEWS: dict[str, str] = {
    "trace": "Schedule trace",
    "tir": "Scheduled TIR",
    "llvm": "LLVM IR",
    "asm": "Assembly",
}
NO_BACKEND = (
    "Code generation needs TVM and no inspector backend is attached to this dashboard "
    "(`tuneloom serve` and `tuneloom demo` attach the MetaSchedule inspector)."
)


class InspectorBackend(Protocol):
    """Turns a record into readable code. Methods raise an exception whose message says
    why a view cannot be produced (e.g. a log format without a re-applicable trace)."""

    def trace_text(self, record: RecordEvent) -> str: ...

    def tir(self, record: RecordEvent) -> str: ...

    def llvm_ir(self, record: RecordEvent) -> str: ...

    def asm(self, record: RecordEvent) -> str: ...


@dataclass(frozen=True)
class CodeView:
    """A view's text, or the reason there is none (``text`` None)."""

    text: str | None
    message: str | None = None


class CodeViews:
    """Cached front of an inspector backend (LRU over (position, view))."""

    def __init__(
        self, store: BaseStore, backend: InspectorBackend | None, *, maxsize: int = 128
    ) -> None:
        self.store = store
        self.backend = backend
        self.maxsize = maxsize
        self._cache: OrderedDict[tuple[int, str], CodeView] = OrderedDict()
        self._lock = threading.Lock()
        self._busy: dict[tuple[int, str], threading.Lock] = {}
        self.generated = 0  # how many views were produced (not served from the cache)

    def record(self, pos: int) -> RecordEvent | None:
        """The record event at ``pos``, or None when that position holds something else."""
        event = self.store.record(int(pos))
        return event if isinstance(event, RecordEvent) else None

    def get(self, pos: int, view: str) -> CodeView:
        """The text of ``view`` for the record at ``pos`` (generated once, then cached)."""
        if view not in VIEWS:
            return CodeView(None, f"unknown view {view!r}; views: {', '.join(VIEWS)}")
        key = (int(pos), view)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            gate = self._busy.setdefault(key, threading.Lock())
        with gate:  # one generation per key even when two requests race
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            result = self._generate(*key)
            with self._lock:
                self._cache[key] = result
                self._busy.pop(key, None)
                self.generated += 1
                while len(self._cache) > self.maxsize:
                    self._cache.popitem(last=False)
        return result

    def _generate(self, pos: int, view: str) -> CodeView:
        record = self.record(pos)
        if record is None:
            return CodeView(None, f"no record at position {pos}")
        if self.backend is None:
            if view == "trace":
                if record.trace:
                    return CodeView(readable_trace(record))
                return CodeView(None, "this record carries no schedule trace")
            return CodeView(None, NO_BACKEND)
        method = {
            "trace": self.backend.trace_text,
            "tir": self.backend.tir,
            "llvm": self.backend.llvm_ir,
            "asm": self.backend.asm,
        }[view]
        try:
            return CodeView(method(record))
        except Exception as exc:  # the backend explains why it cannot; show it, do not crash
            message = str(exc) or type(exc).__name__
            if view == "trace" and record.trace:
                return CodeView(readable_trace(record), message)
            return CodeView(None, message)
