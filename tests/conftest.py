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
