"""One tuner per store: an advisory lock beside the store file.

A server resumes the unfinished jobs it finds in its store; a second tuner on the same store
(another server, or a ``tune`` still running) would resume them too and tune them twice. The
lock (``fcntl.flock`` on ``<store>.lock``) is held for the tuner's lifetime and released by
the kernel however the process ends, ``kill -9`` included, so a crashed server never blocks
its own restart. Readers (``tuneloom serve``, the dashboard) do not take it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from collectors._base import StoreError


class StoreLock:
    """Holds ``<store>.lock`` while open; ``StoreError`` names the holder when it is taken."""

    def __init__(self, store_path: str | Path) -> None:
        self.path = Path(f"{store_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> StoreLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"store {self.path.with_suffix('')} is in use by another tuneloom tuner "
                f"(pid {holder}); stop it first, or use another --db"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
