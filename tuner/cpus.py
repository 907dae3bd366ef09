"""Core pinning plan: which CPU cores the client work and each local device may use.

Client stages (select, build, update) and profiling must never share a core, or a build
disturbs the measurement it runs beside. ``plan_cpus`` splits the cores this process may
use: devices take the highest-numbered cores, the client keeps the rest (on 2 cores: client
core 0, device core 1). With too few cores for a split, the plan says ``shared``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Cores of the client (``client``) and of each local device (``devices[i]``)."""

    client: tuple[int, ...]
    devices: tuple[tuple[int, ...], ...]
    shared: bool = False  # True when there were too few cores to keep them apart

    def describe(self) -> str:
        parts = [f"client: {_cores(self.client)}"]
        parts += [f"device {i}: {_cores(cores)}" for i, cores in enumerate(self.devices)]
        note = " (shared: too few cores to keep builds off the devices)" if self.shared else ""
        return "; ".join(parts) + note


def plan_cpus(available: Iterable[int], devices: int = 1) -> CpuPlan:
    """Split ``available`` cores between the client and ``devices`` local devices.

    Each device gets ``max(1, (n // 2) // devices)`` of the highest cores and the client
    the rest. With fewer than ``devices + 1`` cores every device gets one core (wrapping
    around) and the client all of them, marked ``shared``.
    """
    cores = tuple(sorted(set(available)))
    if not cores:
        raise ValueError("no CPU cores available")
    if devices < 0:
        raise ValueError(f"devices must be >= 0, got {devices}")
    if devices == 0:
        return CpuPlan(client=cores, devices=())
    if len(cores) < devices + 1:
        wrapped = tuple((cores[-1 - (i % len(cores))],) for i in range(devices))
        return CpuPlan(client=cores, devices=wrapped, shared=True)
    per_device = max(1, (len(cores) // 2) // devices)
    split = len(cores) - per_device * devices
    device_cores = tuple(
        cores[split + i * per_device : split + (i + 1) * per_device] for i in range(devices)
    )
    return CpuPlan(client=cores[:split], devices=device_cores)


def available_cpus() -> tuple[int, ...]:
    """Cores this process may run on."""
    return tuple(sorted(os.sched_getaffinity(0)))


def pin_thread(cores: Sequence[int]) -> None:
    """Pin the calling thread (and threads it starts later) to ``cores``."""
    os.sched_setaffinity(0, set(cores))


def pin_process(cores: Sequence[int]) -> None:
    """Pin every thread of this process to ``cores`` (threads started later inherit it)."""
    wanted = set(cores)
    for name in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(name), wanted)
        except ProcessLookupError:  # the thread ended meanwhile
            continue


def _cores(cores: Sequence[int]) -> str:
    return f"core{'s' if len(cores) > 1 else ''} {','.join(map(str, cores))}"
