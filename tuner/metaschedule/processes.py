"""A long-lived worker process pinned to CPU cores, with a deadline on every call.

The child runs TVM's own ``tvm.exec.popen_worker`` loop (length-prefixed cloudpickle frames
over a pipe pair; functions travel by reference, so they must live in an importable module).
It is started on first use, pinned (every thread) to its cores and told how many threads TVM
and OpenMP may use, then reused call after call: TVM is imported once per worker, not once
per build as with MetaSchedule's ``LocalBuilder``. A call that runs past its deadline or a
child that dies (a crashing kernel) kills the process and its children by PID; the next call
starts a fresh one.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import cloudpickle
import psutil

# Status codes of tvm.support.popen_pool.StatusKind (kept here to avoid importing TVM).
_COMPLETE, _EXCEPTION, _TIMEOUT = 1, 2, 3
# The parent waits this much longer than the child's own timer before killing the child.
_GRACE_S = 5.0
_INIT_TIMEOUT_S = 120.0


class WorkerTimeout(TimeoutError):
    """A call ran past its deadline; the worker was killed."""


class WorkerCrashed(RuntimeError):
    """The worker process died during a call (e.g. a kernel crashed it)."""


def error_message(exc: BaseException) -> str:
    """The message of an error raised in a worker: its text is the child's traceback, whose
    last line reads ``Type: message``."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1].removeprefix(f"{type(exc).__name__}: ")


def init_worker(cores: Sequence[int] | None, imports: Sequence[str]) -> int:
    """Runs in the child once: pin every thread to ``cores`` and import ``imports``."""
    import importlib

    if cores:
        from tuner.cpus import pin_process

        pin_process(cores)
    for module in imports:
        importlib.import_module(module)
    return os.getpid()


class PinnedWorker:
    """One child process that runs ``fn(*args)`` calls one at a time (thread-safe).

    ``cores``: the cores it is pinned to (None: not pinned). ``imports``: modules imported
    once at start. ``max_uses``: restart the process after that many calls (None: never).
    """

    def __init__(
        self,
        cores: Sequence[int] | None = None,
        *,
        imports: Sequence[str] = (),
        max_uses: int | None = None,
        name: str = "worker",
    ) -> None:
        self.cores = tuple(cores) if cores else None
        self.imports = tuple(imports)
        self.max_uses = max_uses
        self.name = name
        self.starts = 0  # how many processes this worker has started (restarts included)
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: int | None = None  # pipe from the child
        self._writer: int | None = None  # pipe to the child
        self._uses = 0
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """PID of the running child, or None when none runs."""
        return self._proc.pid if self._proc is not None else None

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float) -> Any:
        """Run ``fn(*args)`` in the child and return its result.

        Raises WorkerTimeout after ``timeout`` seconds, WorkerCrashed if the child died,
        or the child's exception (its message holds the child's traceback).
        """
        with self._lock:
            if self._proc is not None and self.max_uses and self._uses >= self.max_uses:
                self._kill()
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            self._uses += 1
            return self._roundtrip(fn, args, timeout)

    def start(self) -> None:
        """Start the child now (normally it starts on the first call)."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()

    def close(self) -> None:
        """Stop the child and its children."""
        with self._lock:
            self._kill()

    def __enter__(self) -> PinnedWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------

    def _start(self) -> None:
        self._kill()
        main_read, worker_write = os.pipe()
        worker_read, main_write = os.pipe()
        env = dict(os.environ)
        if self.cores:
            threads = str(len(self.cores))
            env.update(TVM_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
        cmd = [sys.executable, "-m", "tvm.exec.popen_worker", str(worker_read), str(worker_write)]
        try:
            self._proc = subprocess.Popen(
                cmd,
                pass_fds=(worker_read, worker_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        finally:
            os.close(worker_read)
            os.close(worker_write)
        self._reader, self._writer = main_read, main_write
        self._uses = 0
        self.starts += 1
        try:
            self._roundtrip(init_worker, (self.cores, self.imports), _INIT_TIMEOUT_S)
        except BaseException:
            self._kill()
            raise

    def _roundtrip(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        data = cloudpickle.dumps((fn, args, {}, timeout), protocol=pickle.HIGHEST_PROTOCOL)
        frame = memoryview(struct.pack("<i", len(data)) + data)
        try:
            while frame:
                frame = frame[os.write(self._writer, frame) :]
        except OSError:
            raise self._crashed("could not send work") from None
        deadline = time.monotonic() + timeout + _GRACE_S
        header = self._read(4, deadline, timeout)
        (size,) = struct.unpack("<i", header)
        status, value = cloudpickle.loads(self._read(size, deadline, timeout))
        if status == _COMPLETE:
            return value
        if status == _EXCEPTION:
            raise value
        self._kill()  # _TIMEOUT: the child's own timer fired; the call may still be running
        raise WorkerTimeout(f"{self.name}: killed after {timeout:g} s")

    def _read(self, size: int, deadline: float, timeout: float) -> bytes:
        chunks = []
        while size > 0:
            left = deadline - time.monotonic()
            ready = select.select([self._reader], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                self._kill()
                raise WorkerTimeout(f"{self.name}: killed after {timeout:g} s (no answer)")
            chunk = os.read(self._reader, size)
            if not chunk:
                raise self._crashed("the worker process died")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _crashed(self, what: str) -> WorkerCrashed:
        code = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._proc.wait(timeout=1)
        self._kill()
        how = f" (exit status {code})" if code is not None else ""
        return WorkerCrashed(f"{self.name}: {what}{how}")

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        for fd in (self._writer, self._reader):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._reader = self._writer = None
        if proc is None:
            return
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
