"""The DRAM traffic of running an order with a small fast memory (a TCM) beside DRAM.

The model. Every tensor a node reads or writes is, during that step, either resident in
the TCM or accessed in DRAM directly (streamed): a kernel may read an operand from DRAM and
write its output to DRAM when they are not in the TCM. Between two uses a tensor stays in
the TCM or not. The TCM holds at most ``tcm_bytes`` at every step (the resident operands of
the step's node and every tensor kept through the step), so any size >= 0 has a plan (with
0 every access streams). Traffic counts every byte read from or written to DRAM:

- a read of a tensor that did not stay in the TCM since its previous use moves its bytes,
  whether it is loaded into the TCM for the step or streamed;
- a tensor a node writes is written to DRAM at most once (tensors are immutable, so a DRAM
  copy stays valid): when it is streamed out, when it leaves the TCM before a later use, or
  because it is a model output.

A model input starts in DRAM; a model output must end in DRAM. Keeping a tensor through a
gap between two uses needs it resident at both (else keeping it buys nothing), so a plan is
a resident-or-streamed decision per use and a keep-or-drop decision per gap (``Use``,
``Gap``). Empty tensors cost nothing and are left out.

The compulsory traffic, a lower bound on any plan: every model input that is read is read
once, every model output a node writes is written once, and a tensor larger than the whole
TCM can never be resident, so each of its uses moves its bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tuner.memory.graph import MemoryGraph
from tuner.memory.profile import check_order, peak_bytes


@dataclass(frozen=True, slots=True)
class Use:
    """``tensor`` used at ``step``: written there (``writes``) or read."""

    tensor: str
    step: int
    writes: bool
    bytes: int


@dataclass(frozen=True, slots=True)
class Gap:
    """Between ``tensor``'s uses ``uses[first]`` and ``uses[first + 1]`` (at steps ``after``
    and ``before``): it may stay in the TCM through the steps strictly between."""

    tensor: str
    first: int  # index into TcmModel.uses of the use before the gap
    after: int
    before: int
    bytes: int


@dataclass(frozen=True, slots=True)
class TcmModel:
    """An order's uses of every non-empty tensor and the gaps between them, for a TCM of
    ``tcm_bytes``."""

    order: tuple[int, ...]
    tcm_bytes: int
    uses: tuple[Use, ...]  # grouped by tensor, in step order within a tensor
    gaps: tuple[Gap, ...]
    gap_before: tuple[int | None, ...]  # per use: the gap that ends at it, if any
    gaps_of: dict[str, tuple[int, ...]]  # per produced tensor: its gaps
    first_use: dict[str, int]  # per tensor: the index of its first use
    sizes: dict[str, int]
    produced: frozenset[str]
    outputs: frozenset[str]
    compulsory_dram_bytes: int


@dataclass(frozen=True, slots=True)
class TcmPlan:
    """Which tensors are in the TCM at each step and what moves between it and DRAM.

    ``loads``: (step, tensor) loaded into the TCM for that step. ``streamed``: (step,
    tensor) read from or written to DRAM directly by that step's node. ``spills``: (step,
    tensor) copied from the TCM to DRAM after that step (model outputs included).
    ``optimal``: no plan moves fewer bytes. ``method``: how the plan was found."""

    dram_bytes: int
    placement: tuple[tuple[str, ...], ...]
    loads: tuple[tuple[int, str], ...]
    spills: tuple[tuple[int, str], ...]
    optimal: bool
    method: str
    solve_s: float
    streamed: tuple[tuple[int, str], ...] = ()


def compulsory_dram_bytes(graph: MemoryGraph, tcm_bytes: int | None = None) -> int:
    """The traffic of any plan (see the module docstring); without ``tcm_bytes``, only the
    model inputs read once and the model outputs written once."""
    total = 0
    for t in graph.tensors.values():
        reads = len(t.consumers)
        too_big = tcm_bytes is not None and t.bytes > tcm_bytes
        if t.producer is None:
            total += t.bytes * (reads if too_big else min(reads, 1))
        elif too_big:
            total += t.bytes * (1 + reads)
        elif t.is_output:
            total += t.bytes
    return total


def tcm_model(graph: MemoryGraph, order: Sequence[int], tcm_bytes: int) -> TcmModel:
    """The model of ``order`` with a TCM of ``tcm_bytes``; ValueError (one line) for a
    negative size or a TCM that holds the order's whole peak (the order is checked too)."""
    if tcm_bytes < 0:
        raise ValueError(
            f"the TCM size must be zero or a positive number of bytes, not {tcm_bytes}"
        )
    check_order(graph, order)
    peak = peak_bytes(graph, order)
    if tcm_bytes >= peak:
        compulsory = compulsory_dram_bytes(graph)
        raise ValueError(
            f"a TCM of {tcm_bytes} bytes holds this order's peak of {peak} bytes: every tensor "
            f"fits, so the DRAM traffic is the compulsory {compulsory} bytes"
        )
    steps: dict[str, list[tuple[int, bool]]] = {}
    for step, node_index in enumerate(order):
        node = graph.nodes[node_index]
        for name in dict.fromkeys(node.inputs):
            steps.setdefault(name, []).append((step, False))
        for name in dict.fromkeys(node.outputs):
            steps.setdefault(name, []).append((step, True))
    uses: list[Use] = []
    gaps: list[Gap] = []
    gap_before: list[int | None] = []
    gaps_of: dict[str, list[int]] = {}
    first_use: dict[str, int] = {}
    for name, tensor_steps in steps.items():
        size = graph.tensors[name].bytes
        if not size:
            continue
        first_use[name] = len(uses)
        tensor_steps.sort(key=lambda s: (s[0], not s[1]))
        for i, (step, writes) in enumerate(tensor_steps):
            if i:
                gaps.append(Gap(name, len(uses) - 1, uses[-1].step, step, size))
                gaps_of.setdefault(name, []).append(len(gaps) - 1)
                gap_before.append(len(gaps) - 1)
            else:
                gap_before.append(None)
            uses.append(Use(name, step, writes, size))
    return TcmModel(
        order=tuple(order),
        tcm_bytes=tcm_bytes,
        uses=tuple(uses),
        gaps=tuple(gaps),
        gap_before=tuple(gap_before),
        gaps_of={name: tuple(g) for name, g in gaps_of.items()},
        first_use=first_use,
        sizes={name: t.bytes for name, t in graph.tensors.items()},
        produced=frozenset(n for n, t in graph.tensors.items() if t.producer is not None),
        outputs=frozenset(n for n, t in graph.tensors.items() if t.is_output),
        compulsory_dram_bytes=compulsory_dram_bytes(graph, tcm_bytes),
    )


def plan_from_decisions(
    model: TcmModel,
    resident: Sequence[bool],
    kept: Sequence[bool],
    *,
    optimal: bool,
    method: str,
    solve_s: float,
) -> TcmPlan:
    """The plan with ``model.uses[i]`` resident when ``resident[i]`` and ``model.gaps[j]``'s
    tensor kept in the TCM through it when ``kept[j]`` (ValueError if a kept gap does not
    have both its uses resident, or the TCM overflows at some step)."""
    placement: list[dict[str, None]] = [{} for _ in model.order]
    for use, res in zip(model.uses, resident, strict=True):
        if res:
            placement[use.step][use.tensor] = None
    for gap, keep in zip(model.gaps, kept, strict=True):
        if not keep:
            continue
        if not (resident[gap.first] and resident[gap.first + 1]):
            raise ValueError(
                f"{gap.tensor} is kept through steps {gap.after}-{gap.before} "
                "without being resident at both ends"
            )
        for step in range(gap.after + 1, gap.before):
            placement[step][gap.tensor] = None
    for step, names in enumerate(placement):
        held = sum(model.sizes[name] for name in names)
        if held > model.tcm_bytes:
            raise ValueError(f"the plan holds {held} bytes at step {step}, above the TCM")
    loads, streamed, spills = [], [], []
    for i, use in enumerate(model.uses):
        gap = model.gap_before[i]
        arrived = gap is not None and kept[gap]
        if use.writes:
            if not resident[i]:
                streamed.append((use.step, use.tensor))
            else:
                dropped = [g for g in model.gaps_of.get(use.tensor, ()) if not kept[g]]
                if dropped or use.tensor in model.outputs:
                    last = model.gaps[dropped[0]].after if dropped else _last_step(model, use)
                    spills.append((last, use.tensor))
        elif not arrived:
            (loads if resident[i] else streamed).append((use.step, use.tensor))
    dram_bytes = sum(model.sizes[name] for _, name in (*loads, *streamed, *spills))
    return TcmPlan(
        dram_bytes=dram_bytes,
        placement=tuple(tuple(names) for names in placement),
        loads=tuple(sorted(loads)),
        spills=tuple(sorted(spills)),
        optimal=optimal or dram_bytes == model.compulsory_dram_bytes,
        method=method,
        solve_s=solve_s,
        streamed=tuple(sorted(streamed)),
    )


def _last_step(model: TcmModel, use: Use) -> int:
    gaps = model.gaps_of.get(use.tensor, ())
    return model.gaps[gaps[-1]].before if gaps else use.step
