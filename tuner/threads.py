"""Run a call on a thread of its own.

Timing code runs this way (candidates in the device worker, whole models in ``measure`` and
``profile``): a kernel timed on a process's main thread can take a third longer or shorter in
one process than in the next, while on a thread of its own its time repeats from process to
process (``benchmarks/layout_bench.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def on_new_thread(fn: Callable[[], T], *, name: str = "tuneloom-timing") -> T:
    """``fn()`` run on a new thread named ``name``; its result, or its exception raised here."""
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller below
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value
