"""open_store: a store from a path or URL (the one place that picks a backend)."""

from __future__ import annotations

import os
import re

from collectors._base import BaseStore, StoreError
from collectors.memory_store import MemoryStore
from collectors.sqlite_store import SQLiteStore

MEMORY = ":memory:"
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")


def open_store(path_or_url: str | os.PathLike[str], *, read_only: bool = False) -> BaseStore:
    """Open a store: ``":memory:"`` -> MemoryStore; a file path or ``sqlite:///path`` ->
    SQLiteStore (created when missing, unless ``read_only``).

    Raises StoreError for an unknown URL scheme or a file that is not a tuneloom store.
    """
    if isinstance(path_or_url, str):
        if path_or_url == MEMORY:
            if read_only:
                raise StoreError(f"{MEMORY}: a new memory store is empty; nothing to view")
            return MemoryStore()
        url = _URL.match(path_or_url)
        if url is not None:
            scheme, rest = url.groups()
            if scheme.lower() != "sqlite" or not rest:
                raise StoreError(
                    f"{path_or_url}: unsupported store URL (use a file path, "
                    f"sqlite:///path or {MEMORY})"
                )
            path_or_url = rest
    if not str(path_or_url):
        raise StoreError("store path: must not be empty")
    return SQLiteStore(path_or_url, read_only=read_only)
