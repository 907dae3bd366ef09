"""Search over the sets of scheduled nodes, level by level (the set's size): exact dynamic
programming when the levels are kept whole, beam search when each is cut to a width.

Every set is reached by its best path only (the memo of Serenity, MLSys 2020: the bytes
resident after a set do not depend on the order that ran it), and a set is dropped when its
peak so far, or a lower bound on the rest of any order through it, is not below ``budget``
(the peak of an order already known). A ready node that frees at least what it keeps and
whose step stays within the peak so far (or the graph's lower bound) is run at once, alone:
moving it to the front of any completion lowers no later step's memory by less than zero
and adds a step no higher than a peak the order reaches anyway, so an optimal order through
the set still exists.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

from tuner.memory.bounds import PeakBounds
from tuner.memory.scheduling import ScheduleSpace

# A state: (peak so far, resident bytes, ready mask, bytes of model outputs made, last node).
_State = tuple[int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """``order``/``peak``: the best order found below the budget (None when none is).
    ``exact``: every level was searched whole, so ``order`` is optimal (or, when None, no
    order is below the budget). ``bound``: a lower bound on the best peak of any order,
    raised by the last level searched whole. ``states``: sets expanded."""

    order: tuple[int, ...] | None
    peak: int | None
    exact: bool
    bound: int
    states: int


def level_search(
    space: ScheduleSpace,
    bounds: PeakBounds,
    *,
    budget: int,
    width: int | None = None,
    deadline: float = float("inf"),
    max_level_states: int = 3_000_000,
) -> SearchOutcome:
    """Orders with a peak below ``budget``: the best one (exact) when ``width`` is None and
    neither the ``deadline`` nor ``max_level_states`` stops the search, else the best that a
    beam of ``width`` sets per level kept."""
    ranked_floors = sorted(range(space.n_nodes), key=lambda v: -bounds.floors[v])
    parents: dict[int, int] = {}
    start: _State = (0, space.initial_bytes, space.ready(0), space.constant_bytes, -1)
    level: dict[int, _State] = {0: start}
    bound, whole, expanded = bounds.peak, True, 0
    for _ in range(space.n_nodes):
        if whole:
            # An optimal order below the budget passes through one of these sets.
            lowest = min(_state_bound(done, s, bounds, ranked_floors) for done, s in level.items())
            bound = max(bound, min(lowest, budget))
            if bound >= budget:
                return SearchOutcome(None, None, True, budget, expanded)
        following: dict[int, _State] = {}
        for done, state in level.items():
            expanded += 1
            if not expanded & 1023 and (
                time.perf_counter() > deadline or len(following) > max_level_states
            ):
                return SearchOutcome(None, None, False, bound, expanded)
            _expand(space, bounds, ranked_floors, done, state, budget, following)
        if width is not None and len(following) > width:
            kept = heapq.nsmallest(width, following.items(), key=lambda item: item[1][:2])
            following, whole = dict(kept), False
        parents.update((done, state[4]) for done, state in following.items())
        level = following
        if not level:
            return SearchOutcome(None, None, whole, budget if whole else bound, expanded)
    ((done, state),) = level.items()
    return SearchOutcome(_backtrack(parents, done), state[0], whole, bound, expanded)


def _expand(
    space: ScheduleSpace,
    bounds: PeakBounds,
    ranked_floors: list[int],
    done: int,
    state: _State,
    budget: int,
    following: dict[int, _State],
) -> None:
    """Add the sets one ready node after ``done`` to ``following`` (the best path to each).
    (``ScheduleSpace.step`` inlined: this is the search's inner loop.)"""
    peak, resident, ready, made, _ = state
    out_bytes, kept_out_bytes, freeable_reads = (
        space.out_bytes,
        space.kept_out_bytes,
        space.freeable_reads,
    )
    unread = 0 if done else space.unread_input_bytes
    free_step = max(peak, bounds.peak)
    moves = []
    rest = ready
    while rest:
        bit = rest & -rest
        rest ^= bit
        node = bit.bit_length() - 1
        during = resident + out_bytes[node]
        if during >= budget:
            continue  # neither a move below the budget nor a free one (peak < budget)
        child = done | bit
        keeps = kept_out_bytes[node]
        for readers, size in freeable_reads[node]:
            if readers & child == readers:
                keeps -= size
        move = (node, bit, child, during, resident + keeps - unread)
        if keeps <= 0 and during <= free_step:
            moves = [move]
            break
        moves.append(move)
    top_floor = bounds.floors[ranked_floors[0]] if ranked_floors else 0
    for node, bit, child, during, after in moves:
        reached = peak if peak > during else during
        child_made = made + space.model_out_bytes[node]
        if child_made + top_floor >= budget and (
            child_made + _max_floor(child, bounds, ranked_floors) >= budget
        ):
            continue
        known = following.get(child)
        if known is None or known[0] > reached:
            child_ready = ready ^ bit | space.newly_ready(child, node)
            following[child] = (reached, after, child_ready, child_made, node)


def _max_floor(done: int, bounds: PeakBounds, ranked_floors: list[int]) -> int:
    for node in ranked_floors:
        if not done >> node & 1:
            return bounds.floors[node]
    return 0


def _state_bound(done: int, state: _State, bounds: PeakBounds, ranked_floors: list[int]) -> int:
    return max(state[0], state[3] + _max_floor(done, bounds, ranked_floors))


def _backtrack(parents: dict[int, int], done: int) -> tuple[int, ...]:
    order = []
    while done:
        node = parents[done]
        order.append(node)
        done ^= 1 << node
    return tuple(reversed(order))
