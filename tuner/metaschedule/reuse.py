"""Tuning reuse: start a new workload from schedules in a ``ScheduleLibrary``.

For a task, the candidates are the library's entries of the same op class (``conv2d``,
``depthwise``, ``dense``...), for the same code target, ranked by shape similarity
(``rank_candidates``, pure). Each candidate is then applied to the new workload
(``apply_schedule``):

1. trace replay: the entry's trace, with its block and function names mapped onto the new
   workload's (anchor to anchor, and the blocks before and after the anchor by position when
   both workloads have as many), replayed on it;
2. anchor-trace transfer (``schedule_using_anchor_trace``) when the replay fails, e.g. when the
   fused operators differ: the anchor block is scheduled as in the entry, the other blocks are
   inlined or parallelised.

Either way the tile sizes of the anchor's loops are first refitted to the new extents
(``refit_tiles``: the factorization of the new extent closest to the tuned tile sizes, with
the same loops of extent 1). Left to itself, a replay whose tile sizes do not divide the new
extents picks its own, sometimes degenerate ones (a 64^3 matmul schedule on a 500^3 matmul
ran about as slowly as the untuned kernel), sometimes better ones; so ``plan_reuse`` offers
both variants when they differ and profiling decides.

A result that is not well formed or does not build is dropped with the reason. The survivors
are what a job profiles, next to the untuned workload as the fallback (``plan_reuse``).
``rank_sources`` scores each library model against a new model (its tasks' op classes and
shapes, weighted by their work) for choosing sources automatically.

Ranking needs no TVM; applying and describing workloads import it when called.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from tuner._base import one_line
from tuner.metaschedule.library import (
    LibraryEntry,
    LibraryError,
    ScheduleLibrary,
    WorkloadInfo,
    describe_workload,
    load_workload,
    target_cores,
    target_key,
)

# A dimension whose extents do not divide each other counts this much less similar: tile
# sizes tuned for one rarely fit the other.
NOT_DIVIDING = 0.75

REPLAY = "replay"
ANCHOR_TRANSFER = "anchor-transfer"


# --- ranking (pure) -------------------------------------------------------------------------


def shape_similarity(a_shapes: Sequence[Sequence[int]], b_shapes: Sequence[Sequence[int]]) -> float:
    """Similarity of two lists of shapes in [0, 1]: 1 for equal shapes, 0 when the number of
    shapes or their ranks differ. Otherwise the geometric mean over all dimensions of
    ``1 / (1 + |log2(a / b)|)``, times ``NOT_DIVIDING`` where neither extent divides the other.
    Symmetric."""
    if len(a_shapes) != len(b_shapes):
        return 0.0
    logs = 0.0
    count = 0
    for a_shape, b_shape in zip(a_shapes, b_shapes, strict=True):
        if len(a_shape) != len(b_shape):
            return 0.0
        for a, b in zip(a_shape, b_shape, strict=True):
            count += 1
            if a == b:
                continue
            if a <= 0 or b <= 0:
                return 0.0
            low, high = min(a, b), max(a, b)
            score = 1.0 / (1.0 + math.log2(high / low))
            if high % low:
                score *= NOT_DIVIDING
            logs += math.log(score)
    return math.exp(logs / count) if count else 1.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """A library entry offered for a task, with its similarity and a note (e.g. another core
    count)."""

    entry: LibraryEntry
    similarity: float
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Excluded:
    """A library entry of the task's op class that is not offered, and why."""

    entry: LibraryEntry
    reason: str


@dataclass(frozen=True, slots=True)
class Ranking:
    """The candidates for one task, best first (at most the limit; ``more`` were cut), the
    entries of its op class left out with their reasons, how many entries are of other op
    classes, and a message saying why there is no candidate (None when there is one)."""

    op_class: str
    candidates: tuple[Candidate, ...]
    excluded: tuple[Excluded, ...] = ()
    more: int = 0
    other_classes: int = 0
    message: str | None = None


def rank_candidates(
    task: Any, entries: Iterable[LibraryEntry], limit: int = 8, *, target: Any = None
) -> Ranking:
    """Rank ``entries`` for ``task`` (a ``WorkloadInfo``, or a ``TuningTask`` described from
    its TIR): same op class only, most similar first (``shape_similarity`` of the anchor
    buffers and loop extents), then the faster schedule per FLOP.

    With ``target``, entries tuned for other code (another kind or ``mcpu``) are excluded
    with the reason; another ``num-cores`` is allowed and noted. Entries whose anchor loop
    nest, dtype or tensor ranks differ are excluded too, as are repeats of a schedule already
    offered.
    """
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    info = task_info(task)
    key = target_key(target) if target is not None else None
    cores = target_cores(target) if target is not None else None
    offered: list[Candidate] = []
    excluded: list[Excluded] = []
    others: dict[str, int] = {}
    for entry in entries:
        if entry.op_class != info.op_class:
            others[entry.op_class] = others.get(entry.op_class, 0) + 1
            continue
        reason = _misfit(info, entry, key)
        if reason is not None:
            excluded.append(Excluded(entry, reason))
            continue
        similarity = shape_similarity(info.signature(), entry.workload.signature())
        if similarity <= 0.0:
            excluded.append(Excluded(entry, "tensor ranks differ"))
            continue
        entry_cores = target_cores(entry.target)
        note = None
        if cores is not None and entry_cores is not None and entry_cores != cores:
            note = f"tuned for {entry_cores} cores, the target has {cores}"
        offered.append(Candidate(entry, similarity, note))
    offered.sort(key=_rank_key)
    unique: list[Candidate] = []
    seen: dict[str, LibraryEntry] = {}
    for candidate in offered:
        first = seen.get(candidate.entry.trace_digest)
        if first is not None and first.workload_hash == candidate.entry.workload_hash:
            excluded.append(Excluded(candidate.entry, f"same schedule as {first.label}"))
            continue
        seen.setdefault(candidate.entry.trace_digest, candidate.entry)
        unique.append(candidate)
    message = None
    if not unique:
        message = _no_candidate_message(info.op_class, excluded, others, key)
    return Ranking(
        op_class=info.op_class,
        candidates=tuple(unique[:limit]),
        excluded=tuple(excluded),
        more=max(0, len(unique) - limit),
        other_classes=sum(others.values()),
        message=message,
    )


class TaskMatch(NamedTuple):
    """A source model's best entry for a task, and its similarity."""

    entry: LibraryEntry
    similarity: float


class SourceScore(NamedTuple):
    """A library model scored against a new model: ``score`` in [0, 1] is the share of the new
    model's work (weight x FLOPs per task) covered, each task counting with its best
    similarity; ``matches`` maps each tunable task to that best entry (None: nothing fits)."""

    model: str
    score: float
    matches: dict[str, TaskMatch | None]


def rank_sources(
    model_tasks: Sequence[Any],
    library: ScheduleLibrary | Iterable[LibraryEntry],
    *,
    target: Any = None,
) -> list[SourceScore]:
    """Rank the library's models (``entry.origin``) as sources for a new model's tasks
    (``TuningTask``s, or ``(name, WorkloadInfo, work)`` triples), best first; untunable tasks
    are left out. A model that matches nothing scores 0 and is still listed."""
    entries = library.entries() if isinstance(library, ScheduleLibrary) else list(library)
    tasks = [_work_item(t) for t in model_tasks]
    tasks = [t for t in tasks if t is not None]
    total = sum(work for _, _, work in tasks)
    by_origin: dict[str, list[LibraryEntry]] = {}
    for entry in entries:
        by_origin.setdefault(entry.origin, []).append(entry)
    scores = []
    for origin, group in by_origin.items():
        matches: dict[str, TaskMatch | None] = {}
        score = 0.0
        for name, info, work in tasks:
            ranking = rank_candidates(info, group, 1, target=target)
            if ranking.candidates:
                best = ranking.candidates[0]
                matches[name] = TaskMatch(best.entry, best.similarity)
                score += (work / total if total else 0.0) * best.similarity
            else:
                matches[name] = None
        scores.append(SourceScore(origin, score, matches))
    scores.sort(key=lambda s: (-s.score, s.model))
    return scores


class SourceChoice(NamedTuple):
    """The library models a new model draws from (``chosen``, in the order picked), every
    model's score (``ranked``), and the share of the model's work the chosen ones cover
    (each task counting with its best similarity among them)."""

    chosen: tuple[SourceScore, ...]
    ranked: tuple[SourceScore, ...]
    covered: float

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.model for s in self.chosen)


def choose_sources(
    model_tasks: Sequence[Any],
    library: ScheduleLibrary | Iterable[LibraryEntry],
    *,
    target: Any = None,
    max_sources: int = 3,
) -> SourceChoice:
    """Choose the library models to reuse schedules from, with no hand-written pairing:
    greedily, the model that adds the most covered work (weight x FLOPs x best similarity
    per task, over what the models already chosen cover), until ``max_sources`` are chosen
    or no model adds anything. The first pick is ``rank_sources``' best."""
    if not isinstance(max_sources, int) or max_sources < 1:
        raise ValueError(f"max_sources must be a positive integer, got {max_sources!r}")
    items = [_work_item(t) for t in model_tasks]
    shares = {name: work for name, _, work in (i for i in items if i is not None)}
    total = sum(shares.values())
    shares = {name: (work / total if total else 0.0) for name, work in shares.items()}
    ranked = rank_sources(model_tasks, library, target=target)
    best: dict[str, float] = dict.fromkeys(shares, 0.0)
    chosen: list[SourceScore] = []
    left = list(ranked)
    while left and len(chosen) < max_sources:

        def gain(source: SourceScore) -> float:
            return sum(
                shares[name] * max(0.0, match.similarity - best[name])
                for name, match in source.matches.items()
                if match is not None and name in shares
            )

        pick = max(left, key=lambda s: (gain(s), s.score))  # ties: first in rank order
        if gain(pick) <= 1e-12:
            break
        chosen.append(pick)
        left.remove(pick)
        for name, match in pick.matches.items():
            if match is not None and name in best:
                best[name] = max(best[name], match.similarity)
    covered = sum(shares[name] * best[name] for name in shares)
    return SourceChoice(tuple(chosen), tuple(ranked), covered)


def task_info(task: Any) -> WorkloadInfo:
    """A task's ``WorkloadInfo`` (described from ``task.mod`` unless it is one already)."""
    if isinstance(task, WorkloadInfo):
        return task
    mod = getattr(task, "mod", None)
    if mod is None:
        raise TypeError(f"expected a WorkloadInfo or a TuningTask, got {type(task).__name__}")
    return describe_workload(mod)


def _work_item(task: Any) -> tuple[str, WorkloadInfo, float] | None:
    if isinstance(task, tuple):
        name, info, work = task
        return str(name), info, float(work)
    if getattr(task, "untunable", None):
        return None
    info = task_info(task)
    flops = task.flops if task.flops else info.flops
    return str(task.name), info, float(task.weight) * float(flops or 1.0)


def _misfit(info: WorkloadInfo, entry: LibraryEntry, key: str | None) -> str | None:
    if key is not None and entry.target_key != key:
        return f"tuned for {entry.target_key}, not {key}"
    if entry.workload.loop_kinds != info.loop_kinds:
        return (
            f"anchor loop nest {entry.workload.loop_kinds} differs from the task's "
            f"{info.loop_kinds}"
        )
    if entry.workload.dtype != info.dtype:
        return f"dtype {entry.workload.dtype} differs from the task's {info.dtype}"
    return None


def _rank_key(candidate: Candidate) -> tuple[float, bool, float, str]:
    entry = candidate.entry
    flops = entry.workload.flops
    per_flop = entry.latency_s / flops if flops else entry.latency_s
    return (-candidate.similarity, candidate.note is not None, per_flop, entry.label)


def _no_candidate_message(
    op_class: str, excluded: list[Excluded], others: Mapping[str, int], key: str | None
) -> str:
    if excluded:
        reasons = sorted({e.reason for e in excluded})
        shown = "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else "")
        return f"none of the library's {len(excluded)} {op_class} schedules fits: {shown}"
    if others:
        held = ", ".join(f"{name} x{count}" for name, count in sorted(others.items()))
        return f"the library has no {op_class} schedule (it holds {held})"
    return "the library is empty" + (f" (no schedule for {key})" if key else "")


# --- applying a schedule -------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """A library entry applied to a workload: the schedule (None when the entry does not
    apply, with the ``reason``), how (``replay`` or ``anchor-transfer``), whether tile sizes
    were refitted to the new extents, the candidate's similarity when it came from a
    ranking, and the seconds applying and checking took."""

    entry: LibraryEntry
    schedule: Any | None
    method: str | None = None
    reason: str | None = None
    refitted: bool = False
    similarity: float | None = None
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return self.schedule is not None

    @property
    def mod(self) -> Any:
        """The scheduled module (None when the entry did not apply)."""
        return None if self.schedule is None else self.schedule.mod

    @property
    def trace(self) -> Any:
        """The trace of the schedule on the new workload (to commit as a tuning record)."""
        return None if self.schedule is None else self.schedule.trace


def apply_schedule(
    entry: LibraryEntry,
    workload_mod: Any,
    target: Any,
    *,
    build: bool = True,
    refit: bool = True,
    source_mod: Any = None,
) -> Applied:
    """Apply ``entry``'s schedule to ``workload_mod`` for ``target`` (see the module
    docstring). Returns an ``Applied``, false with a reason when the entry's target does not
    match, neither replay nor anchor transfer works, or the result is not well formed or
    (with ``build``) does not build. Never raises for a schedule that does not fit.
    ``refit=False`` keeps the tuned tile sizes as they are (for comparison). ``source_mod``
    is the workload the entry was tuned on, where the caller holds it (default: read from
    the entry's database).
    """
    start = time.perf_counter()
    result = _apply(entry, workload_mod, target, build, refit, source_mod)
    return replace(result, seconds=time.perf_counter() - start)


def _apply(
    entry: LibraryEntry,
    workload_mod: Any,
    target: Any,
    build: bool,
    refit: bool,
    source_mod: Any = None,
) -> Applied:
    from tvm.target import Target

    tvm_target = target if isinstance(target, Target) else Target(dict(target))
    key = target_key(tvm_target)
    if entry.target_key != key:
        return Applied(entry, None, reason=f"tuned for {entry.target_key}, not {key}")
    try:
        info = describe_workload(workload_mod)
    except Exception as exc:
        return Applied(entry, None, reason=f"cannot read the workload: {one_line(exc, last=True)}")
    if info.op_class != entry.op_class:
        return Applied(
            entry, None, reason=f"op class {entry.op_class} does not fit a {info.op_class} task"
        )
    blocks, funcs = block_name_map(entry.workload, info)
    failures = []
    for method in (REPLAY, ANCHOR_TRANSFER):
        try:
            schedule, refitted = _schedule(
                method, entry, workload_mod, tvm_target, blocks, funcs, refit, source_mod
            )
        except Exception as exc:
            failures.append(f"{method}: {one_line(exc, last=True)}")
            continue
        problem = _check(schedule, workload_mod, tvm_target, build)
        if problem is None:
            return Applied(entry, schedule, method, refitted=refitted)
        failures.append(f"{method}: {problem}")
    return Applied(entry, None, reason="; ".join(failures))


def _schedule(
    method: str,
    entry: LibraryEntry,
    mod: Any,
    target: Any,
    blocks: Mapping[str, str],
    funcs: Mapping[str, str],
    refit: bool,
    source_mod: Any = None,
) -> tuple[Any, bool]:
    """The schedule and whether tile sizes were refitted."""
    from tvm.s_tir import Schedule, Trace
    from tvm.s_tir import meta_schedule as ms

    sch = Schedule(mod)
    renamed = rename_trace_json(entry.trace, blocks, funcs)
    refitted = renamed
    if refit:
        anchor = _anchor_index(entry.workload)
        if anchor is not None:
            name = blocks.get(entry.workload.blocks[anchor], entry.workload.blocks[anchor])
            refitted = refit_trace_json(renamed, name, _loop_extents(sch, name))
    changed = refitted[1] != renamed[1]
    if method == REPLAY:
        Trace.apply_json_to_schedule(refitted, sch)
        return sch, changed
    if source_mod is None:
        source_mod = load_workload(entry.database, entry.workload_hash)
    source = Schedule(source_mod)
    Trace.apply_json_to_schedule(entry.trace, source)
    kinds = [str(inst.kind.name) for inst in source.trace.insts]
    aligned = kinds == [inst[0] for inst in entry.trace[0]]
    override = dict(refitted[1]) if aligned and changed else None
    trace = _renamed(source.trace, blocks, funcs, override)
    ms.trace_apply.schedule_using_anchor_trace(sch, trace, target)
    return sch, override is not None


def _loop_extents(sch: Any, block: str) -> list[int]:
    """Extents of the loops around ``block`` in the unscheduled workload ([] if unknown)."""
    try:
        return [int(sch.get(loop).extent) for loop in sch.get_loops(sch.get_sblock(block))]
    except Exception:
        return []


def refit_tiles(factors: Sequence[int], extent: int, max_innermost: int = 0) -> list[int] | None:
    """Tile sizes (outermost first) for ``extent`` as close to the tuned ``factors`` as
    divisibility allows, or None when there are none of the same structure. Pure.

    The structure is kept: a factor of 1 stays 1 and every other factor stays above 1 (loops
    of extent 1 disappear from later instructions' views, so a trace only replays when the
    same ones are there). Inner tile sizes (the tuned cache blocking and vector width) should
    not grow: the outermost tiled loop takes the growth. Among such factorizations the one
    with the least total growth of the inner sizes wins, then the least weighted
    ``|log(new / tuned)|`` (inner positions weigh more); the innermost stays within
    ``max_innermost`` when that is positive.
    """
    factors = [int(f) for f in factors]
    if extent < 1 or not factors or any(f < 1 for f in factors):
        return None
    if math.prod(factors) == extent:
        return factors
    inner = len(factors) - 1
    slots = [i for i in range(inner, -1, -1) if factors[i] > 1]  # innermost first
    if not slots:
        return None
    outermost = slots[-1]
    best: tuple[float, float, list[int]] | None = None
    budget = [_REFIT_BUDGET]

    def search(k: int, left: int, growth: float, cost: float, chosen: list[int]) -> None:
        nonlocal best
        budget[0] -= 1
        if budget[0] < 0 or (best is not None and (growth, cost) >= best[:2]):
            return
        slot = slots[k]
        last = k == len(slots) - 1
        options = [left] if last else [d for d in _divisors(left) if 1 < d < left]
        # Sizes no larger than the tuned one first, the closest first: good bounds early.
        options.sort(key=lambda d: (d > factors[slot], abs(math.log(d / factors[slot]))))
        for d in options:
            if d <= 1 or (slot == inner and 0 < max_innermost < d):
                continue
            if not last and _prime_factors(left // d) < len(slots) - k - 1:
                continue
            change = math.log(d / factors[slot])
            grew = growth + (max(0.0, change) if slot != outermost else 0.0)
            step = cost + (1.0 + 0.1 * slot) * abs(change)
            if not last:
                search(k + 1, left // d, grew, step, [*chosen, d])
            elif best is None or (grew, step, [*chosen, d]) < best:
                best = (grew, step, [*chosen, d])

    search(0, extent, 0.0, 0.0, [])
    if best is None:
        return None
    out = [1] * len(factors)
    for slot, d in zip(slots, best[2], strict=True):
        out[slot] = d
    return out


# Search nodes ``refit_tiles`` may visit (plenty for extents up to the tens of thousands).
_REFIT_BUDGET = 20000


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})


def _prime_factors(n: int) -> int:
    """How many prime factors ``n`` has, with multiplicity."""
    count, d = 0, 2
    while d * d <= n:
        while n % d == 0:
            n //= d
            count += 1
        d += 1
    return count + (1 if n > 1 else 0)


def refit_trace_json(trace: list[Any], anchor: str, extents: Sequence[int]) -> list[Any]:
    """A copy of a JSON trace whose ``SamplePerfectTile`` decisions on the loops of block
    ``anchor`` (found by ``GetLoops``, whose outputs have ``extents``) tile those extents
    (``refit_tiles``); decisions that already do, and all others, are kept. Pure."""
    insts, decisions = trace
    block_rvs: dict[str, str] = {}
    loop_extent: dict[str, int] = {}
    by_index = {index: decision for index, decision in decisions}
    for index, inst in enumerate(insts):
        kind, inputs, attrs, outputs = [*inst, [], [], []][:4]
        if kind == "GetSBlock" and attrs and outputs:
            block_rvs[outputs[0]] = attrs[0]
        elif kind == "GetLoops" and inputs and block_rvs.get(inputs[0]) == anchor:
            if len(outputs) == len(extents):
                loop_extent.update(zip(outputs, extents, strict=True))
        elif kind == "SamplePerfectTile" and inputs and inputs[0] in loop_extent:
            factors = by_index.get(index)
            extent = loop_extent[inputs[0]]
            if isinstance(factors, list) and math.prod(factors) != extent:
                max_innermost = attrs[1] if len(attrs) > 1 and isinstance(attrs[1], int) else 0
                refitted = refit_tiles(factors, extent, max_innermost)
                if refitted is not None:  # else the replay's own fallback decides
                    by_index[index] = refitted
    return [insts, [[index, by_index[index]] for index, _ in decisions]]


def _check(schedule: Any, original: Any, target: Any, build: bool) -> str | None:
    import tvm_ffi
    from tvm.s_tir import analysis

    mod = schedule.mod
    if tvm_ffi.structural_equal(mod, original):
        return "the schedule changed nothing"
    try:
        analysis.verify_well_formed(mod)
    except Exception as exc:
        return f"not well formed: {one_line(exc, last=True)}"
    if build:
        try:
            build_module(mod, target)
        except Exception as exc:
            return f"does not build: {one_line(exc, last=True)}"
    return None


def build_module(mod: Any, target: Any) -> Any:
    """Build a scheduled module the way the tuner's build workers do (weight layout rewrite
    blocks removed, then ``tvm.tirx.build``); returns the runtime module."""
    import tvm
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm.tirx.build(mod, target=target)


def block_name_map(
    source: WorkloadInfo, dest: WorkloadInfo
) -> tuple[dict[str, str], dict[str, str]]:
    """Block and function renames from a source workload onto a destination: anchor to
    anchor; the blocks before the anchor pairwise when both have as many, and likewise the
    blocks after it. Pure."""
    funcs = {source.func_name: dest.func_name}
    names: dict[str, str] = {}
    src_anchor = _anchor_index(source)
    dst_anchor = _anchor_index(dest)
    if src_anchor is None or dst_anchor is None:
        return names, funcs
    if src_anchor == dst_anchor:
        names.update(zip(source.blocks[:src_anchor], dest.blocks[:dst_anchor], strict=True))
    if len(source.blocks) - src_anchor == len(dest.blocks) - dst_anchor:
        names.update(zip(source.blocks[src_anchor:], dest.blocks[dst_anchor:], strict=True))
    else:
        names[source.blocks[src_anchor]] = dest.blocks[dst_anchor]
    return names, funcs


def rename_trace_json(
    trace: list[Any], blocks: Mapping[str, str], funcs: Mapping[str, str]
) -> list[Any]:
    """A copy of a JSON trace whose ``GetSBlock`` instructions name the mapped blocks and
    functions. Pure."""
    insts, decisions = trace
    renamed = []
    for inst in insts:
        if inst and inst[0] == "GetSBlock" and len(inst) >= 3 and len(inst[2]) >= 2:
            name, func = inst[2][0], inst[2][1]
            attrs = [blocks.get(name, name), funcs.get(func, func), *inst[2][2:]]
            inst = [inst[0], inst[1], attrs, *inst[3:]]
        renamed.append(inst)
    return [renamed, decisions]


def _renamed(
    trace: Any,
    blocks: Mapping[str, str],
    funcs: Mapping[str, str],
    decisions: Mapping[int, Any] | None = None,
) -> Any:
    """A ``Trace`` whose ``GetSBlock`` instructions name the mapped blocks and functions, with
    the decisions of the instructions at the indexes in ``decisions`` replaced."""
    from tvm.s_tir.schedule import Instruction, Trace

    new: dict[Any, Any] = {}
    insts = []
    index_of = {}
    for index, inst in enumerate(trace.insts):
        index_of[inst] = index
        attrs = list(inst.attrs)
        if inst.kind.name == "GetSBlock" and len(attrs) >= 2:
            name, func = str(attrs[0]), str(attrs[1])
            attrs = [blocks.get(name, name), funcs.get(func, func), *attrs[2:]]
        copy = Instruction(inst.kind, list(inst.inputs), attrs, list(inst.outputs))
        new[inst] = copy
        insts.append(copy)
    override = decisions or {}
    return Trace(
        insts,
        {
            new[inst]: override.get(index_of[inst], decision)
            for inst, decision in trace.decisions.items()
        },
    )


def _anchor_index(info: WorkloadInfo) -> int | None:
    raw = [b.removeprefix("T_") for b in info.blocks]
    for index, name in enumerate(raw):
        if name == info.anchor_op:
            return index
    return None


# --- planning a reuse job ---------------------------------------------------------------------


@dataclass(frozen=True)
class TaskReuse:
    """What the library offers one task: the schedules that apply (best-ranked first), those
    that did not (with reasons), the entries left out by the ranking, and a message when the
    task falls back to its untuned schedule alone."""

    task: str
    op_class: str
    candidates: tuple[Applied, ...] = ()
    dropped: tuple[Applied, ...] = ()
    excluded: tuple[Excluded, ...] = field(default=(), repr=False)
    message: str | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        """The library models (``entry.origin``) whose schedules apply, in rank order."""
        return tuple(dict.fromkeys(a.entry.origin for a in self.candidates))

    @property
    def untuned_only(self) -> bool:
        return not self.candidates


@dataclass(frozen=True)
class ReuseSettings:
    """How a job starts from a schedule library.

    ``only``: measure the library's schedules for each task, and the untuned workload as the
    fallback, then stop (``tuneloom reuse``); otherwise they are the first records of the
    task and the search continues from them (``tuneloom tune --warm-start``). ``limit``:
    schedules per task at most. ``sources``: the library models to draw from; None chooses
    them with ``choose_sources`` (at most ``max_sources``).
    """

    library: ScheduleLibrary
    only: bool = False
    limit: int = 4
    sources: tuple[str, ...] | None = None
    max_sources: int = 3

    def __post_init__(self) -> None:
        for name in ("limit", "max_sources"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"reuse {name} must be a positive integer, got {value!r}")


def plan_reuse(
    tasks: Sequence[Any],
    library: ScheduleLibrary | Iterable[LibraryEntry],
    target: Any,
    *,
    limit: int = 4,
    sources: Sequence[str] | None = None,
    build: bool = True,
) -> list[TaskReuse]:
    """For each task (``TuningTask``), up to ``limit`` library schedules that apply to it.

    ``sources`` restricts the library to those models (``entry.origin``; e.g. the first of
    ``rank_sources``). Candidates are tried best-ranked first, at most ``3 * limit`` of them,
    each with refitted tile sizes and, when the refit changed them, also with the tuned ones;
    a schedule identical to one already kept is dropped. A task where nothing applies gets a
    message and no candidate: it runs untuned, as it would without a library.
    """
    entries = library.entries() if isinstance(library, ScheduleLibrary) else list(library)
    if sources is not None:
        entries = entries_of_sources(entries, sources)
    return [_plan_task(task, entries, target, limit, build) for task in tasks]


def entries_of_sources(
    entries: Sequence[LibraryEntry], sources: Sequence[str], where: str = ""
) -> list[LibraryEntry]:
    """The entries of the named library models (``entry.origin``); a name the entries lack
    raises LibraryError listing the models there are (``where`` names the library)."""
    known = {e.origin for e in entries}
    missing = [s for s in sources if s not in known]
    if missing:
        raise LibraryError(
            f"no such source in the library{where}: {', '.join(missing)} "
            f"(it holds {', '.join(sorted(known)) or 'nothing'})"
        )
    wanted = set(sources)
    return [e for e in entries if e.origin in wanted]


def _plan_task(
    task: Any, entries: list[LibraryEntry], target: Any, limit: int, build: bool
) -> TaskReuse:
    if getattr(task, "untunable", None):
        op_class = _op_class_or(task, task.op)
        return TaskReuse(task.name, op_class, message=f"not tunable: {task.untunable}")
    info = task_info(task)
    ranking = rank_candidates(info, entries, 3 * limit, target=target)
    kept: list[Applied] = []
    dropped: list[Applied] = []
    seen: dict[int, Applied] = {}
    for candidate in ranking.candidates:
        for applied in _variants(candidate, task.mod, target, build):
            if len(kept) >= limit:
                break
            if not applied:
                dropped.append(applied)
                continue
            shash = _structural_hash(applied.mod)
            if shash in seen:
                first = seen[shash].entry
                if first is not applied.entry:  # not just the entry's other variant
                    reason = f"same schedule as {first.label}"
                    dropped.append(replace(applied, schedule=None, reason=reason))
                continue
            seen[shash] = applied
            kept.append(applied)
        if len(kept) >= limit:
            break
    message = ranking.message
    if not kept and message is None:
        message = f"none of the {len(dropped)} {info.op_class} schedules tried applies"
    return TaskReuse(
        task.name, info.op_class, tuple(kept), tuple(dropped), ranking.excluded, message
    )


def _variants(candidate: Candidate, mod: Any, target: Any, build: bool) -> list[Applied]:
    """The candidate applied with refitted tile sizes, and with the tuned ones too when the
    refit changed them or failed (which is faster varies; profiling decides)."""
    fitted = apply_schedule(candidate.entry, mod, target, build=build)
    variants = [fitted]
    if fitted.refitted or not fitted:
        variants.append(apply_schedule(candidate.entry, mod, target, build=build, refit=False))
    return [replace(v, similarity=candidate.similarity) for v in variants]


def _op_class_or(task: Any, default: str) -> str:
    try:
        return task_info(task).op_class
    except Exception:
        return default


def _structural_hash(mod: Any) -> int:
    import tvm_ffi

    return int(tvm_ffi.structural_hash(mod))
