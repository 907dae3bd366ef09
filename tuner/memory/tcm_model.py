"""The DRAM traffic of running an order with a small fast memory (a TCM) beside DRAM.

The model. At every step a live tensor is in the TCM or only in DRAM; the tensors a node
reads and writes must all be in the TCM during its step, and the TCM holds at most
``tcm_bytes`` at any step. A node whose own inputs and outputs exceed the TCM is an error
(no streaming). Loading a tensor from DRAM into the TCM moves its bytes; writing a tensor
from the TCM to DRAM (a spill) moves its bytes, and is needed only for a tensor read again
after it leaves the TCM, or a model output. Tensors are immutable, so a DRAM copy stays
valid: a tensor is written at most once, and dropping a tensor from the TCM when DRAM holds
it, or when it is never needed again, is free. A model input starts in DRAM; a model output
must end in DRAM. The compulsory traffic (loading every model input that is read once,
storing every model output a node writes once) is a lower bound on any plan.

Between two consecutive uses of a tensor (its producer's step and its readers' steps), a
plan either keeps it in the TCM through the steps in between or drops it right after the
first use and loads it back right before the next: any other choice costs no less and
occupies the TCM at least as much. So a plan is one keep-or-drop decision per such gap,
and only gaps with steps in between are decisions (``Gap``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from tuner.memory.graph import MemoryGraph
from tuner.memory.profile import peak_bytes


@dataclass(frozen=True, slots=True)
class Gap:
    """Steps strictly between two consecutive uses of ``tensor`` (at ``after`` and
    ``before``) during which it may stay in the TCM."""

    tensor: str
    after: int
    before: int
    bytes: int


@dataclass(frozen=True, slots=True)
class TcmModel:
    """An order's tensor uses, sizes and keep-or-drop decisions, for a TCM of
    ``tcm_bytes``."""

    order: tuple[int, ...]
    tcm_bytes: int
    step_tensors: tuple[tuple[str, ...], ...]  # what each step's node reads and writes
    step_bytes: tuple[int, ...]  # their bytes
    sizes: dict[str, int]
    uses: dict[str, tuple[int, ...]]  # steps that produce or read each tensor
    produced: frozenset[str]  # tensors a node writes (the others are model inputs)
    outputs: frozenset[str]
    gaps: tuple[Gap, ...]
    compulsory_dram_bytes: int


@dataclass(frozen=True, slots=True)
class TcmPlan:
    """Which tensors are in the TCM at each step and what moves between it and DRAM.

    ``loads``: (step, tensor) loaded into the TCM before that step. ``spills``: (step,
    tensor) written to DRAM after that step (model outputs included). ``optimal``: no plan
    moves fewer bytes. ``method``: how the plan was found."""

    dram_bytes: int
    placement: tuple[tuple[str, ...], ...]
    loads: tuple[tuple[int, str], ...]
    spills: tuple[tuple[int, str], ...]
    optimal: bool
    method: str
    solve_s: float


def compulsory_dram_bytes(graph: MemoryGraph) -> int:
    """The traffic of any plan: every model input that is read loaded once, every model
    output that a node writes stored once."""
    return sum(
        t.bytes
        for t in graph.tensors.values()
        if (t.producer is None and t.consumers) or (t.producer is not None and t.is_output)
    )


def tcm_model(graph: MemoryGraph, order: Sequence[int], tcm_bytes: int) -> TcmModel:
    """The model of ``order`` with a TCM of ``tcm_bytes``; ValueError (one line) for a size
    that is not positive, a TCM that holds the order's whole peak, or a node that does not
    fit in it (the order is checked too)."""
    if tcm_bytes <= 0:
        raise ValueError(f"the TCM size must be a positive number of bytes, not {tcm_bytes}")
    peak = peak_bytes(graph, order)
    compulsory = compulsory_dram_bytes(graph)
    if tcm_bytes >= peak:
        raise ValueError(
            f"a TCM of {tcm_bytes} bytes holds this order's peak of {peak} bytes: every tensor "
            f"fits, so the DRAM traffic is the compulsory {compulsory} bytes"
        )
    step_tensors, step_bytes = [], []
    uses: dict[str, list[int]] = {}
    for step, node_index in enumerate(order):
        node = graph.nodes[node_index]
        names = tuple(dict.fromkeys((*node.inputs, *node.outputs)))
        size = sum(graph.tensors[name].bytes for name in names)
        if size > tcm_bytes:
            raise ValueError(
                f"node {node.name} reads and writes {size} bytes at once, more than the "
                f"TCM of {tcm_bytes} bytes"
            )
        step_tensors.append(names)
        step_bytes.append(size)
        for name in names:
            uses.setdefault(name, []).append(step)
    sizes = {name: t.bytes for name, t in graph.tensors.items()}
    gaps = tuple(
        Gap(name, after, before, sizes[name])
        for name, steps in uses.items()
        for after, before in pairwise(steps)
        if before - after > 1 and sizes[name] > 0
    )
    return TcmModel(
        order=tuple(order),
        tcm_bytes=tcm_bytes,
        step_tensors=tuple(step_tensors),
        step_bytes=tuple(step_bytes),
        sizes=sizes,
        uses={name: tuple(steps) for name, steps in uses.items()},
        produced=frozenset(n for n, t in graph.tensors.items() if t.producer is not None),
        outputs=frozenset(n for n, t in graph.tensors.items() if t.is_output),
        gaps=gaps,
        compulsory_dram_bytes=compulsory,
    )


def plan_from_keeps(
    model: TcmModel, kept: Sequence[bool], *, optimal: bool, method: str, solve_s: float
) -> TcmPlan:
    """The plan that keeps the tensor of ``model.gaps[i]`` in the TCM through its gap when
    ``kept[i]`` (ValueError if that overflows the TCM at some step)."""
    placement = [list(names) for names in model.step_tensors]
    held = list(model.step_bytes)
    dropped_gaps: dict[str, list[Gap]] = {}
    for gap, keep in zip(model.gaps, kept, strict=True):
        if keep:
            for step in range(gap.after + 1, gap.before):
                placement[step].append(gap.tensor)
                held[step] += gap.bytes
        else:
            dropped_gaps.setdefault(gap.tensor, []).append(gap)
    for step, size in enumerate(held):
        if size > model.tcm_bytes:
            raise ValueError(f"the plan holds {size} bytes at step {step}, above the TCM")
    loads, spills = [], []
    for name, steps in model.uses.items():
        if not model.sizes[name]:
            continue
        dropped = dropped_gaps.get(name, [])
        if name not in model.produced:
            loads.append((steps[0], name))
        loads += [(gap.before, name) for gap in dropped]
        if name in model.produced and (dropped or name in model.outputs):
            spills.append((dropped[0].after if dropped else steps[-1], name))
    dram_bytes = sum(model.sizes[name] for _, name in (*loads, *spills))
    return TcmPlan(
        dram_bytes=dram_bytes,
        placement=tuple(tuple(names) for names in placement),
        loads=tuple(sorted(loads)),
        spills=tuple(sorted(spills)),
        optimal=optimal or dram_bytes == model.compulsory_dram_bytes,
        method=method,
        solve_s=solve_s,
    )
