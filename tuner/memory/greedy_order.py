"""Greedy orders: at every step run the ready node that a rule ranks first (ties: TVM's
order)."""

from __future__ import annotations

from collections.abc import Callable

from tuner.memory.scheduling import ScheduleSpace

# A rule ranks a ready node from (bytes during its step, bytes resident after it).
GreedyRule = Callable[[int, int], tuple[int, ...]]

GREEDY_RULES: dict[str, GreedyRule] = {
    "least memory during the step": lambda during, after: (during, after),
    "least memory after the step": lambda during, after: (after, during),
}


def greedy_order(space: ScheduleSpace, rule: GreedyRule) -> tuple[int, ...]:
    """The order that always runs the ready node ranked first by ``rule``."""
    done, resident, ready = 0, space.initial_bytes, space.ready(0)
    order = []
    while ready:
        best = None
        rest = ready
        while rest:
            bit = rest & -rest
            rest ^= bit
            node = bit.bit_length() - 1
            during, after = space.step(done, resident, node)
            key = (*rule(during, after), node)
            if best is None or key < best[0]:
                best = (key, node, after)
        _, node, resident = best
        done |= 1 << node
        ready = ready ^ 1 << node | space.newly_ready(done, node)
        order.append(node)
    return tuple(order)
