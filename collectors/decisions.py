"""A measured candidate's schedule decisions as named features, from its stored trace text.

Pure and without TVM: each origin's trace is read as the store holds it.

- MetaSchedule (``[instructions, decisions]`` JSON, tuneloom's own records and imported
  databases): ``SamplePerfectTile`` tile sizes per loop (``tile j[inner]``), the
  ``SampleCategorical`` choices an annotation consumes (``unroll``), ``SampleComputeLocation``
  choices (``compute-at pad_temp``), and, where the trace determines them, the parallel extent
  and vector lanes its post-processing fused from tiled loops.
- AutoTVM (the config JSON): each knob; split knobs one feature per factor (``tile_x[inner]``).
- Ansor (the transform steps JSON): split factors (``split s11.i0[inner]``), unroll pragmas,
  annotations and compute locations.

A trace that cannot be read raises ``DecisionError`` with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

Value = int | float | str
LoopNames = Mapping[str, Sequence[str]]  # block name -> its loop names, outermost first

# Annotations a sampled choice feeds, as a person names them.
ANNOTATION_NAMES = {
    "meta_schedule.unroll_explicit": "unroll",
    "meta_schedule.unroll_implicit": "unroll (implicit)",
    "meta_schedule.cooperative_fetch": "fetch vector lanes",
    "meta_schedule.thread_extent_low_inclusive": "thread extent (low)",
    "meta_schedule.thread_extent_high_inclusive": "thread extent (high)",
}
# auto_scheduler IteratorAnnotation, in enum order.
ANSOR_ANNOTATIONS = (
    "none", "unroll", "vectorize", "parallel", "vthread", "blockIdx.x", "threadIdx.x",
    "blockIdx.y", "threadIdx.y", "blockIdx.z", "threadIdx.z", "tensorize",
)  # fmt: skip


class DecisionError(ValueError):
    """A trace whose decisions cannot be read; the message says why."""


def level_names(count: int) -> list[str]:
    """Names of the factors of a loop split ``count`` ways, outermost first."""
    if count == 1:
        return ["all"]
    if count == 2:
        return ["outer", "inner"]
    if count == 3:
        return ["outer", "mid", "inner"]
    return ["outer", *(f"mid{k}" for k in range(1, count - 1)), "inner"]


def decisions_of(
    trace: str | None, origin: str | None, loops: LoopNames | None = None
) -> dict[str, Value]:
    """The named decisions of one record's trace (``origin`` as the record says).

    ``loops`` names the loops of a MetaSchedule workload's blocks; without it a loop is named
    by its block and position (``conv2d_nhwc loop 3``). Raises DecisionError naming why the
    trace cannot be read.
    """
    if trace is None or not trace.strip():
        raise DecisionError("the record carries no trace")
    try:
        data = json.loads(trace)
    except json.JSONDecodeError as exc:
        raise DecisionError(f"the trace is not JSON ({exc.msg} at column {exc.colno})") from None
    kind = origin or ""
    if kind == "autotvm" or (not kind and isinstance(data, dict)):
        return autotvm_decisions(data)
    if kind == "ansor":
        return ansor_decisions(data)
    if kind in ("metaschedule", "") and isinstance(data, list):
        return metaschedule_decisions(data, loops)
    raise DecisionError(f"no decoder for traces of origin {origin!r}")


# --- MetaSchedule ------------------------------------------------------------------------


def metaschedule_decisions(trace: Any, loops: LoopNames | None = None) -> dict[str, Value]:
    """Decisions of a MetaSchedule trace in its JSON form ``[instructions, decisions]``."""
    if not (isinstance(trace, list) and len(trace) == 2 and isinstance(trace[0], list)):
        raise DecisionError("the trace is not [instructions, decisions]")
    return MsPlan(trace[0], loops).decisions(trace[1])


class MsPlan:
    """What a MetaSchedule trace's instructions say about its decisions, read once.

    Candidates of one design space share their instructions; only the decisions differ. The
    plan walks the instructions once and keeps, per sampling instruction, where its decision
    goes (which loop's tile, which annotation, which block's compute location) and which
    sampled factors make the parallel extent and the vector lanes; ``decisions`` then reads
    one candidate's decisions (the trace's second element) against it.
    """

    def __init__(self, insts: list, loops: LoopNames | None = None) -> None:
        self.loops = loops or {}
        self.blocks: dict[str, str] = {}  # block var -> block name
        self.loop_at: dict[str, tuple[str, int]] = {}  # loop var -> (block, position)
        self.sampled: dict[str, tuple[int, int]] = {}  # factor var -> (its tile, which factor)
        self.factor: dict[str, tuple[int, int]] = {}  # split loop var -> its sampled factor
        self.tiles: list[tuple[str, int]] = []  # (block, loop position), one per tile
        self.categorical: dict[str, int] = {}  # choice var -> its sampling instruction
        self.order: list[str] = []  # loops of the main block after its last reorder
        self.postproc = False
        self.post_loops: list[list[str]] = []  # each GetLoops of post-processing
        self.fused: dict[str, list[str]] = {}  # fused loop var -> loops fused
        self.parallel: list[int] = []  # count of outer loops fused per parallel loop
        self.vectorized: list[tuple[int, int]] = []  # (loops of that block, trailing fused)
        # Per sampling instruction, in trace order: (index, kind, role, what it reads).
        self.samples: list[tuple[int, str, str, Any]] = []
        self.named: list[tuple[str, int]] = []  # (feature, sampling index), in trace order
        self.error: str | None = None  # why the instructions cannot be read, after the samples
        for index, inst in enumerate(insts):
            if not (isinstance(inst, list) and len(inst) == 4 and isinstance(inst[0], str)):
                self.error = f"instruction {index} is not [kind, inputs, attrs, outputs]"
                break
            kind, inputs, attrs, outputs = inst
            self._step(index, kind, inputs or [], attrs or [], outputs or [])
        blocks = {block for block, _ in self.tiles}
        self.tile_loops = [self._loop_name(b, p, len(blocks) > 1) for b, p in self.tiles]
        # The main block's loops as sampled factors, and the products of them the derived
        # decisions are; a candidate whose tiles have fewer factors has neither.
        known = bool(self.order) and all(loop in self.factor for loop in self.order)
        self.order_factors = [self.factor[v] for v in self.order] if known else []
        self.derived_factors = self._derived_factors() if known else []

    def _step(self, index: int, kind: str, inputs: list, attrs: list, outputs: list) -> None:
        if kind == "EnterPostproc":
            self.postproc = True
        elif kind in ("GetSBlock", "GetBlock") and outputs and attrs:
            self.blocks[str(outputs[0])] = str(attrs[0])
        elif kind == "GetLoops" and inputs:
            if self.postproc:
                self.post_loops.append([str(o) for o in outputs])
            else:
                block = self.blocks.get(str(inputs[0]), str(inputs[0]))
                for k, loop in enumerate(outputs):
                    self.loop_at[str(loop)] = (block, k)
        elif kind in ("SamplePerfectTile", "SamplePartitionedTile"):
            loop = str(inputs[0]) if inputs else ""
            tile = len(self.tiles)
            self.tiles.append(self.loop_at.get(loop, ("block", tile)))
            self.samples.append((index, kind, "tile", tile))
            for k, var in enumerate(outputs):
                self.sampled[str(var)] = (index, k)
        elif kind == "Split" and not self.postproc and inputs:
            for loop, var in zip(outputs, inputs[1:], strict=False):
                if var is not None and str(var) in self.sampled:
                    self.factor[str(loop)] = self.sampled[str(var)]
        elif kind == "Reorder" and not self.postproc:
            self.order = [str(v) for v in inputs]
        elif kind == "SampleCategorical":
            options = attrs[0] if attrs and isinstance(attrs[0], list) else None
            self.samples.append((index, kind, "categorical", options))
            if outputs:
                self.categorical[str(outputs[0])] = index
        elif kind == "Annotate" and len(inputs) >= 2 and str(inputs[1]) in self.categorical:
            key = str(attrs[0]) if attrs else "annotation"
            name = ANNOTATION_NAMES.get(key, f"choice {key}")
            self.named.append((name, self.categorical.pop(str(inputs[1]))))
        elif kind == "SampleComputeLocation":
            block = self.blocks.get(str(inputs[0]), str(inputs[0])) if inputs else "block"
            self.samples.append((index, kind, "location", None))
            self.named.append((f"compute-at {block}", index))
        elif kind.startswith("Sample"):
            self.samples.append((index, kind, "other", None))
            self.named.append((f"{kind} {outputs[0] if outputs else ''}".strip(), index))
        elif self.postproc and kind == "Fuse":
            self.fused[str(outputs[0])] = [str(v) for v in inputs] if outputs else []
        elif self.postproc and kind in ("Parallel", "Vectorize") and inputs:
            self._annotated_loop(kind, self.fused.get(str(inputs[0]), [str(inputs[0])]))

    def _annotated_loop(self, kind: str, loops: list[str]) -> None:
        container = next((ls for ls in reversed(self.post_loops) if loops[0] in ls), None)
        if container is None:
            return
        start = container.index(loops[0])
        if container[start : start + len(loops)] != loops:
            return
        if kind == "Parallel" and start == 0:
            self.parallel.append(len(loops))
        elif kind == "Vectorize" and start + len(loops) == len(container):
            self.vectorized.append((len(container), len(loops)))

    def _loop_name(self, block: str, position: int, several: bool) -> str:
        names = self.loops.get(block)
        if names is not None and position < len(names):
            return f"{block}.{names[position]}" if several else names[position]
        return f"{block} loop {position}"

    def decisions(self, raw: Any) -> dict[str, Value]:
        """One candidate's named decisions from its decisions ``[[index, decision], ...]``;
        raises DecisionError at the first instruction its decisions do not fit."""
        chosen: dict[int, Any] = {}
        for item in raw if isinstance(raw, list) else ():
            if isinstance(item, list) and len(item) == 2 and type(item[0]) is int:
                chosen[item[0]] = item[1]
        values: dict[int, Value] = {}  # sampling index -> the value its features show
        tiles: list[list[int]] = []
        for index, kind, role, what in self.samples:
            if index not in chosen:
                raise DecisionError(f"instruction {index} ({kind}) has no decision")
            decision = chosen[index]
            if role == "tile":
                if not (isinstance(decision, list) and all(type(f) is int for f in decision)):
                    raise DecisionError(f"tile decision {decision!r} is not a list of factors")
                tiles.append(decision)
            elif role == "categorical":
                if type(decision) is not int or not what or not 0 <= decision < len(what):
                    raise DecisionError(
                        f"categorical choice {decision!r} is not one of its options"
                    )
                values[index] = what[decision]
            elif role == "location":
                values[index] = location_text(decision)
            else:
                ok = isinstance(decision, (int, float, str))
                values[index] = decision if ok else json.dumps(decision)
        if self.error is not None:
            raise DecisionError(self.error)
        out: dict[str, Value] = {}
        for loop, factors in zip(self.tile_loops, tiles, strict=True):
            for level, value in zip(level_names(len(factors)), factors, strict=True):
                out[f"tile {loop}[{level}]"] = value
        for name, index in self.named:
            out[name] = values[index]
        out.update(self._derived(chosen))
        return out

    def _derived(self, chosen: dict[int, Any]) -> dict[str, Value]:
        """Parallel extent and vector lanes of one candidate (see ``derived_factors``)."""
        derived: dict[str, Value] = {}
        if any(k >= len(chosen[index]) for index, k in self.order_factors):
            return derived
        for name, refs in self.derived_factors:
            derived[name] = _product(chosen[index][k] for index, k in refs)
        return derived

    def _derived_factors(self) -> list[tuple[str, list[tuple[int, int]]]]:
        """Parallel extent and vector lanes, where they are products of sampled factors: each
        name with its factors as (tile sampling index, which factor).

        Post-processing fuses the outermost loops of the first block into one parallel loop
        (they are the main block's outer loops) and the innermost loops of each block into one
        vectorized loop; the main block's loops are the order of its last reorder, counted
        after the parallel fuse took the first ones.
        """
        order = self.order
        derived: list[tuple[str, list[tuple[int, int]]]] = []
        taken = 0
        if self.parallel:
            taken = self.parallel[0]
            derived.append(("parallel extent", [self.factor[v] for v in order[:taken]]))
        remaining = len(order) - taken + (1 if taken else 0)
        for count, lanes in self.vectorized:
            if count == remaining and lanes <= len(order) - taken:
                refs = [self.factor[v] for v in order[len(order) - lanes :]]
                derived.append(("vector lanes", refs))
                break
        return derived


def location_text(decision: Any) -> str:
    """A compute location decision as a person reads it (``inline``, ``root``, ``loop 3``)."""
    if type(decision) is not int:
        raise DecisionError(f"compute location {decision!r} is not a loop index")
    if decision == -2:
        return "inline"
    if decision == -1:
        return "root"
    return f"loop {decision}"


def _product(values: Any) -> int:
    result = 1
    for value in values:
        result *= value
    return result


# --- AutoTVM -----------------------------------------------------------------------------


def autotvm_decisions(config: Any) -> dict[str, Value]:
    """Knob values of an AutoTVM config (``{"index", "entity": [[name, kind, value], ...]}``)."""
    if not isinstance(config, dict):
        raise DecisionError("the AutoTVM config is not a JSON object")
    entity = config.get("entity", config.get("e"))
    if not isinstance(entity, list):
        raise DecisionError("the AutoTVM config has no knob list (entity)")
    out: dict[str, Value] = {}
    for knob in entity:
        if not (isinstance(knob, list) and len(knob) == 3 and isinstance(knob[0], str)):
            raise DecisionError(f"knob {knob!r} is not [name, kind, value]"[:200])
        name, kind, value = knob
        if kind == "sp" and isinstance(value, list):
            for level, factor in zip(level_names(len(value)), value, strict=True):
                if factor != -1:  # -1: the factor the others leave
                    out[f"{name}[{level}]"] = factor
        elif isinstance(value, bool):
            out[name] = int(value)
        elif isinstance(value, (int, float, str)):
            out[name] = value
        else:
            out[name] = json.dumps(value, separators=(", ", ": "))
    return out


# --- Ansor -------------------------------------------------------------------------------


def ansor_decisions(steps: Any) -> dict[str, Value]:
    """Split factors, unroll pragmas, annotations and compute locations of Ansor steps."""
    if not isinstance(steps, list):
        raise DecisionError("the Ansor steps are not a list")
    out: dict[str, Value] = {}

    def put(name: str, value: Value) -> None:
        key, n = name, 2
        while key in out:
            key, n = f"{name} #{n}", n + 1
        out[key] = value

    for step in steps:
        if not (isinstance(step, list) and step and isinstance(step[0], str)):
            raise DecisionError(f"step {step!r} is not [code, ...]"[:200])
        code, args = step[0], step[1:]
        if code == "SP" and len(args) == 5 and isinstance(args[3], list):
            stage, it, _extent, lengths, _inner_to_outer = args
            names = level_names(len(lengths) + 1)[1:]  # the outer factor is what is left
            for level, length in zip(names, lengths, strict=True):
                put(f"split s{stage}.i{it}[{level}]", length if length is not None else "auto")
        elif code == "PR" and len(args) == 3 and isinstance(args[2], str):
            pragma, _, value = args[2].partition("$")
            if pragma == "auto_unroll_max_step" and value.lstrip("-").isdigit():
                put(f"unroll s{args[0]}", int(value))
        elif code == "AN" and len(args) == 3 and type(args[2]) is int:
            stage, it, ann = args
            label = ANSOR_ANNOTATIONS[ann] if 0 <= ann < len(ANSOR_ANNOTATIONS) else str(ann)
            put(f"{label} s{stage}", f"i{it}")
        elif code == "CA" and len(args) == 3:
            put(f"compute-at s{args[0]}", f"s{args[1]}.i{args[2]}")
        elif code in ("CI", "CR") and len(args) == 1:
            put(f"compute-at s{args[0]}", "inline" if code == "CI" else "root")
    return out
