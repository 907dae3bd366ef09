"""Build stage: a long-lived pool of build workers pinned to the client cores.

MetaSchedule's default ``LocalBuilder`` starts a fresh process pool for every batch and its
build function imports ``tvm.s_tir.tensor_intrin`` in each worker (~10 s of CPU). Here the
workers start once, import only what a build needs, and stay: a batch costs the builds
themselves. Each candidate is lowered with ``RemoveWeightLayoutRewriteBlock(
skip_tensor_rewrite=True)`` and ``tvm.tirx.build`` exactly like the default build, and linked
into a shared library in the worker, so the device only loads it (no linking on the device
core). ``benchmarks/build_bench.py`` measures the difference.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, NamedTuple

from tuner.metaschedule.processes import PinnedWorker, WorkerCrashed, WorkerTimeout, error_message

if TYPE_CHECKING:
    from tvm.ir import IRModule
    from tvm.target import Target

# What a build worker imports once when it starts.
BUILD_IMPORTS = ("tvm", "tvm.s_tir.transform", "tuner.metaschedule.build")
# A pool's own scratch directory: ``tuneloom-build-<pid>-<random>`` in the temporary directory.
SCRATCH_PREFIX = "tuneloom-build-"
_SCRATCH_NAME = re.compile(rf"^{SCRATCH_PREFIX}(\d+)-")
# A scratch directory untouched this long whose process is gone was abandoned (SIGKILL).
ABANDONED_AFTER_S = 600.0


class BuildOutcome(NamedTuple):
    """A built candidate: the shared library's path, or why it could not be built."""

    artifact: str | None
    error: str | None = None


def build_and_export(mod: IRModule, target: Target, out_dir: str) -> str:
    """Runs in a build worker: build ``mod`` for ``target`` into a new shared library."""
    import tvm
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    rt_mod = tvm.tirx.build(mod, target=target)
    path = os.path.join(tempfile.mkdtemp(prefix="cand-", dir=out_dir), "mod.so")
    rt_mod.export_library(path)
    return path


def tvm_version() -> str:
    """The TVM this process imports (a cluster node must run the same)."""
    import tvm

    return str(tvm.__version__)


def read_artifact(path: str) -> bytes:
    """A built candidate's shared library as bytes (to send it to another machine), removed."""
    with open(path, "rb") as f:
        data = f.read()
    remove_artifact(path)
    return data


def write_artifact(data: bytes, out_dir: str) -> str:
    """A shared library received from another machine, written as a new candidate."""
    path = os.path.join(tempfile.mkdtemp(prefix="cand-", dir=out_dir), "mod.so")
    with open(path, "wb") as f:
        f.write(data)
    return path


def remove_artifact(path: str | None) -> None:
    """Delete a built candidate (its whole directory)."""
    if path:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def sweep_abandoned_scratch(parent: str, *, min_age_s: float = ABANDONED_AFTER_S) -> list[str]:
    """Remove the build scratch directories under ``parent`` left by pools whose process is
    gone (killed before ``BuildPool.close``) and untouched for ``min_age_s``; returns them."""
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = _SCRATCH_NAME.match(entry.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime < min_age_s:
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    return removed


def _process_alive(pid: int) -> bool:
    """Whether ``pid`` may be a running process (any doubt counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process, or no pid at all
        return True
    return True


class BuildPool:
    """Builds candidates on ``workers`` long-lived processes pinned to ``cores``.

    ``workers`` defaults to one per core. A build that runs past ``timeout_s`` or crashes
    its worker fails alone (the worker restarts). ``max_uses`` restarts a worker after that
    many builds to bound memory growth. Artifacts go under ``scratch_dir`` (a fresh
    temporary directory by default, removed by ``close``; those of pools killed before
    ``close`` are removed by the next pool, ``sweep_abandoned_scratch``).
    """

    def __init__(
        self,
        cores: Sequence[int] | None,
        *,
        workers: int | None = None,
        timeout_s: float = 30.0,
        max_uses: int | None = 512,
        scratch_dir: str | None = None,
    ) -> None:
        count = workers if workers is not None else max(1, len(cores or ()) or 1)
        if count < 1:
            raise ValueError(f"workers must be >= 1, got {count}")
        self.timeout_s = timeout_s
        self._own_scratch = scratch_dir is None
        if scratch_dir is None:
            sweep_abandoned_scratch(tempfile.gettempdir())
            scratch_dir = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
        self.scratch_dir = scratch_dir
        os.makedirs(self.scratch_dir, exist_ok=True)
        self._workers = [
            PinnedWorker(cores, imports=BUILD_IMPORTS, max_uses=max_uses, name=f"build worker {i}")
            for i in range(count)
        ]
        self._idle: queue.SimpleQueue[PinnedWorker] = queue.SimpleQueue()
        for worker in self._workers:
            self._idle.put(worker)
        self._threads = ThreadPoolExecutor(count, thread_name_prefix="tuneloom-build")

    @property
    def pids(self) -> list[int]:
        """PIDs of the running worker processes."""
        return [w.pid for w in self._workers if w.pid is not None]

    def start(self) -> None:
        """Start every worker now (they import TVM once); normally they start on first use."""
        list(self._threads.map(lambda w: w.start(), self._workers))

    def build(self, mods: Sequence[IRModule], target: Target) -> list[BuildOutcome]:
        """Build each module; failures are reported per candidate, never raised."""
        return list(self._threads.map(lambda mod: self._build_one(mod, target), mods))

    def close(self) -> None:
        """Stop the workers and remove the scratch directory if this pool made it."""
        self._threads.shutdown(wait=True)
        for worker in self._workers:
            worker.close()
        if self._own_scratch:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)

    def __enter__(self) -> BuildPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build_one(self, mod: IRModule, target: Target) -> BuildOutcome:
        worker = self._idle.get()
        try:
            path = worker.call(
                build_and_export, mod, target, self.scratch_dir, timeout=self.timeout_s
            )
            return BuildOutcome(path)
        except WorkerTimeout:
            return BuildOutcome(None, f"build timed out after {self.timeout_s:g} s")
        except WorkerCrashed as exc:
            return BuildOutcome(None, f"build crashed: {exc}")
        except Exception as exc:
            return BuildOutcome(None, f"build failed: {error_message(exc)}\n{exc}")
        finally:
            self._idle.put(worker)
