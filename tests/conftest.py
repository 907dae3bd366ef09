"""Fixtures shared by every test folder (keep this small; folders add their own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.memory_store import MemoryStore
from collectors.sqlite_store import SQLiteStore


@pytest.fixture
def memory_store() -> MemoryStore:
    """An empty in-memory store."""
    return MemoryStore()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """An empty SQLite store in a fresh file, closed after the test."""
    store = SQLiteStore(tmp_path / "store.db")
    yield store
    store.close()


@pytest.fixture(scope="session", autouse=True)
def schedule_library_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Commands that add finished jobs to the default schedule library (and the processes
    tests start) use a temporary one, never the user's."""
    import os

    previous = os.environ.get("TUNELOOM_LIBRARY")
    os.environ["TUNELOOM_LIBRARY"] = str(tmp_path_factory.mktemp("library") / "library")
    yield
    if previous is None:
        os.environ.pop("TUNELOOM_LIBRARY", None)
    else:
        os.environ["TUNELOOM_LIBRARY"] = previous
