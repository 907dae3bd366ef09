"""Profile stage: time built candidates on a local device or through a TVM RPC tracker.

``LocalProfiler`` keeps one long-lived worker process pinned to the device's cores (or, for
a GPU, driving it) and times each candidate there with ``time_evaluator`` (on a CPU, on a
thread of its own: see ``run_local``), like
MetaSchedule's ``LocalRunner`` (random inputs, ``number``/``repeat``/``min_repeat_ms``,
optional cooldown and cache flush), with one difference: ``number`` is sized from a short
probe run so that each repeat lasts a little over ``min_repeat_ms`` the first time (see
``repeat_number``).
``RPCProfiler`` runs each candidate in a session to one of the tracker's servers under a key
(asked for through the tracker, like ``RPCRunner``), from a worker process so that a server
that stops answering cannot hang the tuner.

Every candidate gets its own deadline. A candidate that fails to load or run, crashes its
worker, or runs past its deadline becomes a ``RunOutcome`` with an error class ("run" or
"timeout"); the batch goes on. When the device itself cannot be reached (no server under
the key, a session that cannot be opened, a worker that cannot start) the batch stops and
``ProfileBatch.unavailable`` says why; candidates not yet measured are left ``None`` so a
retry measures exactly those.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from tuner.metaschedule.processes import PinnedWorker, WorkerCrashed, WorkerTimeout, error_message
from tuner.threads import on_new_thread

RUN_IMPORTS = ("tvm", "tuner.metaschedule.run")

ArgsInfo = Sequence[Any]  # a candidate's arguments as MetaSchedule's ArgInfo JSON


@dataclass(frozen=True, slots=True)
class EvalConfig:
    """How each candidate is timed (see ``Module.time_evaluator``)."""

    number: int = 3
    repeat: int = 1
    min_repeat_ms: int = 40
    cooldown_ms: int = 0
    cache_flush: bool = False


class RunOutcome(NamedTuple):
    """One candidate's measurement: ``run_secs``, or an error and its class."""

    run_secs: tuple[float, ...] | None
    error: str | None = None
    error_class: str | None = None  # "run" or "timeout" (see collectors.events.ERROR_CLASSES)


@dataclass
class ProfileBatch:
    """Outcomes in candidate order; ``None`` where the device was lost before measuring."""

    outcomes: list[RunOutcome | None]
    unavailable: str | None = None


class DeviceUnavailable(RuntimeError):
    """The device could not be reached (not a fault of the candidate)."""


# --- what runs in the worker processes ----------------------------------------------------


def _allocate(device: Any, args_info: ArgsInfo, f_random_fill: Any) -> list[Any]:
    import tvm

    args = []
    for info in args_info:
        kind, dtype, shape = info[0], info[1], info[2]
        if kind != "TENSOR":
            raise TypeError(f"cannot allocate an argument of kind {kind!r}")
        tensor = tvm.runtime.empty(shape=tuple(shape), dtype=dtype, device=device)
        f_random_fill(tensor)
        args.append(tensor)
    return args


# Each repeat is sized to last this much longer than ``min_repeat_ms``: enough that the
# run-to-run noise of a repeat does not take it below the minimum.
REPEAT_MARGIN = 1.1
# The probe that sizes the repeats lasts at least this share of ``min_repeat_ms``.
PROBE_SHARE = 1 / 8


def repeat_number(per_run_s: float, config: EvalConfig) -> int:
    """Runs per repeat so that one repeat lasts ``REPEAT_MARGIN`` times ``min_repeat_ms``,
    given one run's time from a probe (never fewer than ``config.number``).

    TVM's ``time_evaluator`` grows ``number`` until a repeat lasts ``min_repeat_ms``, aiming
    at the minimum itself: about half the time the first sized repeat falls just short, is
    thrown away, and that repeat and every later one run 1.6 times longer, so a candidate
    held the device about 1.6-1.7 times the time its repeats needed
    (``benchmarks/timing_bench.py``). Sized with a margin, each repeat runs once.
    """
    if config.min_repeat_ms <= 0 or per_run_s <= 0:
        return config.number
    wanted = math.ceil(config.min_repeat_ms * 1e-3 * REPEAT_MARGIN / per_run_s)
    return max(config.number, wanted)


def _time(
    rt_mod: Any, device: Any, args: list[Any], config: EvalConfig, *, on_cpu: bool = True
) -> list[float]:
    """Time the module on ``device``; the CPU's caches are flushed between runs if asked.

    A probe first times one run (over ``PROBE_SHARE`` of ``min_repeat_ms``) to size
    ``number`` (``repeat_number``); ``min_repeat_ms`` still holds for every repeat.
    """
    flush = config.cache_flush and on_cpu
    number = config.number
    if config.min_repeat_ms > 0:
        probe = rt_mod.time_evaluator(
            rt_mod.entry_name,
            device,
            number=1,
            repeat=1,
            min_repeat_ms=max(1, math.ceil(config.min_repeat_ms * PROBE_SHARE)),
        )
        number = repeat_number(float(probe(*args).mean), config)
    evaluator = rt_mod.time_evaluator(
        rt_mod.entry_name,
        device,
        number=number,
        repeat=config.repeat,
        min_repeat_ms=config.min_repeat_ms,
        cooldown_interval_ms=config.cooldown_ms,
        f_preproc="cache_flush_cpu_non_first_arg" if flush else "",
    )
    device.sync()
    return [float(s) for s in evaluator(*args).results]


def run_local(
    artifact: str,
    args_info: ArgsInfo,
    config: EvalConfig,
    device: tuple[str, int] = ("cpu", 0),
    *,
    own_thread: bool = True,
) -> list[float]:
    """Runs in the device worker: load a built candidate and time it on the local
    ``device`` (``("cpu", 0)``, or ``("cuda", N)`` for a GPU).

    On the CPU the candidate runs on a thread of its own (``own_thread=False``: on the
    calling thread, which ``benchmarks/layout_bench.py`` compares): on a process's main
    thread one kernel's time can differ by a third between processes, on other threads it
    holds, so a time recorded here is one that another process repeats.
    """
    import tvm

    rt_mod = tvm.runtime.load_module(artifact)
    on_cpu = device[0] == "cpu"
    dev = tvm.runtime.device(*device)
    fill = tvm.get_global_func("tvm.contrib.random.random_fill_for_measure")

    def measure() -> list[float]:
        return _time(rt_mod, dev, _allocate(dev, args_info, fill), config, on_cpu=on_cpu)

    return on_new_thread(measure) if on_cpu and own_thread else measure()


def run_rpc(
    tracker: tuple[str, int, str],
    session_timeout_s: float,
    artifact: str,
    args_info: ArgsInfo,
    config: EvalConfig,
) -> list[float]:
    """Runs in an RPC client worker: one session via the tracker, upload, load, time."""
    from tvm import rpc

    host, port, key = tracker
    try:
        if not tracker_servers(host, port, key, timeout_s=session_timeout_s):
            raise DeviceUnavailable(f"no server registered under key {key!r} at {host}:{port}")
        session = rpc.connect_tracker(host, port).request(
            key, priority=1, session_timeout=session_timeout_s, max_retry=1
        )
        remote_name = f"tuneloom-{os.getpid()}-{next(_UPLOADS)}.so"
        session.upload(artifact, remote_name)
        rt_mod = session.load_module(remote_name)
        device = session.device("cpu", 0)
        fill = session.get_function("tvm.contrib.random.random_fill_for_measure")
    except DeviceUnavailable:
        raise
    except Exception as exc:  # the session could not be opened: the device, not the candidate
        raise DeviceUnavailable(f"{key} at {host}:{port}: cannot open a session: {exc}") from exc
    try:
        return _time(rt_mod, device, _allocate(device, args_info, fill), config)
    finally:
        # The server may be gone by now; the measurement stands either way.
        with contextlib.suppress(Exception):
            session.remove(remote_name)


_UPLOADS = itertools.count()


def tracker_servers(host: str, port: int, key: str, *, timeout_s: float = 5.0) -> int:
    """How many servers the tracker at ``host:port`` lists under ``key``.

    Raises DeviceUnavailable when the tracker cannot be reached within ``timeout_s``.
    """
    from tvm.rpc import base

    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
            magic = struct.unpack("<i", base.recvall(sock, 4))[0]
            if magic != base.RPC_TRACKER_MAGIC:
                raise DeviceUnavailable(f"{host}:{port} is not a TVM RPC tracker")
            base.sendjson(sock, [base.TrackerCode.SUMMARY])
            code, summary = base.recvjson(sock)
    except (OSError, ValueError) as exc:
        raise DeviceUnavailable(f"cannot reach the RPC tracker at {host}:{port}: {exc}") from None
    if code != base.TrackerCode.SUCCESS:
        raise DeviceUnavailable(f"the RPC tracker at {host}:{port} answered {code!r}")
    wanted = f"server:{key}"
    return sum(1 for server in summary.get("server_info", []) if server.get("key") == wanted)


# --- profilers (parent side) --------------------------------------------------------------


class LocalProfiler:
    """Times candidates on this machine in one long-lived worker pinned to ``cores``, on
    the CPU or on the ``device`` it names (``("cuda", N)``: GPU N, driven from the worker)."""

    def __init__(
        self,
        cores: Sequence[int] | None,
        *,
        evaluator: EvalConfig | None = None,
        timeout_s: float = 10.0,
        name: str = "device",
        device: tuple[str, int] = ("cpu", 0),
    ) -> None:
        self.evaluator = evaluator or EvalConfig()
        self.timeout_s = timeout_s
        self.device = device
        self.worker = PinnedWorker(cores, imports=RUN_IMPORTS, name=f"{name} worker")

    def start(self) -> None:
        """Start the worker now (normally it starts on the first candidate)."""
        self.worker.start()

    def profile(self, artifacts: Sequence[str], args_info: Sequence[ArgsInfo]) -> ProfileBatch:
        outcomes: list[RunOutcome | None] = [None] * len(artifacts)
        for i, (artifact, info) in enumerate(zip(artifacts, args_info, strict=True)):
            try:
                self.worker.start()
            except Exception as exc:
                return ProfileBatch(outcomes, f"the device worker cannot start: {exc}")
            outcomes[i] = _measure(
                self.worker,
                run_local,
                (artifact, info, self.evaluator, self.device),
                self.timeout_s,
            )
        return ProfileBatch(outcomes)

    def close(self) -> None:
        self.worker.close()


class RPCProfiler:
    """Times candidates on servers registered under ``key`` at a TVM RPC tracker.

    Each candidate is one session, asked for through the tracker and bounded by ``timeout_s``
    plus ``connect_timeout_s``: on the server side as the session timeout, on this side as
    the deadline of the worker process that runs the client.
    """

    def __init__(
        self,
        host: str,
        port: int,
        key: str,
        *,
        evaluator: EvalConfig | None = None,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        name: str | None = None,
    ) -> None:
        self.host, self.port, self.key = host, port, key
        self.evaluator = evaluator or EvalConfig()
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.worker = PinnedWorker(None, imports=RUN_IMPORTS, name=name or f"rpc {key} client")

    def wait_for_server(self, timeout_s: float | None = None) -> str | None:
        """Wait until the tracker lists a server under the key; returns why not, or None."""
        deadline = time.monotonic() + (self.connect_timeout_s if timeout_s is None else timeout_s)
        reason = None
        while True:
            try:
                if tracker_servers(self.host, self.port, self.key, timeout_s=2.0):
                    return None
                reason = f"no server registered under key {self.key!r} at {self.host}:{self.port}"
            except DeviceUnavailable as exc:
                reason = str(exc)
            if time.monotonic() >= deadline:
                return reason
            time.sleep(0.2)

    def profile(self, artifacts: Sequence[str], args_info: Sequence[ArgsInfo]) -> ProfileBatch:
        outcomes: list[RunOutcome | None] = [None] * len(artifacts)
        tracker = (self.host, self.port, self.key)
        session_timeout = self.timeout_s + self.connect_timeout_s
        for i, (artifact, info) in enumerate(zip(artifacts, args_info, strict=True)):
            try:
                outcomes[i] = _measure(
                    self.worker,
                    run_rpc,
                    (tracker, session_timeout, artifact, info, self.evaluator),
                    session_timeout,
                )
            except DeviceUnavailable as exc:
                return ProfileBatch(outcomes, error_message(exc))
        return ProfileBatch(outcomes)

    def close(self) -> None:
        self.worker.close()


def times_host_cpu(profiler: LocalProfiler | RPCProfiler) -> bool:
    """Whether ``profiler`` times candidates on this machine's CPU cores, beside the client
    work of the same machine (not on a GPU, not on an RPC server)."""
    return isinstance(profiler, LocalProfiler) and profiler.device[0] == "cpu"


def _measure(worker: PinnedWorker, fn: Any, args: tuple[Any, ...], timeout_s: float) -> RunOutcome:
    """One candidate on ``worker``: DeviceUnavailable propagates, other failures are outcomes."""
    try:
        secs = worker.call(fn, *args, timeout=timeout_s)
    except WorkerTimeout:
        return RunOutcome(None, f"run timed out after {timeout_s:g} s", "timeout")
    except WorkerCrashed as exc:
        return RunOutcome(None, f"run crashed: {exc}", "run")
    except DeviceUnavailable:
        raise
    except Exception as exc:
        return RunOutcome(None, f"run failed: {error_message(exc)}\n{exc}", "run")
    if not secs:
        return RunOutcome(None, "run returned no timings", "run")
    return RunOutcome(tuple(secs))
