"""Quiet profiles: timing a would-be best while no client work runs on this machine.

A profile on a core of this machine runs beside whatever the client cores do at the time:
a search or a build beside it costs the timed kernel 1-4 % (shared cache, memory
bandwidth), so a task's best recorded in the middle of other jobs' work sits above the same
schedule timed alone. A driver asks for a *quiet* profile (``JobDriver.wants_quiet``) to time
a candidate that would become its task's best once more; the scheduler starts it only when
no select, build or update runs on a local resource (client cores, or a device lent to
client work), and starts none of those until it ends.

``plan_quiet`` decides each dispatch pass (pure). With one client resource (``tune``'s
default) a quiet profile starts at the next moment the client stage ends while its device
is free, and costs the client only the profile itself. With several client resources, a
free one is held back while the others finish, for at most ``hold_s``; a quiet profile that
waited ``patience_s`` in all, or whose hold ran out, is demoted to an ordinary profile, so
no task waits for a quiet moment that does not come. A quiet profile also keeps the turn of
the batch it follows (its request's ``since`` is that batch's): rather than let a profile
that became ready after that batch take its device, it is demoted and runs then, beside the
client work (``overtaken``). So a task waits for a quiet moment only while its device has no
other batch to take, and timing its would-be best quietly does not send it to the back of
the device's queue, behind batches that its own update and next select would have preceded.

``RETIME_MODES`` are the ways a job may time its would-be bests again: ``quiet`` (on this
machine's cores in a quiet profile, the record keeping the quiet timing, or, where it
``timings_disagree`` with the batch's, the ``median_timing`` of those two and a third; on a
GPU or an RPC device, whose timing the client cores do not disturb, in the same profile),
``inline`` (in the same profile, beside whatever runs; the record holds both timings) or
``off`` (not at all: the record holds the batch's timing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tuner._base import CLIENT_POOL, Assignment, StageRequest, TunerError, resource_pool

QUIET_HOLD_S = 1.0  # most seconds free client resources wait for the others to finish
QUIET_PATIENCE_S = 120.0  # most seconds a quiet profile waits before it runs as any profile
RETIME_MODES = ("quiet", "inline", "off")
# A quiet timing further than this from the batch's timing of the same candidate (either
# way, relative to the faster) gets a third timing, and the record keeps the median.
RETIME_AGREE = 0.03


def timings_disagree(first_s: float, again_s: float, tolerance: float = RETIME_AGREE) -> bool:
    """Whether two timings of one candidate (mean seconds) differ by more than
    ``tolerance`` of the faster: one of them was disturbed, or the host is noisy."""
    return abs(first_s - again_s) > tolerance * min(first_s, again_s)


def median_timing(timings: Sequence[Sequence[float]]) -> Sequence[float]:
    """Of a candidate's timings (each a list of run seconds), the one whose mean is the
    median (of an even count, the faster of the middle two): one disturbed or lucky timing,
    either way, does not decide."""
    if not timings:
        raise ValueError("no timings to choose from")
    ranked = sorted(timings, key=lambda secs: sum(secs) / len(secs))
    return ranked[(len(ranked) - 1) // 2]


def check_retime(mode: object) -> str:
    """``mode`` if it is one of ``RETIME_MODES``; else a TunerError naming them."""
    if mode not in RETIME_MODES:
        raise TunerError(f"unknown retime mode {mode!r} (modes: {', '.join(RETIME_MODES)})")
    return str(mode)


@dataclass(frozen=True, slots=True)
class QuietPlan:
    """One pass's decision: the quiet profiles to start (``start``), the free resources no
    other stage may take this pass (``hold``), the free devices not to lend to client work
    (``no_lend``), the requests to run as ordinary profiles (``demote``) and when the current
    hold of client resources began (``hold_since``, None: none held)."""

    start: tuple[Assignment, ...] = ()
    hold: frozenset[str] = frozenset()
    no_lend: frozenset[str] = frozenset()
    demote: tuple[StageRequest, ...] = ()
    hold_since: float | None = None


def plan_quiet(
    waiting: Sequence[StageRequest],
    free: Sequence[str],
    *,
    client_work: bool,
    quiet_running: bool,
    hold_since: float | None,
    now: float,
    hold_s: float = QUIET_HOLD_S,
    patience_s: float = QUIET_PATIENCE_S,
    queued: Mapping[str, Sequence[float]] | None = None,
) -> QuietPlan:
    """Decide the quiet profiles of one dispatch pass.

    ``waiting`` are the quiet profile requests, longest waiting first; ``free`` the resources
    no stage holds; ``client_work`` whether a select, build or update runs on a client
    resource or a lent device now; ``quiet_running`` whether a quiet profile runs now;
    ``queued[pool]`` when each ordinary profile waiting for that pool became ready.
    Rules, in order: a request that waited ``patience_s`` is demoted; with no client work
    running, every request whose pool has a free resource starts there; a request that could
    not start and whose pool's free devices would all go to waiting profiles, one of them
    ready after it, is demoted (``overtaken``); while a quiet
    profile runs (or starts), free client resources are held and no device is lent; while
    one waits with a free device and only client work in its way, free client resources are
    held for at most ``hold_s`` (then the waiting requests are demoted), and the free devices
    it could use are not lent."""
    demote = [q for q in waiting if q.since is not None and now - q.since >= patience_s]
    waiting = [q for q in waiting if q not in demote]
    available = list(free)
    start: list[Assignment] = []
    if not client_work:
        for q in waiting:
            resource = next((r for r in available if resource_pool(r) == q.pool), None)
            if resource is not None:
                available.remove(resource)
                start.append(Assignment(q, resource))
    started = {a.stage for a in start}
    waiting = [q for q in waiting if q not in started]
    if queued:
        passed = overtaken(waiting, available, queued)
        demote += passed
        waiting = [q for q in waiting if q not in passed]
    clients = frozenset(r for r in available if resource_pool(r) == CLIENT_POOL)
    if quiet_running or start:
        return QuietPlan(tuple(start), clients, frozenset(available), tuple(demote), None)
    wanted_pools = {q.pool for q in waiting}
    devices = frozenset(r for r in available if resource_pool(r) in wanted_pools)
    if not devices:  # every device they need is busy: nothing to hold for them yet
        return QuietPlan(demote=tuple(demote))
    if not clients:  # only busy client work in the way: wait for it, lending nothing
        return QuietPlan(no_lend=devices, demote=tuple(demote))
    since = now if hold_since is None else hold_since
    if now - since >= hold_s:
        return QuietPlan(demote=tuple(demote + waiting))
    return QuietPlan(hold=clients, no_lend=devices, demote=tuple(demote), hold_since=since)


def overtaken(
    waiting: Sequence[StageRequest], free: Sequence[str], queued: Mapping[str, Sequence[float]]
) -> list[StageRequest]:
    """The quiet requests (``waiting``, longest waiting first) that the ordinary profiles
    ``queued`` for their pool (when each became ready) would pass this pass: the pool's
    ``free`` devices are enough for every profile ready before the request, and too few for
    all of them. Each such request takes one of those devices, in its turn."""
    passed: list[StageRequest] = []
    taken: dict[str, int] = {}
    for q in waiting:
        if q.since is None:
            continue
        devices = sum(1 for r in free if resource_pool(r) == q.pool) - taken.get(q.pool, 0)
        ready = queued.get(q.pool, ())
        before = sum(1 for since in ready if since <= q.since)
        if before < devices <= len(ready):
            passed.append(q)
            taken[q.pool] = taken.get(q.pool, 0) + 1
    return passed
