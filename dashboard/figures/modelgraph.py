"""The Model page's data step: where one run of the model spends its time, per fused kernel.

Pure functions of a ``ModelGraph``, the job's profiles and its per-task tuning results:
each node's milliseconds and share for one *variant* (the untuned or tuned profile, or the
current best estimate from the measured records), repeated blocks collapsed into summary
nodes, a text search, the ranked bottleneck list and the Cytoscape elements that draw it.
Nothing here reads the store or the clock.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from collectors.events import ProfileEvent
from collectors.modelgraph import KernelNode, ModelGraph

UNTUNED, TUNED, ESTIMATE = "untuned", "tuned", "estimate"
VARIANTS = {
    UNTUNED: "untuned profile",
    TUNED: "tuned profile",
    ESTIMATE: "best so far (estimate)",
}
BLOCK_PREFIX = "block::"
NO_DATA_COLOR = "#d5d9de"
# Light to dark (a yellow-orange-red ramp readable on white, also for most colour-blind eyes).
RAMP = ("#fff5d6", "#fed976", "#fd8d3c", "#e31a1c", "#800026")
COLUMN_GAP, ROW_GAP = 200.0, 80.0  # layout grid, model coordinates


@dataclass(frozen=True)
class TaskStats:
    """A task's tuning so far in one job: measured candidates, the best valid latency
    (seconds) and the record holding it, and the task's weight in the model."""

    trials: int = 0
    best_secs: float | None = None
    best_pos: int | None = None
    weight: float | None = None


@dataclass(frozen=True)
class Shares:
    """Milliseconds of one model run per graph node for one variant, and what they add to.

    ``total_ms`` is what shares are taken of: the end-to-end latency for a profile (the sum
    of the kernels when there is none), the sum of the tasks' estimates for ``estimate``.
    ``unmatched`` names profiled kernels the graph has no node for (``unmatched_ms`` their
    time); ``missing`` says why there are no numbers at all (None when there are).
    """

    variant: str
    node_ms: Mapping[str, float]
    total_ms: float
    end_to_end_ms: float | None = None
    kernel_sum_ms: float | None = None
    unmatched: tuple[str, ...] = ()
    unmatched_ms: float = 0.0
    profiled: int = 0
    missing: str | None = None

    def share(self, node_id: str) -> float | None:
        """The node's share of ``total_ms`` (None when the node has no number)."""
        ms = self.node_ms.get(node_id)
        if ms is None or self.total_ms <= 0:
            return None
        return ms / self.total_ms


def newest_profile(profiles: Sequence[ProfileEvent], variant: str) -> ProfileEvent | None:
    """The last profile of ``variant`` (profiles come oldest first)."""
    for profile in reversed(profiles):
        if profile.variant == variant:
            return profile
    return None


def profile_shares(graph: ModelGraph, profile: ProfileEvent | None, variant: str) -> Shares:
    """Each node's time in one run from a per-kernel profile.

    A kernel's time (time per call x calls) is split evenly over the graph nodes that call
    it (one node per call when the graph and the profile agree).
    """
    if profile is None:
        return Shares(variant, {}, 0.0, missing=f"no {VARIANTS[variant]} stored for this job yet")
    by_kernel: dict[str, list[str]] = defaultdict(list)
    for node in graph.nodes:
        by_kernel[node.kernel].append(node.id)
    node_ms: dict[str, float] = {}
    unmatched: list[str] = []
    unmatched_ms = 0.0
    for kernel, secs, calls in zip(
        profile.kernels, profile.kernel_secs, profile.calls, strict=True
    ):
        ms = secs * calls * 1000.0
        ids = by_kernel.get(kernel)
        if not ids:
            unmatched.append(kernel)
            unmatched_ms += ms
            continue
        for node_id in ids:
            node_ms[node_id] = node_ms.get(node_id, 0.0) + ms / len(ids)
    end_to_end = profile.end_to_end_secs * 1000.0
    kernel_sum = profile.kernel_sum_secs * 1000.0
    return Shares(
        variant,
        node_ms,
        end_to_end if end_to_end > 0 else kernel_sum,
        end_to_end_ms=end_to_end,
        kernel_sum_ms=kernel_sum,
        unmatched=tuple(unmatched),
        unmatched_ms=unmatched_ms,
        profiled=len(profile.kernels),
    )


def task_calls(profiles: Sequence[ProfileEvent]) -> dict[str, int]:
    """Calls per run of each task's kernels in the newest profile (the tuned one first);
    empty without a profile."""
    calls: dict[str, int] = defaultdict(int)
    profile = newest_profile(profiles, TUNED) or (profiles[-1] if profiles else None)
    if profile is not None:
        for task, count in zip(profile.tasks, profile.calls, strict=True):
            if task:
                calls[task] += count
    return dict(calls)


def estimate_shares(
    graph: ModelGraph, stats: Mapping[str, TaskStats], calls: Mapping[str, int]
) -> Shares:
    """The current best estimate: each task's best measured latency x its calls per run (from
    the profile, else the task's weight, else its number of graph nodes), as a share of their
    sum; a task's time is split evenly over its nodes. Nodes of tasks without a valid
    measurement have no number."""
    nodes_of: dict[str, list[str]] = defaultdict(list)
    for node in graph.nodes:
        if node.task:
            nodes_of[node.task].append(node.id)
    node_ms: dict[str, float] = {}
    for task, ids in nodes_of.items():
        stat = stats.get(task)
        if stat is None or stat.best_secs is None:
            continue
        count = calls.get(task) or stat.weight or len(ids)
        ms = stat.best_secs * float(count) * 1000.0
        for node_id in ids:
            node_ms[node_id] = ms / len(ids)
    total = math.fsum(node_ms.values())
    missing = None if node_ms else "no task of this model has a valid measurement yet"
    return Shares(ESTIMATE, node_ms, total, missing=missing)


def shares_for(
    variant: str,
    graph: ModelGraph,
    profiles: Sequence[ProfileEvent],
    stats: Mapping[str, TaskStats],
) -> Shares:
    """The shares of ``variant`` (``untuned``, ``tuned`` or ``estimate``)."""
    if variant == ESTIMATE:
        return estimate_shares(graph, stats, task_calls(profiles))
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return profile_shares(graph, newest_profile(profiles, variant), variant)


def default_variant(profiles: Sequence[ProfileEvent], stats: Mapping[str, TaskStats]) -> str:
    """What to show first: the tuned profile when there is one, else the running estimate
    once something was measured, else the untuned profile."""
    if newest_profile(profiles, TUNED) is not None:
        return TUNED
    if any(s.best_secs is not None for s in stats.values()):
        return ESTIMATE
    return UNTUNED


def task_stats(records: pd.DataFrame, tasks: pd.DataFrame, job: str) -> dict[str, TaskStats]:
    """Per task of ``job``: trials, best valid latency and its record, weight (``records``
    and ``tasks`` are the store's ``RECORD_COLUMNS`` / ``TASK_COLUMNS`` frames)."""
    out: dict[str, TaskStats] = {}
    weights: dict[str, float] = {}
    if len(tasks):
        mine = tasks[tasks["job"] == job]
        weights = {
            str(t): float(w)
            for t, w in zip(mine["task"], mine["weight"], strict=True)
            if pd.notna(w)
        }
    if len(records):
        mine = records[records["job"] == job]
        trials = mine.groupby("task", sort=False).size()
        valid = mine[mine["mean_secs"].notna()]
        best = valid.loc[valid.groupby("task", sort=False)["mean_secs"].idxmin()]
        best_by_task = {
            str(t): (float(s), int(p))
            for t, s, p in zip(best["task"], best["mean_secs"], best["pos"], strict=True)
        }
        for task, count in trials.items():
            secs, pos = best_by_task.get(str(task), (None, None))
            out[str(task)] = TaskStats(int(count), secs, pos, weights.get(str(task)))
    for task, weight in weights.items():
        out.setdefault(task, TaskStats(weight=weight))
    return out


# --- collapsing repeated blocks ----------------------------------------------------------------


def blocks(graph: ModelGraph) -> dict[str, list[str]]:
    """Block label -> ids of its nodes, for labels that two or more nodes share."""
    members: dict[str, list[str]] = defaultdict(list)
    for node in graph.nodes:
        if node.block:
            members[node.block].append(node.id)
    return {label: ids for label, ids in members.items() if len(ids) > 1}


def block_id(label: str) -> str:
    """The element id of a block's summary (or compound) node."""
    return BLOCK_PREFIX + label


def block_label(element_id: str) -> str | None:
    """The block an element id stands for, or None for a kernel node."""
    return element_id[len(BLOCK_PREFIX) :] if element_id.startswith(BLOCK_PREFIX) else None


def representatives(graph: ModelGraph, collapsed: Iterable[str]) -> dict[str, str]:
    """Node id -> the id drawn for it: its block's summary node when the block is collapsed,
    else the node itself."""
    shut = set(collapsed)
    return {
        node.id: block_id(node.block) if node.block in shut else node.id for node in graph.nodes
    }


def visible_edges(graph: ModelGraph, rep: Mapping[str, str]) -> list[tuple[str, str]]:
    """Data-flow edges between drawn nodes: edges inside a collapsed block vanish, edges into
    or out of it join at its summary node, duplicates are drawn once."""
    seen: dict[tuple[str, str], None] = {}
    for src, dst in graph.edges:
        a, b = rep[src], rep[dst]
        if a != b:
            seen.setdefault((a, b), None)
    return list(seen)


# --- search and ranking ------------------------------------------------------------------------


def search(graph: ModelGraph, query: str | None) -> list[str]:
    """Ids of the nodes whose kernel, task, operator, fused operators or source layers
    contain ``query`` (case-insensitive); nothing for an empty query."""
    text = (query or "").strip().lower()
    if not text:
        return []
    found = []
    for node in graph.nodes:
        haystack = [node.id, node.kernel, node.op, node.task or "", *node.fused, *node.layers]
        if any(text in item.lower() for item in haystack):
            found.append(node.id)
    return found


@dataclass(frozen=True)
class Bottleneck:
    """One fused kernel's row of the ranked list (its graph nodes taken together)."""

    kernel: str
    nodes: tuple[str, ...]
    layers: tuple[str, ...]
    ambiguous: bool
    task: str | None
    ms: float | None
    share: float | None
    trials: int | None
    best_ms: float | None

    def to_row(self) -> dict[str, Any]:
        """The row the bottleneck table shows."""
        return {
            "kernel": self.kernel,
            "calls": len(self.nodes),
            "layers": layers_text(self.layers, self.ambiguous),
            "task": self.task or "—",
            "share": round(self.share * 100, 2) if self.share is not None else None,
            "ms": round(self.ms, 4) if self.ms is not None else None,
            "trials": self.trials,
            "best_ms": round(self.best_ms, 5) if self.best_ms is not None else None,
            "node": self.nodes[0],
        }


def bottlenecks(
    graph: ModelGraph, shares: Shares, stats: Mapping[str, TaskStats]
) -> list[Bottleneck]:
    """Kernels ranked by their time in one run, slowest first; kernels without a number
    last, in run order."""
    grouped: dict[str, list[KernelNode]] = defaultdict(list)
    for node in graph.nodes:
        grouped[node.kernel].append(node)
    rows = []
    for kernel, nodes in grouped.items():
        times = [shares.node_ms[n.id] for n in nodes if n.id in shares.node_ms]
        ms = math.fsum(times) if times else None
        task = next((n.task for n in nodes if n.task), None)
        stat = stats.get(task) if task else None
        layers = tuple(dict.fromkeys(layer for n in nodes for layer in n.layers))
        rows.append(
            Bottleneck(
                kernel=kernel,
                nodes=tuple(n.id for n in nodes),
                layers=layers,
                ambiguous=any(n.ambiguous for n in nodes),
                task=task,
                ms=ms,
                share=ms / shares.total_ms if ms is not None and shares.total_ms > 0 else None,
                trials=stat.trials if stat else None,
                best_ms=stat.best_secs * 1000.0 if stat and stat.best_secs is not None else None,
            )
        )
    order = sorted(range(len(rows)), key=lambda i: (rows[i].ms is None, -(rows[i].ms or 0.0), i))
    return [rows[i] for i in order]


def layers_text(layers: Sequence[str], ambiguous: bool, limit: int = 3) -> str:
    """Source layers for a label: the first ``limit`` and how many more; ambiguous matches
    say so."""
    if not layers:
        text = "no source layer"
    else:
        text = ", ".join(layers[:limit])
        if len(layers) > limit:
            text += f" +{len(layers) - limit}"
    return f"{text} (ambiguous)" if ambiguous else text


# --- colours and elements ----------------------------------------------------------------------


def ramp_color(fraction: float) -> str:
    """The colour of a share ``fraction`` of the largest one drawn (0..1) on ``RAMP``."""
    x = min(max(fraction, 0.0), 1.0) * (len(RAMP) - 1)
    low = math.floor(x)
    high = min(low + 1, len(RAMP) - 1)
    t = x - low
    a, b = _rgb(RAMP[low]), _rgb(RAMP[high])
    return "#" + "".join(f"{round(p + (q - p) * t):02x}" for p, q in zip(a, b, strict=True))


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


@dataclass(frozen=True)
class GraphView:
    """What the page draws: Cytoscape elements, the share the colour ramp tops out at,
    and counts for the notices."""

    elements: list[dict[str, Any]]
    max_share: float
    drawn_nodes: int
    collapsed_blocks: int
    no_data: int
    found: int
    found_hidden: int
    found_ids: tuple[str, ...] = field(default_factory=tuple)
    positions: dict[str, dict[str, float]] = field(default_factory=dict)
    representative: dict[str, str] = field(default_factory=dict)


def graph_view(
    graph: ModelGraph,
    shares: Shares,
    stats: Mapping[str, TaskStats],
    *,
    collapsed: Iterable[str] = (),
    query: str | None = None,
    picked: Iterable[str] = (),
) -> GraphView:
    """Cytoscape elements of the graph: kernel nodes, a summary node per collapsed block,
    a compound parent around each expanded block, data-flow edges between what is drawn.

    Each node's data holds its label, colour (share of the largest drawn share on
    ``RAMP``; ``NO_DATA_COLOR`` without a number) and facts for the details panel; classes
    mark nodes without data (``nodata``), search matches (``found``: a collapsed block
    holding a match is marked too) and ``picked`` node ids (``picked``).
    """
    groups = blocks(graph)
    shut = [label for label in collapsed if label in groups]
    rep = representatives(graph, shut)
    found = search(graph, query)
    found_set = set(found)
    picked_set = set(picked)
    summaries: dict[str, dict[str, Any]] = {}
    kernels: list[dict[str, Any]] = []
    order: dict[str, None] = {}
    for node in graph.nodes:
        share = shares.share(node.id)
        drawn = rep[node.id]
        order.setdefault(drawn, None)
        if drawn != node.id:
            summary = summaries.setdefault(
                drawn,
                {"label": node.block, "nodes": 0, "ms": 0.0, "with_data": 0, "found": 0,
                 "picked": False},
            )  # fmt: skip
            summary["nodes"] += 1
            if share is not None:
                summary["ms"] += shares.node_ms[node.id]
                summary["with_data"] += 1
            summary["found"] += node.id in found_set
            summary["picked"] = summary["picked"] or node.id in picked_set
            continue
        kernels.append(_kernel_data(node, share, shares, stats, groups))
    for summary in summaries.values():
        summary["share"] = (
            summary["ms"] / shares.total_ms
            if summary["with_data"] and shares.total_ms > 0
            else None
        )
    drawn_shares = [k["share"] for k in kernels if k["share"] is not None]
    drawn_shares += [s["share"] for s in summaries.values() if s["share"] is not None]
    top = max(drawn_shares, default=0.0)
    elements: list[dict[str, Any]] = []
    for label in groups:
        if label not in shut:
            elements.append(
                {"data": {"id": block_id(label), "label": f"{label} (click to collapse)",
                          "kind": "group", "block": label}, "classes": "group"}
            )  # fmt: skip
    edges = visible_edges(graph, rep)
    where = layered_positions(list(order), edges)
    no_data = 0
    for data in kernels:
        classes = ["kernel"]
        if data["share"] is None:
            classes.append("nodata")
            no_data += 1
        if data["id"] in found_set:
            classes.append("found")
        if data["id"] in picked_set:
            classes.append("picked")
        data["color"], data["fg"] = _color(data["share"], top)
        elements.append({"data": data, "classes": " ".join(classes), "position": where[data["id"]]})
    for element_id, s in summaries.items():
        share = s["share"]
        share_text = f"{share * 100:.1f}%" if share is not None else "no data"
        classes = ["block"]
        if share is None:
            classes.append("nodata")
            no_data += 1
        if s["found"]:
            classes.append("found")
        if s["picked"]:
            classes.append("picked")
        color, fg = _color(share, top)
        elements.append(
            {
                "data": {
                    "id": element_id, "kind": "block", "block": s["label"], "share": share,
                    "ms": s["ms"] if s["with_data"] else None, "color": color, "fg": fg,
                    "label": f"{s['label']} ×{s['nodes']} kernels\n{share_text} · click to expand",
                    "nodes": s["nodes"],
                },
                "classes": " ".join(classes),
                "position": where[element_id],
            }
        )  # fmt: skip
    for i, (src, dst) in enumerate(edges):
        elements.append({"data": {"id": f"e{i}", "source": src, "target": dst}})
    hidden = sum(s["found"] for s in summaries.values())
    return GraphView(
        elements=elements,
        max_share=top,
        drawn_nodes=len(kernels) + len(summaries),
        collapsed_blocks=len(summaries),
        no_data=no_data,
        found=len(found),
        found_hidden=hidden,
        found_ids=tuple(found),
        positions=where,
        representative=rep,
    )


def _color(share: float | None, top: float) -> tuple[str, str]:
    """(fill, text colour): white text on the dark end of the ramp."""
    if share is None:
        return NO_DATA_COLOR, "#495057"
    fraction = share / top if top > 0 else 0.0
    return ramp_color(fraction), "#ffffff" if fraction > 0.7 else "#212529"


def layered_positions(
    order: Sequence[str], edges: Sequence[tuple[str, str]]
) -> dict[str, dict[str, float]]:
    """Top-to-bottom positions of drawn nodes: each node one row below its lowest producer
    (longest path from the inputs; ``order`` is run order, so producers come first), side
    by side in run order within a row."""
    producers: dict[str, list[str]] = defaultdict(list)
    for src, dst in edges:
        producers[dst].append(src)
    depth: dict[str, int] = {}
    for node_id in order:
        depth[node_id] = max((depth[p] + 1 for p in producers[node_id] if p in depth), default=0)
    columns: dict[int, int] = defaultdict(int)
    out = {}
    for node_id in order:
        row = depth[node_id]
        out[node_id] = {"x": float(columns[row] * COLUMN_GAP), "y": float(row * ROW_GAP)}
        columns[row] += 1
    return out


def _first_line(node: KernelNode) -> str:
    """Source layers when known, else the kernel's own name."""
    if node.layers:
        return layers_text(node.layers, node.ambiguous, 2)
    return f"{node.kernel} (ambiguous)" if node.ambiguous else node.kernel


def _kernel_data(
    node: KernelNode,
    share: float | None,
    shares: Shares,
    stats: Mapping[str, TaskStats],
    groups: Mapping[str, list[str]],
) -> dict[str, Any]:
    stat = stats.get(node.task) if node.task else None
    best = stat.best_secs * 1000.0 if stat and stat.best_secs is not None else None
    tuning = "no task" if not node.task else "no trials yet"
    if stat and stat.trials:
        tuning = f"{stat.trials} trials"
        if best is not None:
            tuning += f" · best {best:.4g} ms"
    share_text = f"{share * 100:.1f}%" if share is not None else "no data"
    data: dict[str, Any] = {
        "id": node.id,
        "kind": "kernel",
        "kernel": node.kernel,
        "op": node.op,
        "task": node.task,
        "layers": list(node.layers),
        "ambiguous": node.ambiguous,
        "share": share,
        "ms": shares.node_ms.get(node.id),
        "trials": stat.trials if stat else None,
        "best_ms": best,
        "label": f"{_first_line(node)}\n{share_text} · {tuning}",
    }
    if node.block in groups:
        data["parent"] = block_id(node.block)
    return data
