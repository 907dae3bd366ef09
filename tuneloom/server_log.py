"""The server's log file: what native code writes to standard error goes there, once per kind.

TVM's C++ writes its warnings straight to file descriptor 2, and the build and profile
worker processes inherit it, so a tuning service's terminal fills with the same line
thousands of times (``Unknown schedule rule "meta_schedule.pool_max"``). ``ServerLog``
points descriptor 2 at a pipe read by a thread that appends each line to the log file the
first time its kind is seen (the line with its timestamp, source location, numbers and
addresses masked) and only counts the repeats; the counts are written when it closes.
Python's own ``sys.stderr`` keeps writing to the terminal; Python's log records go to the
file the same way (``handler``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

_VARIABLE = re.compile(r"0x[0-9a-fA-F]+|\d+(\.\d+)?")
_PREFIX = re.compile(r"^\[[\d:.\s]+\]\s*")  # TVM's "[12:34:56] " timestamp


def line_kind(line: str) -> str:
    """What repeats of a message share: the line without its timestamp, with every number
    and address masked."""
    return _VARIABLE.sub("#", _PREFIX.sub("", line.strip()))


class ServerLog:
    """Native standard error into ``path``, each kind of line once (see the module)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.counts: Counter[str] = Counter()
        self._first: dict[str, str] = {}
        self._saved_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._file: TextIO | None = None
        self._lock = threading.Lock()
        self.terminal: TextIO = sys.stderr

    def handler(self) -> logging.Handler:
        """A logging handler writing records to the file, each kind once."""
        log = self

        class _ToServerLog(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                log.take(self.format(record))

        handler = _ToServerLog()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        return handler

    def start(self) -> ServerLog:
        """Redirect descriptor 2; ``sys.stderr`` is pointed at the terminal's copy of it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._file.write(f"--- tuneloom server started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        sys.stderr.flush()
        self._saved_fd = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self.terminal = os.fdopen(os.dup(self._saved_fd), "w", buffering=1)
        sys.stderr = self.terminal
        self._thread = threading.Thread(
            target=self._pump, args=(read_fd,), name="tuneloom-server-log", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Write how often each kind repeated. Descriptor 2 then appends to the log file
        itself (threads still finishing a stage may print); ``sys.stderr`` stays on the
        terminal."""
        if self._saved_fd is None:
            return
        log_fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        os.dup2(log_fd, 2)  # closes the pipe's last writer in this process
        os.close(log_fd)
        os.close(self._saved_fd)
        self._saved_fd = None
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            if self._file is None:
                return
            for kind, count in self.counts.most_common():
                if count > 1:
                    self._file.write(f"({count - 1} more like) {self._first[kind]}\n")
            self._file.close()
            self._file = None

    def _pump(self, read_fd: int) -> None:
        with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as pipe:
            for line in pipe:
                self.take(line.rstrip("\n"))

    def take(self, line: str) -> None:
        """Append ``line`` to the file unless a line of its kind is there already."""
        with self._lock:
            if not line.strip() or self._file is None:
                return
            kind = line_kind(line)
            self.counts[kind] += 1
            if self.counts[kind] == 1:
                self._first[kind] = line
                self._file.write(line + "\n")

    def __enter__(self) -> ServerLog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
