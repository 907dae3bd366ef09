"""Timeline figures: a Gantt chart per resource, its occupancy raster, and utilization.

The data steps take the stage intervals of ``BaseStore.stage_intervals`` (``STAGE_COLUMNS``)
with two axis columns added by ``with_axis``: ``lane`` (the row the stage is drawn in) and
``x0``/``x1`` (seconds on the time axis).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.colors import ERROR_COLOR, color_of
from dashboard.figures.style import axis, base_layout

# How strongly each stage kind is drawn: the client lane alternates select/build/update.
STAGE_OPACITY: dict[str, float] = {"select": 0.55, "build": 0.8, "profile": 1.0, "update": 0.4}
LANE_HEIGHT_PX = 26
X_TITLE = "time since the first stage (s)"


def lane_label(resource: str, clock: str, source: str) -> str:
    """The row a stage is drawn in: the resource, tagged with its run when simulated."""
    if clock == "sim":
        return f"{resource} · sim {source[-6:]}"
    return resource


def lane_key(lane: str) -> tuple[int, str, int, str, int, str]:
    """Sort key of a lane: wall-clock first, then by run, clients before devices, by index."""
    resource, _, sim_tag = lane.partition(" · ")
    pool, _, index = resource.rpartition(":")
    client = pool == "client" or pool.startswith("client:")  # client:NODE:i: a node's core
    rank = 0 if client else 1 if pool.startswith("device") else 2
    number = int(index) if index.isdigit() else 0
    return (1 if sim_tag else 0, sim_tag, rank, pool, number, lane)


def order_lanes(lanes: Sequence[str]) -> list[str]:
    """Lanes top to bottom: wall-clock before simulated, clients before devices, by index."""
    return sorted(set(lanes), key=lane_key)


def with_axis(stages: pd.DataFrame, t0_wall: float | None) -> pd.DataFrame:
    """Add ``lane``, ``x0`` and ``x1``: wall times relative to ``t0_wall``, sim times as is."""
    out = stages.copy()
    if out.empty:
        out["lane"] = pd.Series(dtype=object)
        out["x0"] = pd.Series(dtype=float)
        out["x1"] = pd.Series(dtype=float)
        return out
    sim = (out["clock"] == "sim").to_numpy()
    offset = np.where(sim, 0.0, t0_wall if t0_wall is not None else 0.0)
    out["x0"] = out["start"].to_numpy(dtype=float) - offset
    out["x1"] = out["end"].to_numpy(dtype=float) - offset
    labels = [
        lane_label(r, c, s)
        for r, c, s in zip(out["resource"], out["clock"], out["source"], strict=True)
    ]
    out["lane"] = labels
    return out


def filter_stages(
    stages: pd.DataFrame,
    *,
    jobs: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    window: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Stages of the selected jobs and tasks overlapping the window (axis seconds)."""
    mask = np.ones(len(stages), dtype=bool)
    if jobs:
        mask &= stages["job"].isin(list(jobs)).to_numpy()
    if tasks:
        mask &= stages["task"].isin(list(tasks)).to_numpy()
    if window is not None:
        lo, hi = window
        mask &= (stages["x1"].to_numpy() >= lo) & (stages["x0"].to_numpy() <= hi)
    return stages[mask]


def stage_hovertext(
    job_label: str,
    task: str,
    iteration: int,
    stage: str,
    resource: str,
    duration: float,
    status: str = "ok",
    error: str | None = None,
) -> str:
    """Hover text of one bar: job, task, iteration, stage kind, resource, duration."""
    text = (
        f"<b>{job_label}</b> · {task}<br>iteration {iteration} · <b>{stage}</b> on {resource}"
        f"<br>{_seconds(duration)}"
    )
    if status != "ok":
        text += f" · <b>{status}</b>"
        if isinstance(error, str) and error:
            text += f": {error[:120]}"
    return text


def _seconds(value: float) -> str:
    if value < 1.0:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


@dataclass(frozen=True)
class BarData:
    """Columns of the Gantt bar trace (one bar per stage), ready for Plotly or a live Patch."""

    lane: list[str]
    base: list[float]
    width: list[float]
    color: list[str]
    opacity: list[float]
    line: list[str]
    hover: list[str]
    pos: list[int]


def bar_data(
    stages: pd.DataFrame, colors: Mapping[str, str], job_labels: Mapping[str, str]
) -> BarData:
    """One bar per stage, coloured by job, drawn more faintly for non-profile kinds."""
    durations = (stages["x1"] - stages["x0"]).to_numpy(dtype=float)
    hover = [
        stage_hovertext(job_labels.get(j, j), t, int(i), s, r, d, st, e)
        for j, t, i, s, r, d, st, e in zip(
            stages["job"], stages["task"], stages["iteration"], stages["stage"],
            stages["resource"], durations, stages["status"], stages["error"], strict=True,
        )
    ]  # fmt: skip
    return BarData(
        lane=list(stages["lane"]),
        base=stages["x0"].to_numpy(dtype=float).round(6).tolist(),
        width=durations.round(6).tolist(),
        color=[color_of(dict(colors), j) for j in stages["job"]],
        opacity=[STAGE_OPACITY.get(s, 1.0) for s in stages["stage"]],
        line=[ERROR_COLOR if st != "ok" else "rgba(0,0,0,0)" for st in stages["status"]],
        hover=hover,
        pos=[int(p) for p in stages["pos"]],
    )


def _height(n_lanes: int) -> int:
    return max(200, 90 + LANE_HEIGHT_PX * max(n_lanes, 1))


@dataclass(frozen=True)
class LaneEnds:
    """Where lanes end: the resource left (a cluster node went away), and why."""

    lane: list[str]
    x: list[float]
    text: list[str]


def lane_ends(
    departures: Sequence[tuple[str, float, str]], t0_wall: float | None, lanes: Sequence[str]
) -> LaneEnds:
    """The end marker of each drawn wall-clock lane whose resource left: ``departures`` are
    (resource, unix time, why) from the store's ``resource`` events, the last one counts."""
    shown = set(lanes)
    last = {resource: (ts, why) for resource, ts, why in departures if resource in shown}
    ordered = sorted(last.items())
    return LaneEnds(
        lane=[resource for resource, _ in ordered],
        x=[ts - (t0_wall or 0.0) for _, (ts, _) in ordered],
        text=[why for _, (_, why) in ordered],
    )


def gantt_figure(
    bars: BarData,
    lanes: Sequence[str],
    window: tuple[float, float] | None = None,
    ends: LaneEnds | None = None,
) -> go.Figure:
    """Exact Gantt chart: lanes are resources, one horizontal bar per stage; ``ends`` marks
    lanes whose resource left (a second trace).

    The stage trace (the first) holds plain lists so that a live ``Patch`` can extend it.
    """
    trace = {
        "type": "bar",
        "orientation": "h",
        "y": bars.lane,
        "x": bars.width,
        "base": bars.base,
        "marker": {
            "color": bars.color,
            "opacity": bars.opacity,
            "line": {"color": bars.line, "width": 1.5},
        },
        "hovertext": bars.hover,
        "hoverinfo": "text",
        "customdata": bars.pos,
        "name": "stages",
        "width": 0.8,
    }
    layout = base_layout(
        height=_height(len(lanes)),
        barmode="overlay",
        bargap=0.15,
        hovermode="closest",
        margin={"l": 150, "r": 20, "t": 10, "b": 50},
        uirevision=str(window),
    )
    layout["xaxis"] = axis(X_TITLE, range=list(window) if window else None)
    if window is None:
        layout["xaxis"]["autorange"] = True
    layout["yaxis"] = axis(
        "", type="category", categoryorder="array", categoryarray=list(lanes),
        autorange="reversed", fixedrange=True, showgrid=False,
    )  # fmt: skip
    data = [trace]
    if ends is not None and ends.lane:
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "y": ends.lane,
                "x": ends.x,
                "marker": {"symbol": "line-ns", "size": 22, "line": {"width": 3,
                           "color": "#dc3545"}},
                "hovertext": [f"left: {why}" for why in ends.text],
                "hoverinfo": "text",
                "name": "resource left",
                "showlegend": False,
            }
        )  # fmt: skip
    # Thousands of per-bar values: plotly.py's per-item validation would cost more than the
    # drawing, and the arrays are built right above.
    return go.Figure(data=data, layout=layout, _validate=False)


@dataclass(frozen=True)
class Occupancy:
    """Per-lane busy fraction in equal time bins (1.0 = one stage all the time)."""

    lanes: list[str]
    edges: np.ndarray  # bins + 1 edges, axis seconds
    busy: np.ndarray  # lanes x bins, fraction of the bin held by stages (overlaps add up)
    top_job: np.ndarray  # lanes x bins, index into ``jobs`` of the job holding most, -1 idle
    jobs: list[str]

    @property
    def centers(self) -> np.ndarray:
        return (self.edges[:-1] + self.edges[1:]) / 2


def occupancy(
    stages: pd.DataFrame, lanes: Sequence[str], window: tuple[float, float], bins: int = 600
) -> Occupancy:
    """Bin stage intervals into ``bins`` equal bins per lane, exactly (partial bins pro rata).

    Sparse: each interval adds its share to every bin it touches, summed per (lane, bin, job)
    that occurs, so the cost is O(stages + bins touched) whatever the number of jobs (a dense
    jobs x lanes x bins array would take gigabytes for a thousand jobs on 80 lanes).
    """
    lo, hi = float(window[0]), float(window[1])
    if not hi > lo:
        hi = lo + 1e-9
    lanes = list(lanes)
    jobs = sorted(stages["job"].unique()) if len(stages) else []
    n_lanes, n_jobs = len(lanes), max(len(jobs), 1)
    edges = np.linspace(lo, hi, bins + 1)
    width = (hi - lo) / bins
    cells = n_lanes * bins
    total = np.zeros(cells)
    top = np.full(cells, -1, dtype=np.int64)
    if len(stages) and n_lanes:
        li = _index_of(stages["lane"], lanes)
        ji = _index_of(stages["job"], jobs)
        s = np.clip(stages["x0"].to_numpy(dtype=float), lo, hi)
        e = np.clip(stages["x1"].to_numpy(dtype=float), lo, hi)
        keep = (e > s) & (li >= 0)
        li, ji, s, e = li[keep], ji[keep], s[keep], e[keep]
        bs = np.minimum(((s - lo) / width).astype(np.int64), bins - 1)
        be = np.minimum(((e - lo) / width).astype(np.int64), bins - 1)
        # One row per (interval, bin it touches): the first bin pro rata, full bins in
        # between, the last bin pro rata (one bin: the interval's length).
        touched = be - bs + 1
        which = np.repeat(np.arange(len(s)), touched)
        b = bs[which] + (np.arange(len(which)) - np.repeat(np.cumsum(touched) - touched, touched))
        share = np.full(len(which), width)
        first, last = b == bs[which], b == be[which]
        share[first] = edges[b[first] + 1] - s[which[first]]
        share[last] = e[which[last]] - edges[b[last]]
        one = first & last
        share[one] = e[which[one]] - s[which[one]]
        cell = li[which] * bins + b
        keys, inverse = np.unique(cell * n_jobs + ji[which], return_inverse=True)
        sums = np.bincount(inverse.ravel(), weights=share, minlength=len(keys))
        key_cell, key_job = keys // n_jobs, keys % n_jobs
        total = np.bincount(key_cell, weights=sums, minlength=cells)
        # The job holding each cell most (the lowest job index among equals).
        order = np.lexsort((key_job, -sums, key_cell))
        head = np.ones(len(order), dtype=bool)
        head[1:] = key_cell[order][1:] != key_cell[order][:-1]
        best = order[head]
        top[key_cell[best]] = np.where(sums[best] > 0, key_job[best], -1)
    busy = total.reshape(n_lanes, bins) / width
    top_job = np.where(busy > 0, top.reshape(n_lanes, bins), -1)
    return Occupancy(lanes=lanes, edges=edges, busy=busy, top_job=top_job, jobs=jobs)


def _index_of(values: pd.Series, names: Sequence[str]) -> np.ndarray:
    """Position of each value in ``names`` (-1 when absent), vectorized."""
    codes, uniques = pd.factorize(values)
    where = {name: i for i, name in enumerate(names)}
    lookup = np.array([where.get(u, -1) for u in uniques] + [-1], dtype=np.int64)
    return lookup[codes]


def occupancy_figure(
    occ: Occupancy,
    colors: Mapping[str, str],
    job_labels: Mapping[str, str],
    window: tuple[float, float] | None,
) -> go.Figure:
    """Occupancy raster: per lane and time bin, how busy the lane was, in the colour of the
    job that held it most (pale = barely used, full colour = busy all the bin).

    One heatmap: ``z`` is the index of the job's colour plus its busy fraction, and the
    colour scale runs from pale to full in each colour's own segment; ``customdata`` holds
    the busy percentage. Idle bins are blank.
    """
    # One segment of the colour scale per distinct colour (jobs share the palette's colours):
    # a thousand jobs would otherwise make a scale of two thousand stops for the browser to
    # parse on every draw.
    palette = dict(colors)
    job_color = [color_of(palette, job) for job in occ.jobs or ["-"]]
    shades = list(dict.fromkeys(job_color))
    where = {color: index for index, color in enumerate(shades)}
    shade_of_job = np.array([where[color] for color in job_color], dtype=np.int64)
    n = len(shades)
    busy = np.clip(occ.busy, 0.0, 1.0)
    shade = shade_of_job[np.maximum(occ.top_job, 0)]
    z = np.where(occ.top_job >= 0, shade + busy * 0.999, np.nan).astype(np.float32)
    scale: list[list[Any]] = []
    for index, color in enumerate(shades):
        scale.append([index / n, _tint(color, 0.15)])
        scale.append([(index + 0.999) / n, color])
    scale[-1][0] = 1.0
    names = ", ".join(job_labels.get(j, j) for j in occ.jobs)
    trace = {
        "type": "heatmap",
        "z": z,
        "x0": float(occ.centers[0]) if len(occ.centers) else 0.0,
        "dx": float(occ.edges[1] - occ.edges[0]) if len(occ.edges) > 1 else 1.0,
        "y": occ.lanes,
        "zmin": 0,
        "zmax": n,
        "colorscale": scale,
        "showscale": False,
        "hoverongaps": False,
        "customdata": np.round(occ.busy * 100, 1).astype(np.float32),
        "hovertemplate": "%{y}<br>t = %{x:.2f} s<br>busy %{customdata:.0f}%<extra></extra>",
        "meta": {"jobs": list(occ.jobs), "names": names},
        "xgap": 0,
        "ygap": 2,
    }
    layout = base_layout(
        height=_height(len(occ.lanes)),
        margin={"l": 150, "r": 20, "t": 10, "b": 50},
        uirevision=str(window),
    )
    layout["xaxis"] = axis(X_TITLE, range=[float(occ.edges[0]), float(occ.edges[-1])])
    layout["yaxis"] = axis(
        "", type="category", categoryorder="array", categoryarray=list(occ.lanes),
        autorange="reversed", fixedrange=True, showgrid=False,
    )  # fmt: skip
    # A colour scale of two stops per job: plotly.py's validation of a thousand jobs' scale
    # would cost more than building the figure.
    return go.Figure(data=[trace], layout=layout, _validate=False)


def _tint(color: str, strength: float) -> str:
    """``color`` (#rrggbb) mixed with white, ``strength`` of the colour kept."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    mix = [round(255 - (255 - c) * strength) for c in (r, g, b)]
    return f"rgb({mix[0]},{mix[1]},{mix[2]})"


def span(stages: pd.DataFrame) -> tuple[float, float] | None:
    """(earliest start, latest end) on the axis, or None without stages."""
    if stages.empty:
        return None
    return float(stages["x0"].min()), float(stages["x1"].max())


def utilization(
    stages: pd.DataFrame, lanes: Sequence[str], window: tuple[float, float] | None
) -> pd.DataFrame:
    """Busy and idle seconds per lane over the window (overlapping stages count once).

    Returns columns ``lane, busy_s, idle_s, utilization`` (0..1) in lane order. Without a
    window, the span of the given stages is used.
    """
    columns = ["lane", "busy_s", "idle_s", "utilization"]
    if window is None:
        window = span(stages)
    if window is None or not lanes:
        return pd.DataFrame({c: [] for c in columns})
    lo, hi = window
    length = max(hi - lo, 0.0)
    busy = dict.fromkeys(lanes, 0.0)
    if len(stages):
        df = pd.DataFrame(
            {
                "lane": stages["lane"].to_numpy(),
                "s": np.clip(stages["x0"].to_numpy(dtype=float), lo, hi),
                "e": np.clip(stages["x1"].to_numpy(dtype=float), lo, hi),
            }
        )
        df = df[df["e"] > df["s"]].sort_values(["lane", "s"], kind="stable")
        if len(df):
            # Union length: each interval adds what it reaches past the furthest end so far.
            reach = df.groupby("lane", sort=False)["e"].cummax()
            prev = reach.groupby(df["lane"], sort=False).shift(1)
            start = np.maximum(df["s"].to_numpy(), prev.fillna(-np.inf).to_numpy())
            gain = np.clip(df["e"].to_numpy() - start, 0.0, None)
            sums = pd.Series(gain, index=df.index).groupby(df["lane"], sort=False).sum()
            for lane, value in sums.items():
                if lane in busy:
                    busy[lane] = float(value)
    rows = []
    for lane in lanes:
        b = min(busy[lane], length)
        rows.append(
            {
                "lane": lane,
                "busy_s": b,
                "idle_s": max(length - b, 0.0),
                "utilization": b / length if length > 0 else 0.0,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def utilization_figure(util: pd.DataFrame) -> go.Figure:
    """Utilization per lane over the visible window, with idle seconds in the label."""
    pct = (util["utilization"] * 100).round(1).tolist()
    labels = [
        f"{p:.0f}% busy · idle {_seconds(i)}" for p, i in zip(pct, util["idle_s"], strict=True)
    ]
    trace = go.Bar(
        orientation="h",
        y=list(util["lane"]),
        x=pct,
        text=labels,
        textposition="auto",
        insidetextanchor="end",
        marker={"color": "#4c78a8"},
        hovertemplate="%{y}<br>%{text}<extra></extra>",
        cliponaxis=False,
    )
    layout = base_layout(
        height=_height(len(util)),
        margin={"l": 150, "r": 20, "t": 10, "b": 50},
        bargap=0.25,
    )
    layout["xaxis"] = axis("utilization over the visible window (%)", range=[0, 100])
    layout["yaxis"] = axis(
        "", type="category", categoryorder="array", categoryarray=list(util["lane"]),
        autorange="reversed", fixedrange=True, showgrid=False,
    )  # fmt: skip
    return go.Figure(data=[trace], layout=layout)
