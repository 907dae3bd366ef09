"""Reading a big JSON-lines log with worker processes.

Parsing a line (JSON decoding, building its measurement) is independent of every other line;
what follows (names, timeline, events, the store) is not. So for a file of at least
``PARALLEL_MIN_BYTES``, worker processes (``WORKER_COMMAND``, which runs ``serve``) parse
consecutive chunks of whole lines (cut after a newline) and the importing process consumes
their results in file order. Line numbers, bad lines and measurements are exactly those of
the one-process reading (``iter_json_lines`` and ``LineFormat.measure``): a worker reads its
chunk through the same text layer, line by line, so memory stays bounded by the chunks in
flight, even for a line of any length. A MetaSchedule record file is read the same way, each
line by the module's ``worker_reading`` (``read_lines``).

Requests are JSON lines on a worker's stdin; answers are ``marshal`` data (plain tuples,
lists, strings and numbers) in a file per answer, in a temporary folder only this user can
write (``tempfile``), announced by their length on the worker's stdout (through a pipe, a
worker waited for this process to read each answer before it could parse on). This process
parses chunks too: the first ones while its workers start, and later ones whenever the
answer it needs next is not there yet. A worker that fails or dies is stopped and the
import goes on in this process; nothing is lost or read twice.
"""

from __future__ import annotations

import importlib
import io
import json
import marshal
import os
import select
import struct
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from collectors._frames import gc_paused
from collectors.importers import _common
from collectors.importers._common import BadLine, ImportContext
from collectors.importers._lines import LineFormat

PARALLEL_MIN_BYTES = 32 * 2**20  # smaller files are parsed faster than workers start
CHUNK_BYTES = 4 * 2**20  # bytes of lines per request to a worker
MAX_WORKERS = 3
_IN_FLIGHT = 8  # requests queued per worker: answers wait in files, up to 8 x ~4 MiB
_SKIP = 2**16  # bytes read at a time while looking for the end of a line
_LENGTH = struct.Struct("<Q")
_READY = b"ready\n"  # a worker's first words
PARSE_WHILE_STARTING = True  # parse chunks in this process while the workers start
PARSE_WHILE_WAITING = True  # and later ones when the next answer is not there yet
_REPO_ROOT = Path(__file__).resolve().parents[2]
# Not ``-m``: importing the package already imports this module (through ``_measured``).
# Once its stdin closes a worker has nothing left to write or clean up, so it ends without
# tearing its modules down (``os._exit``): the importing process waited ~0.1 s for that.
WORKER_COMMAND = [
    sys.executable, "-c",
    "import os; from collectors.importers.parallel import serve; serve(); os._exit(0)",
]  # fmt: skip

# One parsed chunk: (lines read, [(line offset, what the line gave or None, bad reason)]).
Chunk = tuple[int, list[tuple[int, Any, str | None]]]


def worker_count(path: Path, requested: int | None) -> int:
    """Processes to parse ``path`` with; 0 parses it in this process.

    ``requested`` None picks: none for a file under ``PARALLEL_MIN_BYTES``, else one per CPU
    that is idle (CPUs minus the load average, rounded) beyond this process's own, at most
    ``MAX_WORKERS``. On a busy machine workers only add the cost of handing results over.
    """
    if requested is not None:
        return max(requested, 0)
    try:
        size = os.path.getsize(path)
    except OSError:
        return 0
    if size < PARALLEL_MIN_BYTES:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    idle = (cpus or 1) - (os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0)
    return max(0, min(round(idle) - 1, MAX_WORKERS))


def measurements(
    ctx: ImportContext, fmt: str, workers: int
) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """(line number, measurement fields) of ``ctx.path`` read by ``workers`` processes in
    format ``fmt`` (a module of collectors.importers with a ``LINES`` format); bad lines are
    reported to ``ctx`` in file order."""
    return read_lines(ctx.path, fmt, workers, ctx.bad_line)


def read_lines(
    path: Path, fmt: str, workers: int, on_bad: Callable[[int, str], None]
) -> Iterator[tuple[int, Any]]:
    """(line number, what ``parse_chunk`` made of the line) of each line of ``path`` read
    by ``workers`` processes, in file order; lines they find bad go to ``on_bad``.

    While the workers start (a Python process importing this package: ~0.3 s), this process
    parses the first chunks itself when ``PARSE_WHILE_STARTING``; later, when the answer it
    needs next is not there yet, it parses the next chunk no worker was asked for rather than
    wait, up to ``_IN_FLIGHT`` ahead (``PARSE_WHILE_WAITING``). So the work settles where the
    CPU is: a MetaSchedule record costs a worker more than it costs the importing process,
    whose idle time now parses (1M records: 103-111k/s -> 123-124k/s)."""
    name = str(path)
    chunks = chunk_bounds(path, CHUNK_BYTES)
    with _answers_folder() as answers:
        pool = [_Worker(answers) for _ in range(workers if answers is not None else 0)]
        starting = [worker for worker in pool if worker.alive]
        # In file order: (the worker asked, or None; the chunk; its answer parsed here or None)
        queue: deque[tuple[_Worker | None, tuple[int, int], Chunk | None]] = deque()
        parsed_ahead = 0  # chunks of the queue this process has parsed already
        try:
            first = 1
            while True:
                if starting:
                    for worker in _ready(starting, wait=not PARSE_WHILE_STARTING):
                        for _ in range(_IN_FLIGHT):  # fill its queue
                            if (bounds := next(chunks, None)) is not None:
                                queue.append((worker.ask(name, *bounds, fmt), bounds, None))
                while (
                    PARSE_WHILE_WAITING
                    and queue
                    and parsed_ahead < _IN_FLIGHT
                    and (waited := queue[0][0]) is not None
                    and not waited.answer_ready()
                    and (spare := next(chunks, None)) is not None
                ):  # rather than wait, parse the next chunk no worker was asked for
                    queue.append((None, spare, parse_chunk(name, *spare, fmt)))
                    parsed_ahead += 1
                if queue:
                    worker, bounds, parsed = queue.popleft()
                    if worker is not None:
                        parsed = worker.answer()
                        if (more := next(chunks, None)) is not None:
                            alive = worker if worker.alive else None
                            queue.append(
                                (alive.ask(name, *more, fmt) if alive else None, more, None)
                            )
                    elif parsed is not None:
                        parsed_ahead -= 1
                elif (next_bounds := next(chunks, None)) is not None:
                    worker, bounds, parsed = None, next_bounds, None
                else:
                    break
                if parsed is None:  # no worker, or it failed: this process reads the chunk
                    parsed = parse_chunk(name, *bounds, fmt)
                count, items = parsed
                for offset, fields, reason in items:
                    if fields is None:
                        on_bad(first + offset, reason or "unreadable line")
                    else:
                        yield first + offset, fields
                first += count
        finally:
            for worker in pool:
                worker.stop()


@contextmanager
def _answers_folder() -> Iterator[Path | None]:
    """A temporary folder for the workers' answers, removed afterwards; None when none can
    be made (then this process reads every chunk)."""
    try:
        folder = tempfile.TemporaryDirectory(prefix="tuneloom-import-")
    except OSError:
        yield None
        return
    with folder as name:
        yield Path(name)


def _ready(starting: list[_Worker], *, wait: bool) -> list[_Worker]:
    """The workers of ``starting`` that have started (removed from it); ``wait``: block
    until each has started or failed. A worker that failed to start is dropped."""
    ready = []
    for worker in list(starting):
        state = worker.started(wait=wait)
        if state is not None:
            starting.remove(worker)
            if state:
                ready.append(worker)
    return ready


def chunk_bounds(path: Path, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    """(start, end) byte ranges of consecutive chunks of whole lines covering the file."""
    size = os.path.getsize(path)
    with open(path, "rb") as stream:
        start = 0
        while start < size:
            end = min(start + chunk_bytes, size)
            if end < size:
                stream.seek(end - 1)  # the chunk may already end with a newline
                while (part := stream.readline(_SKIP)) and part[-1:] != b"\n":
                    pass
                end = stream.tell()
            yield start, end
            start = end


def parse_chunk(path: str, start: int, end: int, fmt: str) -> Chunk:
    """The lines of ``path`` between bytes ``start`` and ``end`` (whole lines), parsed:
    by the format module's ``worker_reading(text)`` when it has one (which never raises),
    else into the measurement of its ``LINES`` format."""
    module = importlib.import_module(f"collectors.importers.{fmt}")
    reading: Callable[[str], Any] | None = getattr(module, "worker_reading", None)
    lines: LineFormat | None = None if reading is not None else module.LINES
    items: list[tuple[int, Any, str | None]] = []

    def too_long(number: int, reason: str) -> None:
        items.append((number - 1, None, reason))

    with open(path, "rb") as raw, gc_paused():  # the results hold no cycles
        raw.seek(start)
        stream = io.TextIOWrapper(
            io.BufferedReader(_Window(raw, end - start)), encoding="utf-8", errors="replace"
        )
        counted: list[int] = []
        for number, text in _common.numbered_lines(stream, too_long, counted):
            if reading is not None:
                items.append((number - 1, reading(text), None))
                continue
            assert lines is not None
            try:
                items.append((number - 1, _costs_checked(tuple(lines.measure(text))), None))
            except BadLine as exc:
                items.append((number - 1, None, str(exc)))
    return counted[0], items


def _costs_checked(fields: tuple[Any, ...]) -> tuple[Any, ...]:
    """A measurement's fields with its costs as ``as_float_tuple`` makes them, when it has
    no error and they are valid: checked here, off the importing process."""
    if fields[3] == 0 and (costs := _common.as_float_tuple(fields[2])) is not None:
        return (*fields[:2], costs, *fields[3:])
    return fields


class _Window(io.RawIOBase):
    """The next ``size`` bytes of a binary file, as a file of their own."""

    def __init__(self, raw: Any, size: int) -> None:
        self._raw = raw
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: self._left]
        count = self._raw.readinto(view)
        self._left -= count
        return count


class _Worker:
    """One worker process; answers come back in the order of the requests.

    An answer is written to a file of its own in ``answers`` and announced by its length
    on the worker's stdout, so a worker never waits for this process to read one."""

    def __init__(self, answers: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self._answers = answers
        self._asked = 0  # requests sent: the next answer file's number
        self._answered = 0  # answers read
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                WORKER_COMMAND,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                bufsize=0,  # stdout unbuffered: ``select`` then tells whether an answer waits
            )
        except OSError:
            self._proc = None

    @property
    def alive(self) -> bool:
        return self._proc is not None

    def started(self, *, wait: bool) -> bool | None:
        """True once the worker has said it is ready, False when it failed to start, None
        while it is still starting (``wait``: block until one of the first two)."""
        if self._proc is None or self._proc.stdout is None:
            return False
        stdout = self._proc.stdout
        if not wait and not select.select([stdout], [], [], 0)[0]:
            return None
        try:
            if stdout.read(len(_READY)) == _READY:
                return True
        except OSError:
            pass
        self.stop()
        return False

    def ask(self, path: str, start: int, end: int, fmt: str) -> _Worker | None:
        """Send a request; returns self, or None when the worker cannot take it."""
        if self._proc is None or self._proc.stdin is None:
            return None
        out = str(self._answers / f"{id(self)}-{self._asked}")
        request = {"path": path, "start": start, "end": end, "fmt": fmt, "out": out}
        try:
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
        except OSError:
            self.stop()
            return None
        self._asked += 1
        return self

    def answer_ready(self) -> bool:
        """Whether ``answer`` would return without waiting for the worker."""
        if self._proc is None or self._proc.stdout is None:
            return True
        return bool(select.select([self._proc.stdout], [], [], 0)[0])

    def answer(self) -> Chunk | None:
        """The answer to the oldest request, or None (and the worker stopped) on failure."""
        if self._proc is None or self._proc.stdout is None:
            return None
        out = self._answers / f"{id(self)}-{self._answered}"
        self._answered += 1
        try:
            head = self._proc.stdout.read(_LENGTH.size)
            if len(head) != _LENGTH.size:
                raise EOFError("worker ended")
            (length,) = _LENGTH.unpack(head)
            body = out.read_bytes()
            if len(body) != length:
                raise EOFError("worker wrote a partial answer")
            with gc_paused():  # many small acyclic tuples: collections would cost 5x the decoding
                parsed = marshal.loads(body)
        except (OSError, EOFError, ValueError, TypeError):
            self.stop()
            return None
        finally:
            with suppress(OSError):
                out.unlink()
        if parsed is None:  # the worker could not parse it; this process will say why
            return None
        return parsed  # type: ignore[no-any-return]

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        _common.stop_worker(proc)


def serve() -> None:
    """A worker: says it is ready, then answers the requests on stdin, in order, until it
    closes: each answer into the file the request names, then its length on stdout."""
    out = sys.stdout.buffer
    out.write(_READY)
    out.flush()
    for raw in sys.stdin.buffer:
        try:
            request = json.loads(raw)
            with gc_paused():  # the chunk is freed before any collection could walk it
                body = marshal.dumps(
                    parse_chunk(request["path"], request["start"], request["end"], request["fmt"])
                )
        except Exception:  # any failure: the importing process reads this chunk itself
            body = marshal.dumps(None)
        try:
            with open(request["out"], "wb") as answer:
                answer.write(body)
        except Exception:  # the importing process finds no such answer and reads it itself
            body = b""
        out.write(_LENGTH.pack(len(body)))
        out.flush()
