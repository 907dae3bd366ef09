"""Memory figures: the tensors live at every step of several operator orders, stacked, side
by side on one y scale with each order's peak marked; and a TCM placement over the steps
(what is resident, what is loaded, spilled or streamed). Pure: a ``MemoryPlan`` in, a
figure dict out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collectors.memoryplan import MemoryPlan
from dashboard.figures.style import axis, base_layout

PALETTE = (
    "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3",
    "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd",
)  # fmt: skip
GAP = 0.06  # between side-by-side panels, as a share of the width
KIB = 1024.0
MOVES = {  # name: (marker symbol, colour, what it means)
    "loads": ("triangle-up", "#2b8a3e", "loaded from DRAM"),
    "spills": ("triangle-down", "#c92a2a", "spilled to DRAM"),
    "streamed": ("x", "#e67700", "streamed from/to DRAM"),
}


def live_bytes(plan: MemoryPlan, label: str) -> list[int]:
    """Bytes live at every step of the order ``label``."""
    return [sum(plan.tensors[t] for t in names) for names in plan.order(label).live]


def peak_step(plan: MemoryPlan, label: str) -> tuple[int, int]:
    """(first step of the peak, peak bytes) of the order ``label`` ((0, 0) when empty)."""
    profile = live_bytes(plan, label)
    if not profile:
        return 0, 0
    peak = max(profile)
    return profile.index(peak), peak


def tensor_colours(plan: MemoryPlan) -> dict[str, str]:
    """One colour per tensor, the same in every panel."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(plan.tensors)}


def live_memory_figure(plan: MemoryPlan, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Stacked live tensors (KiB) per step, one panel per order, one y scale, the peak of
    each marked by a dashed line and a label."""
    labels = list(labels or [o.label for o in plan.orders])
    colours = tensor_colours(plan)
    width = (1.0 - GAP * (len(labels) - 1)) / max(len(labels), 1)
    top = max((peak_step(plan, label)[1] for label in labels), default=0) / KIB
    traces: list[dict[str, Any]] = []
    layout = base_layout(
        barmode="stack",
        bargap=0.05,
        height=380,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        yaxis=axis("live memory (KiB)", range=[0, top * 1.12 or 1]),
    )
    shapes, notes = [], []
    for k, label in enumerate(labels):
        order = plan.order(label)
        x_name = "x" if k == 0 else f"x{k + 1}"
        start = k * (width + GAP)
        layout[f"xaxis{'' if k == 0 else k + 1}"] = axis(
            "step", domain=[start, start + width], anchor="y"
        )
        for name in plan.tensors:
            steps = [s for s, names in enumerate(order.live) if name in names]
            if not steps:
                continue
            traces.append({
                "type": "bar", "name": name, "xaxis": x_name, "yaxis": "y",
                "x": steps, "y": [plan.tensors[name] / KIB] * len(steps),
                "marker": {"color": colours[name], "line": {"width": 0.5, "color": "white"}},
                "customdata": [order.steps[s] for s in steps],
                "hovertemplate": f"{name}: %{{y:.1f}} KiB<br>step %{{x}} (%{{customdata}})"
                "<extra></extra>",
            })  # fmt: skip
        step, peak = peak_step(plan, label)
        shapes.append({
            "type": "line", "xref": f"{x_name} domain", "yref": "y", "x0": 0, "x1": 1,
            "y0": peak / KIB, "y1": peak / KIB, "line": {"dash": "dash", "color": "#212529"},
        })  # fmt: skip
        planned = "" if order.planned_bytes is None else f"; TVM plans {_kib(order.planned_bytes)}"
        notes.append({
            "text": f"<b>{label}</b>: peak {_kib(peak)} at step {step}{planned}",
            "xref": f"{x_name} domain", "yref": "paper", "x": 0.5, "y": 1.02,
            "xanchor": "center", "yanchor": "bottom", "showarrow": False,
        })  # fmt: skip
        notes.append({
            "text": "peak", "xref": x_name, "yref": "y", "x": step, "y": peak / KIB,
            "ax": 0, "ay": -18, "showarrow": True, "arrowhead": 2,
        })  # fmt: skip
    layout["shapes"] = shapes
    layout["annotations"] = notes
    return {"data": traces, "layout": layout}


def tcm_figure(plan: MemoryPlan) -> dict[str, Any] | None:
    """Resident tensors (KiB) per step of the TCM plan's order under the TCM size, with
    markers above for the loads, spills and streamed operands of every step; None when the
    plan has no TCM placement."""
    tcm = plan.tcm
    if tcm is None:
        return None
    colours = tensor_colours(plan)
    order = plan.order(tcm.order)
    traces: list[dict[str, Any]] = []
    for name in plan.tensors:
        steps = [s for s, names in enumerate(tcm.resident) if name in names]
        if steps:
            traces.append({
                "type": "bar", "name": name, "x": steps,
                "y": [plan.tensors[name] / KIB] * len(steps),
                "marker": {"color": colours[name]},
                "hovertemplate": f"{name} in the TCM: %{{y:.1f}} KiB<br>step %{{x}}"
                "<extra></extra>",
            })  # fmt: skip
    ceiling = tcm.tcm_bytes / KIB
    for row, (kind, (symbol, colour, meaning)) in enumerate(MOVES.items()):
        by_step: dict[int, list[str]] = {}
        for step, name in getattr(tcm, kind):
            by_step.setdefault(step, []).append(name)
        steps = sorted(by_step)
        traces.append({
            "type": "scatter", "mode": "markers", "name": meaning, "x": steps,
            "y": [ceiling * (1.08 + 0.08 * row)] * len(steps),
            "marker": {"symbol": symbol, "color": colour, "size": 9},
            "customdata": [", ".join(by_step[s]) for s in steps],
            "hovertemplate": f"step %{{x}}: {meaning}: %{{customdata}}<extra></extra>",
        })  # fmt: skip
    greedy = "" if tcm.greedy_dram_bytes is None else f", greedy {_kib(tcm.greedy_dram_bytes)}"
    floor = (
        ""
        if tcm.compulsory_dram_bytes is None
        else f", compulsory {_kib(tcm.compulsory_dram_bytes)}"
    )
    layout = base_layout(
        barmode="stack",
        bargap=0.05,
        height=340,
        showlegend=False,
        title={"text": f"TCM {_kib(tcm.tcm_bytes)} over {tcm.order}: DRAM traffic "
               f"{_kib(tcm.dram_bytes)}{greedy}{floor}", "font": {"size": 13}},
        xaxis=axis("step", range=[-0.5, max(len(order.steps) - 0.5, 0.5)]),
        yaxis=axis("in the TCM (KiB)", range=[0, ceiling * 1.35 or 1]),
        shapes=[{
            "type": "line", "xref": "x domain", "yref": "y", "x0": 0, "x1": 1,
            "y0": ceiling, "y1": ceiling, "line": {"color": "#c92a2a", "dash": "dot"},
        }],
    )  # fmt: skip
    return {"data": traces, "layout": layout}


def _kib(size: float) -> str:
    return f"{size / KIB:.1f} KiB"
