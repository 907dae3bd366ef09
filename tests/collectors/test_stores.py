"""open_store picks the backend from a path or URL; the package re-exports the public names."""

from __future__ import annotations

from pathlib import Path

import pytest

import collectors
from collectors._base import StoreError
from collectors.memory_store import MemoryStore
from collectors.sqlite_store import SQLiteStore
from collectors.stores import open_store
from tests.collectors.storekit import EventFactory


def test_memory() -> None:
    store = open_store(":memory:")
    assert isinstance(store, MemoryStore)
    with pytest.raises(StoreError, match="nothing to view"):
        open_store(":memory:", read_only=True)


@pytest.mark.parametrize("form", ["str", "path", "url"])
def test_a_file_path_or_sqlite_url_opens_sqlite(tmp_path: Path, form: str) -> None:
    path = tmp_path / "run.db"
    given = {"str": str(path), "path": path, "url": f"sqlite://{path}"}[form]
    with open_store(given) as store:
        assert isinstance(store, SQLiteStore) and store.path == path
        store.append([EventFactory().job()])
    with open_store(given, read_only=True) as viewer:
        assert isinstance(viewer, SQLiteStore) and viewer.read_only
        assert viewer.last_pos() == 1


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("postgres://db.example/tuneloom", "unsupported store URL"),
        ("sqlite://", "unsupported store URL"),
        ("", "must not be empty"),
    ],
)
def test_unusable_locations_are_refused(given: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        open_store(given)


def test_read_only_of_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no tuneloom store there"):
        open_store(tmp_path / "missing.db", read_only=True)


def test_package_exports() -> None:
    for name in collectors.__all__:
        assert getattr(collectors, name) is not None
    assert collectors.open_store is open_store
    assert collectors.SQLiteStore is SQLiteStore
