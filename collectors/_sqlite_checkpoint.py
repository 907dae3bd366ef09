"""Checkpointing an SQLite WAL from a thread of its own while a bulk of appends runs.

A checkpoint copies the WAL's pages into the database file and syncs both (the cost of
``synchronous = NORMAL``). Run by the writer's automatic checkpoint, it stalls the writer:
for a log import of large records it was a fifth of the import's wall time. Here another
connection checkpoints (``PASSIVE``: it never blocks the writer), in a thread: SQLite
releases the GIL while it works, so the copying and syncing overlap the writer's next
batch. It checkpoints as often as the writer would, once the file has grown by
``CHECKPOINT_PAGES`` (a checkpoint after every commit copied and synced the same last pages
of each table again and again: more work in all for small records). Durability is
unchanged: every checkpoint still syncs.

SQLite starts the WAL over only when a write begins after a checkpoint has copied all of
it; a writer that never waits could keep that from happening and grow the WAL without
bound. So once a checkpoint finds more than ``WAL_LIMIT_PAGES`` in it, or the thread falls
``MAX_BEHIND`` commits behind, the writer waits for the checkpoints it asked for before its
next write (``catch_up``).
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import suppress
from pathlib import Path

# Pages the file grows by between checkpoints: the writer's own automatic checkpoint size.
CHECKPOINT_PAGES = 4096
# WAL pages beyond which the writer waits for the checkpoint (and checkpoints by itself).
WAL_LIMIT_PAGES = 4 * CHECKPOINT_PAGES
# Commits the thread may be behind by (when it gets no CPU) before the writer waits.
MAX_BEHIND = 4


class BackgroundCheckpointer:
    """A thread that checkpoints ``path``'s WAL when ``poke`` is called; ``stop`` ends it."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self._conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._changed = threading.Condition()
        self._asked = 0  # pokes so far
        self._done = 0  # pokes answered by a finished checkpoint
        self._wal_pages = 0  # the WAL's size at the last checkpoint
        self._checkpointed_at = 0  # the file's size in pages then
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Tell of a commit: a checkpoint follows when the file has grown enough (one
        answers every poke made before it starts)."""
        with self._changed:
            self._asked += 1
            self._changed.notify_all()

    def catch_up(self) -> None:
        """When the WAL has grown past ``WAL_LIMIT_PAGES``, or the thread is more than
        ``MAX_BEHIND`` commits behind, wait for the checkpoints asked for, so that the next
        write can start the WAL over."""
        if self._wal_pages <= WAL_LIMIT_PAGES and self._asked - self._done <= MAX_BEHIND:
            return
        with self._changed:
            while self._done < self._asked and not self._stopping:
                self._changed.wait()

    def stop(self) -> None:
        """End the thread (after the checkpoint in progress) and close its connection."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._done == self._asked and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                asked = self._asked
            pages = self._wal_pages
            with suppress(sqlite3.Error):  # busy or failing: the writer's own one does it
                size = self._conn.execute("PRAGMA page_count").fetchone()[0]
                if size - self._checkpointed_at >= CHECKPOINT_PAGES or pages > WAL_LIMIT_PAGES:
                    _, pages, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self._checkpointed_at = size
            with self._changed:
                self._done, self._wal_pages = asked, pages
                self._changed.notify_all()
