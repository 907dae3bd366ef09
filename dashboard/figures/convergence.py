"""Convergence figures: best latency so far per task and the weighted end-to-end estimate.

The data steps take ``BaseStore.records`` (``RECORD_COLUMNS``) rows in position order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.colors import ERROR_COLOR, color_of
from dashboard.figures.style import axis, base_layout

DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SERIES_SEP = "\u0001"  # joins job and task into one series key (never in an id)
LEFT_X = "trials measured"
RIGHT_X = "time since the job was submitted (s)"


def series_key(job: str, task: str) -> str:
    return f"{job}{SERIES_SEP}{task}"


def best_so_far(records: pd.DataFrame, job_t0: Mapping[str, float]) -> pd.DataFrame:
    """One row per record with the running best of its (job, task) series.

    Columns: ``pos, job, task, n`` (1-based trial number in the series), ``t`` (seconds since
    the job started), ``ms`` (measured mean, NaN for errors), ``best_ms`` (NaN until the first
    valid measurement), ``best_pos`` (record holding the best), ``is_error``.
    """
    columns = ["pos", "job", "task", "n", "t", "ms", "best_ms", "best_pos", "is_error"]
    if records.empty:
        return pd.DataFrame({c: [] for c in columns})
    df = records[["pos", "job", "task", "ts", "mean_secs"]].copy()
    df = df.sort_values("pos", kind="stable").reset_index(drop=True)
    df["ms"] = df["mean_secs"].astype(float) * 1000.0
    groups = df.groupby(["job", "task"], sort=False)
    df["n"] = groups.cumcount() + 1
    df["best_ms"] = groups["ms"].cummin()
    # cummin skips NaN but leaves NaN rows as NaN: carry the running best over errors.
    df["best_ms"] = df.groupby(["job", "task"], sort=False)["best_ms"].ffill()
    is_best = df["ms"].notna() & (df["ms"] == df["best_ms"])
    df["best_pos"] = df["pos"].where(is_best)
    df["best_pos"] = df.groupby(["job", "task"], sort=False)["best_pos"].ffill()
    t0 = df["job"].map(lambda j: job_t0.get(j, np.nan)).astype(float)
    first_ts = groups["ts"].transform("min")
    df["t"] = df["ts"] - t0.fillna(first_ts)
    df["is_error"] = df["ms"].isna()
    return df[columns]


def minmax_downsample(y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices to keep so that each of ``max_points // 2`` buckets keeps its min and its max.

    The first and last points are always kept; the result is sorted. NaN never wins a bucket
    unless the bucket holds nothing else.
    """
    n = len(y)
    if n <= max_points or max_points < 4:
        return np.arange(n)
    y = np.asarray(y, dtype=float)
    buckets = max_points // 2
    bucket = (np.arange(n) * buckets) // n
    low = np.where(np.isnan(y), np.inf, y)
    high = np.where(np.isnan(y), -np.inf, y)
    by_low = np.lexsort((np.arange(n), low, bucket))
    by_high = np.lexsort((np.arange(n), -high, bucket))
    starts = np.flatnonzero(np.r_[True, bucket[by_low][1:] != bucket[by_low][:-1]])
    keep = np.concatenate([by_low[starts], by_high[starts], [0, n - 1]])
    return np.unique(keep)


@dataclass(frozen=True)
class SeriesMeta:
    """Where a series lives in the figure, for live extension in the browser."""

    job: str
    task: str
    left: int
    right: int
    n: int
    best: float | None
    best_pos: int | None


@dataclass(frozen=True)
class ConvergenceMeta:
    """Trace indexes and running state the live client needs to extend the figure."""

    series: dict[str, SeriesMeta] = field(default_factory=dict)
    points: tuple[int, int] | None = None
    errors: tuple[int, int] = (0, 0)
    downsampled: bool = False  # some series show fewer points than they have

    def to_json(self) -> dict[str, Any]:
        return {
            "series": {
                key: {
                    "job": s.job, "task": s.task, "left": s.left, "right": s.right,
                    "n": s.n, "best": s.best, "best_pos": s.best_pos,
                }
                for key, s in self.series.items()
            },
            "points": list(self.points) if self.points else None,
            "errors": list(self.errors),
        }  # fmt: skip


def _error_y(df: pd.DataFrame) -> pd.Series:
    """Errors sit on the series' best line, or at its worst measurement before any best."""
    top = df.groupby(["job", "task"], sort=False)["ms"].transform("max")
    return df["best_ms"].fillna(top).fillna(1.0)


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else round(float(v), 6) for v in values]


LINE_BUDGET = 60_000  # points of all best-so-far lines of a figure together
POINT_BUDGET = 20_000  # measurement points of a figure together


def _budget(total: int, series: int, cap: int, floor: int) -> int:
    """Points each series may keep so that all of them stay near ``total``."""
    return max(min(floor, cap), min(cap, total // max(series, 1)))


def two_panel_layout(y_title: str, y_type: str, y_ticks: dict[str, Any], **extra: Any):
    """Layout of a figure with trials on the left and time on the right, sharing y."""
    layout = base_layout(
        height=480,
        showlegend=True,
        legend={"orientation": "v", "x": 1.01, "y": 1, "font": {"size": 11}},
        hovermode="closest",
        margin={"l": 70, "r": 20, "t": 10, "b": 50},
        **extra,
    )
    layout["xaxis"] = axis(LEFT_X, domain=[0.0, 0.48], anchor="y")
    layout["xaxis2"] = axis(RIGHT_X, domain=[0.52, 1.0], anchor="y2")
    layout["yaxis"] = axis(y_title, type=y_type, anchor="x", **y_ticks)
    layout["yaxis2"] = axis("", type=y_type, anchor="x2", matches="y", showticklabels=False,
                            **y_ticks)  # fmt: skip
    return layout


def convergence_figure(
    best: pd.DataFrame,
    colors: Mapping[str, str],
    job_labels: Mapping[str, str],
    *,
    show_points: bool = True,
    log_y: bool = True,
    max_points: int = 2000,
) -> tuple[go.Figure, ConvergenceMeta]:
    """Best latency so far per (job, task) vs trials (left) and vs time (right).

    Every series is downsampled on its own keeping minima and maxima (at most ``max_points``
    each, fewer when many series share the figure); measurements are faint points, failed
    candidates red crosses. Returns the figure and the live-extension meta.
    """
    groups = list(best.groupby(["job", "task"], sort=False))
    line_cap = _budget(LINE_BUDGET, len(groups), max_points, 200)
    traces: list[dict[str, Any]] = []
    series: dict[str, SeriesMeta] = {}
    task_rank: dict[str, dict[str, int]] = {}
    downsampled = False
    for (job, task), df in groups:
        ranks = task_rank.setdefault(job, {})
        dash = DASHES[ranks.setdefault(task, len(ranks)) % len(DASHES)]
        keep = minmax_downsample(df["best_ms"].to_numpy(dtype=float), line_cap)
        downsampled |= len(keep) < len(df)
        part = df.iloc[keep]
        name = f"{job_labels.get(job, job)} · {task}"
        y = _nan_to_none(part["best_ms"].to_numpy())
        common: dict[str, Any] = {
            "type": "scatter", "mode": "lines", "name": name,
            "line": {"color": color_of(dict(colors), job), "dash": dash, "width": 2,
                     "shape": "hv"},
            "legendgroup": series_key(job, task),
            # [record holding the best, record measured at this step]
            "customdata": [
                [None if np.isnan(b) else int(b), int(p)]
                for b, p in zip(part["best_pos"], part["pos"], strict=True)
            ],
            "hovertemplate": f"{name}<br>best %{{y:.4g}} ms (record %{{customdata[0]}})"
            "<br>%{x}<extra></extra>",
        }  # fmt: skip
        series[series_key(job, task)] = _series_meta(job, task, len(traces), df)
        traces.append({**common, "x": part["n"].tolist(), "y": y})
        traces.append({**common, "x": part["t"].round(4).tolist(), "y": y,
                       "xaxis": "x2", "yaxis": "y2", "showlegend": False})  # fmt: skip
    points = None
    if show_points:
        ok = best[~best["is_error"]]
        cap = _budget(POINT_BUDGET, len(groups), max_points, 50)
        keep = _downsample_groups(ok, "ms", cap)
        downsampled |= len(keep) < len(ok)
        ok = ok.iloc[keep]
        points = (len(traces), len(traces) + 1)
        for axes, xcol, name in (("1", "n", "measurements"), ("2", "t", "measurements vs time")):
            traces.append({
                "type": "scatter", "mode": "markers", "name": name, "showlegend": False,
                "x": ok[xcol].round(4).tolist(), "y": ok["ms"].round(6).tolist(),
                "marker": {"color": [color_of(dict(colors), j) for j in ok["job"]], "size": 4,
                           "opacity": 0.35},
                "customdata": ok["pos"].astype(int).tolist(),
                "hovertemplate": "record %{customdata}<br>%{y:.4g} ms<extra></extra>",
                **_axes(axes),
            })  # fmt: skip
    err = best[best["is_error"]]
    err_y = _error_y(best)[best["is_error"]]
    errors = (len(traces), len(traces) + 1)
    for axes, xcol, name in (
        ("1", "n", "failed candidates"),
        ("2", "t", "failed candidates vs time"),
    ):
        traces.append({
            "type": "scatter", "mode": "markers", "name": name,
            "showlegend": axes == "1" and len(err) > 0,
            "x": err[xcol].round(4).tolist(), "y": err_y.round(6).tolist(),
            "marker": {"symbol": "x-thin", "size": 9, "color": ERROR_COLOR,
                       "line": {"width": 2, "color": ERROR_COLOR}},
            "customdata": err["pos"].astype(int).tolist(),
            "hovertemplate": "record %{customdata}: failed<extra></extra>",
            **_axes(axes),
        })  # fmt: skip
    meta = ConvergenceMeta(series=series, points=points, errors=errors, downsampled=downsampled)
    y_type = "log" if log_y else "linear"
    ticks = _log_ticks(best["best_ms"], log_y)
    layout = two_panel_layout("best latency so far (ms)", y_type, ticks, uirevision="convergence")
    # Thousands of points: plotly.py's per-item validation would cost more than the drawing.
    return go.Figure(data=traces, layout=layout, _validate=False), meta


def _axes(which: str) -> dict[str, str]:
    return {} if which == "1" else {"xaxis": "x2", "yaxis": "y2"}


def _series_meta(job: str, task: str, left: int, df: pd.DataFrame) -> SeriesMeta:
    last = df.iloc[-1]
    return SeriesMeta(
        job=job,
        task=task,
        left=left,
        right=left + 1,
        n=int(last["n"]),
        best=None if np.isnan(last["best_ms"]) else float(last["best_ms"]),
        best_pos=None if np.isnan(last["best_pos"]) else int(last["best_pos"]),
    )


def _log_ticks(values: pd.Series, log_y: bool) -> dict[str, Any]:
    """Label only 1, 2 and 5 of each decade when a log axis spans more than one decade."""
    finite = values.to_numpy(dtype=float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if not log_y or len(finite) == 0 or finite.max() / finite.min() < 10:
        return {}
    return {"dtick": "D2"}


def _downsample_groups(df: pd.DataFrame, column: str, max_points: int) -> np.ndarray:
    """Row numbers to keep when downsampling each (job, task) group of ``df`` separately."""
    keep: list[np.ndarray] = []
    offsets = np.arange(len(df))
    for _, idx in df.groupby(["job", "task"], sort=False).indices.items():
        values = df[column].to_numpy(dtype=float)[idx]
        keep.append(offsets[idx][minmax_downsample(values, max_points)])
    return np.sort(np.concatenate(keep)) if keep else np.arange(0)


def end_to_end(
    records: pd.DataFrame, tasks: pd.DataFrame, job_t0: Mapping[str, float]
) -> pd.DataFrame:
    """Weighted end-to-end estimate per job after each of its records.

    estimate = sum over the job's tunable tasks of weight x best latency so far; defined once
    every such task has a valid measurement. Tasks without a task event count with weight 1.
    Columns: ``job, n, t, estimate_ms, pos``.
    """
    columns = ["job", "n", "t", "estimate_ms", "pos"]
    if records.empty:
        return pd.DataFrame({c: [] for c in columns})
    out = []
    for job, df in records.sort_values("pos", kind="stable").groupby("job", sort=False):
        weights = _task_weights(tasks, job, df["task"].unique())
        if not weights:
            continue
        ms = df["mean_secs"].astype(float) * 1000.0
        wide = pd.DataFrame({t: ms.where(df["task"] == t) for t in weights}).cummin().ffill()
        complete = wide.notna().all(axis=1)
        estimate = (wide * pd.Series(weights)).sum(axis=1).where(complete)
        t0 = job_t0.get(job, float(df["ts"].min()))
        out.append(
            pd.DataFrame(
                {
                    "job": job,
                    "n": np.arange(1, len(df) + 1),
                    "t": df["ts"].to_numpy(dtype=float) - t0,
                    "estimate_ms": estimate.to_numpy(),
                    "pos": df["pos"].to_numpy(),
                }
            )
        )
    if not out:
        return pd.DataFrame({c: [] for c in columns})
    return pd.concat(out, ignore_index=True)[columns]


def _task_weights(tasks: pd.DataFrame, job: str, seen: Sequence[str]) -> dict[str, float]:
    mine = tasks[tasks["job"] == job] if len(tasks) else tasks
    if len(mine) == 0:
        return dict.fromkeys(seen, 1.0)
    tunable = mine[mine["tunable"].astype(bool)]
    return {str(t): float(w) for t, w in zip(tunable["task"], tunable["weight"], strict=True)}


def end_to_end_figure(
    e2e: pd.DataFrame,
    colors: Mapping[str, str],
    job_labels: Mapping[str, str],
    *,
    log_y: bool = True,
    max_points: int = 2000,
) -> go.Figure:
    """Weighted end-to-end estimate per job vs the job's trials (left) and time (right)."""
    traces: list[dict[str, Any]] = []
    for job, df in e2e.groupby("job", sort=False):
        df = df[df["estimate_ms"].notna()]
        if df.empty:
            continue
        part = df.iloc[minmax_downsample(df["estimate_ms"].to_numpy(dtype=float), max_points)]
        name = job_labels.get(job, job)
        common = {
            "type": "scatter", "mode": "lines", "name": name, "legendgroup": job,
            "line": {"color": color_of(dict(colors), job), "width": 2, "shape": "hv"},
            "y": part["estimate_ms"].round(6).tolist(),
            "customdata": part["pos"].astype(int).tolist(),
            "hovertemplate": f"{name}<br>estimate %{{y:.4g}} ms<br>%{{x}}<extra></extra>",
        }  # fmt: skip
        traces.append({**common, "x": part["n"].tolist()})
        traces.append({**common, "x": part["t"].round(4).tolist(), "showlegend": False,
                       **_axes("2")})  # fmt: skip
    y_type = "log" if log_y else "linear"
    layout = two_panel_layout(
        "estimated end-to-end latency, Σ weight × best (ms)", y_type,
        _log_ticks(e2e["estimate_ms"], log_y), uirevision="e2e",
    )  # fmt: skip
    layout["xaxis"]["title"]["text"] = "trials measured by the job"
    return go.Figure(data=traces, layout=layout, _validate=False)
