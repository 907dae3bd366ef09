"""Convergence figures: best latency so far per task and the weighted end-to-end estimate.

The data steps take ``BaseStore.records`` (``RECORD_COLUMNS``) rows in position order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from collectors.reuse import SIBLING_TEXT
from collectors.reuse import UNTUNED as UNTUNED_TEXT
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

    Columns: ``pos, job, task, series`` (an integer per (job, task), in order of first
    appearance), ``n`` (1-based trial number in the series), ``t`` (seconds since the job
    started), ``ms`` (measured mean, NaN for errors), ``best_ms`` (NaN until the first valid
    measurement), ``best_pos`` (record holding the best), ``is_error``.
    """
    columns = ["pos", "job", "task", "series", "n", "t", "ms", "best_ms", "best_pos", "is_error"]
    if records.empty:
        return pd.DataFrame({c: [] for c in columns})
    df = records[["pos", "job", "task", "ts", "mean_secs"]]
    if not df["pos"].is_monotonic_increasing:
        df = df.sort_values("pos", kind="stable")
    df = df.reset_index(drop=True)
    sid = series_ids(df)  # one factorization; every later grouping is by integer id
    pos = df["pos"].to_numpy()
    ms = df["mean_secs"].to_numpy(dtype=float) * 1000.0
    n = pd.Series(sid).groupby(sid, sort=False).cumcount().to_numpy() + 1
    # cummin skips NaN but leaves NaN rows as NaN: carry the running best over errors.
    best = pd.Series(ms).groupby(sid, sort=False).cummin().groupby(sid, sort=False).ffill()
    best_ms = best.to_numpy()
    is_best = ~np.isnan(ms) & (ms == best_ms)
    best_pos = pd.Series(np.where(is_best, pos, np.nan)).groupby(sid, sort=False).ffill().to_numpy()
    ts = df["ts"].to_numpy(dtype=float)
    # The start of each series' job (from few series, not from every row's job name).
    first = np.unique(sid, return_index=True)[1]
    jobs = df["job"].to_numpy()[first]
    t0 = np.array([job_t0.get(j, np.nan) for j in jobs], dtype=float)[sid]
    missing = np.isnan(t0)
    if missing.any():
        first_ts = pd.Series(ts).groupby(sid, sort=False).transform("min").to_numpy()
        t0 = np.where(missing, first_ts, t0)
    return pd.DataFrame({
        "pos": pos, "job": df["job"], "task": df["task"], "series": sid, "n": n, "t": ts - t0,
        "ms": ms, "best_ms": best_ms, "best_pos": best_pos, "is_error": np.isnan(ms),
    })[columns]  # fmt: skip


def series_ids(df: pd.DataFrame) -> np.ndarray:
    """An integer per row naming its (job, task) series, numbered in order of appearance."""
    # Each name once, then the (job, task) pairs as integers: faster than grouping by text.
    jobs = pd.factorize(df["job"], sort=False)[0].astype(np.int64) + 1  # 0: a missing name
    tasks = pd.factorize(df["task"], sort=False)[0].astype(np.int64) + 1
    return pd.factorize(jobs * (int(tasks.max(initial=0)) + 1) + tasks, sort=False)[0]


def step_points(best: np.ndarray) -> np.ndarray:
    """Indices where a running best changes (from NaN to a value, or to a lower value), with
    the first and last: drawn as a step line ("hv"), they give exactly the full line."""
    n = len(best)
    if n == 0:
        return np.arange(0)
    prev = np.r_[np.nan, best[:-1]]
    changed = ~np.isnan(best) & (np.isnan(prev) | (best != prev))
    changed[0] = changed[-1] = True
    return np.flatnonzero(changed)


def line_points(best: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of a running-best series to draw: all of them when they fit, else its step
    points (exact), and when even those do not fit, the step points' bucket extremes."""
    if len(best) <= max_points:
        return np.arange(len(best))
    steps = step_points(best)
    if len(steps) <= max_points:
        return steps
    return steps[minmax_downsample(best[steps], max_points)]


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


def _error_y(best: pd.DataFrame, series: list[tuple[str, str, np.ndarray]]) -> np.ndarray:
    """Errors sit on the series' best line, or at its worst measurement before any best."""
    y = best["best_ms"].to_numpy(dtype=float).copy()
    ms = best["ms"].to_numpy(dtype=float)
    for _, _, rows in series:
        values = ms[rows]
        top = np.nanmax(values) if np.isfinite(values).any() else 1.0
        part = y[rows]
        y[rows] = np.where(np.isnan(part), top, part)
    return y


LINE_BUDGET = 60_000  # points of all best-so-far lines of a figure together
POINT_BUDGET = 20_000  # measurement points of a figure together
ERROR_BUDGET = 5_000  # failed-candidate crosses of a figure together


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


def convergence_figure_dict(
    best: pd.DataFrame,
    colors: Mapping[str, str],
    job_labels: Mapping[str, str],
    *,
    show_points: bool = True,
    log_y: bool = True,
    max_points: int = 2000,
    reused: Mapping[int, str] | None = None,
) -> tuple[dict[str, Any], ConvergenceMeta]:
    """Best latency so far per (job, task) vs trials (left) and vs time (right), as the
    figure's plain ``{"data", "layout"}`` (what the browser receives: a ``go.Figure`` would
    copy every point twice on its way there).

    A series longer than its share of the figure's points is drawn by its step points (where
    the best improves: exact for a step line), and only when even those do not fit by their
    bucket extremes; its last step, the series' best, is always drawn. Measurements are faint
    points (per series, each bucket's minimum and maximum are kept), failed candidates red
    crosses (evenly thinned when too many). Records whose schedule came from a library
    (``reused``: record position -> ``reused from ...`` or ``untuned``) are stars (squares for
    the untuned fallback) drawn after every other trace, their origin in the hover. Returns
    the figure and the live-extension meta.
    """
    series = _split_series(best)
    line_cap = _budget(LINE_BUDGET, len(series), max_points, 200)
    traces: list[dict[str, Any]] = []
    metas: dict[str, SeriesMeta] = {}
    task_rank: dict[str, dict[str, int]] = {}
    downsampled = False
    columns = {c: best[c].to_numpy() for c in ("n", "t", "ms", "best_ms", "best_pos", "pos")}
    for job, task, rows in series:
        ranks = task_rank.setdefault(job, {})
        dash = DASHES[ranks.setdefault(task, len(ranks)) % len(DASHES)]
        best_ms = columns["best_ms"][rows]
        keep = rows[line_points(best_ms, line_cap)]
        downsampled |= len(keep) < len(rows)
        name = f"{job_labels.get(job, job)} · {task}"
        y = _rounded(columns["best_ms"][keep])
        common: dict[str, Any] = {
            "type": "scatter", "mode": "lines", "name": name,
            "line": {"color": color_of(dict(colors), job), "dash": dash, "width": 2,
                     "shape": "hv"},
            "legendgroup": series_key(job, task),
            # [record holding the best, record measured at this step]
            "customdata": [
                [None if b != b else int(b), int(p)]
                for b, p in zip(columns["best_pos"][keep].tolist(),
                                columns["pos"][keep].tolist(), strict=True)
            ],
            "hovertemplate": f"{name}<br>best %{{y:.4g}} ms (record %{{customdata[0]}})"
            "<br>%{x}<extra></extra>",
        }  # fmt: skip
        metas[series_key(job, task)] = _series_meta(job, task, len(traces), rows, columns)
        traces.append({**common, "x": columns["n"][keep].tolist(), "y": y})
        traces.append({**common, "x": _rounded(columns["t"][keep], 4), "y": y,
                       "xaxis": "x2", "yaxis": "y2", "showlegend": False})  # fmt: skip
    is_error = best["is_error"].to_numpy(dtype=bool)
    points = None
    if show_points:
        cap = _budget(POINT_BUDGET, len(series), max_points, 50)
        keep = _thin(series, ~is_error, lambda rows: minmax_downsample(columns["ms"][rows], cap))
        downsampled |= len(keep) < int((~is_error).sum())
        jobs = best["job"].to_numpy()[keep]
        points = (len(traces), len(traces) + 1)
        for axes, xcol, name in (("1", "n", "measurements"), ("2", "t", "measurements vs time")):
            traces.append({
                "type": "scatter", "mode": "markers", "name": name, "showlegend": False,
                "x": _rounded(columns[xcol][keep], 4), "y": _rounded(columns["ms"][keep]),
                "marker": {"color": [color_of(dict(colors), j) for j in jobs], "size": 4,
                           "opacity": 0.35},
                "customdata": columns["pos"][keep].astype(int).tolist(),
                "hovertemplate": "record %{customdata}<br>%{y:.4g} ms<extra></extra>",
                **_axes(axes),
            })  # fmt: skip
    error_cap = _budget(ERROR_BUDGET, len(series), max_points, 50)
    keep = _thin(series, is_error, lambda rows: _evenly(len(rows), error_cap))
    downsampled |= len(keep) < int(is_error.sum())
    err_y = _error_y(best, series)[keep]
    errors = (len(traces), len(traces) + 1)
    for axes, xcol, name in (
        ("1", "n", "failed candidates"),
        ("2", "t", "failed candidates vs time"),
    ):
        traces.append({
            "type": "scatter", "mode": "markers", "name": name,
            "showlegend": axes == "1" and len(keep) > 0,
            "x": _rounded(columns[xcol][keep], 4), "y": _rounded(err_y),
            "marker": {"symbol": "x-thin", "size": 9, "color": ERROR_COLOR,
                       "line": {"width": 2, "color": ERROR_COLOR}},
            "customdata": columns["pos"][keep].astype(int).tolist(),
            "hovertemplate": "record %{customdata}: failed<extra></extra>",
            **_axes(axes),
        })  # fmt: skip
    if reused:
        wanted = np.isin(columns["pos"], np.fromiter(reused, dtype=np.int64))
        keep = _thin(series, wanted, lambda rows: _evenly(len(rows), error_cap))
        downsampled |= len(keep) < int(wanted.sum())
        y = np.where(is_error[keep], _error_y(best, series)[keep], columns["ms"][keep])
        traces.extend(_reused_traces(
            keep, columns, y, is_error[keep], reused, best["job"].to_numpy(), colors
        ))  # fmt: skip
    meta = ConvergenceMeta(series=metas, points=points, errors=errors, downsampled=downsampled)
    y_type = "log" if log_y else "linear"
    ticks = _log_ticks(best["best_ms"], log_y)
    layout = two_panel_layout("best latency so far (ms)", y_type, ticks, uirevision="convergence")
    return {"data": traces, "layout": layout}, meta


REUSED_NAME = "schedules from a library"
SIBLING_NAME = "schedules from sibling tasks"
REUSED_SYMBOL, UNTUNED_SYMBOL, SIBLING_SYMBOL = "star", "square-open", "diamond"


def _origin_groups(origins: Sequence[str]) -> list[tuple[str, str, np.ndarray, list[str]]]:
    """(legend name, legend group, which of ``origins``, those origins) of the records from
    a library (with the untuned fallback) and of those from sibling tasks; only the groups
    present."""
    sibling = np.array([o.startswith(SIBLING_TEXT) for o in origins], dtype=bool)
    groups = [(REUSED_NAME, "reused", ~sibling), (SIBLING_NAME, "siblings", sibling)]
    return [
        (name, group, mask, [o for o, m in zip(origins, mask.tolist(), strict=True) if m])
        for name, group, mask in groups
        if mask.any()
    ]


def _origin_symbol(origin: str) -> str:
    if origin == UNTUNED_TEXT:
        return UNTUNED_SYMBOL
    return SIBLING_SYMBOL if origin.startswith(SIBLING_TEXT) else REUSED_SYMBOL


def _origin_marker(
    origins: Sequence[str], jobs: Sequence[str], colors: Mapping[str, str]
) -> dict[str, Any]:
    """The markers of records by where their schedules came from, in their jobs' colours."""
    return {
        "symbol": [_origin_symbol(o) for o in origins],
        "size": 11,
        "color": [color_of(dict(colors), j) for j in jobs],
        "line": {"width": 1, "color": "#222"},
    }


def _reused_traces(
    keep: np.ndarray,
    columns: Mapping[str, np.ndarray],
    y: np.ndarray,
    failed: np.ndarray,
    reused: Mapping[int, str],
    jobs: np.ndarray,
    colors: Mapping[str, str],
) -> list[dict[str, Any]]:
    """The marker traces (trials, time) of the records reused from a library, and of those
    from sibling tasks."""
    origins = [reused.get(int(p), "") for p in columns["pos"][keep]]
    traces = []
    for name, group, mask, texts in _origin_groups(origins):
        rows = keep[mask]
        pos = columns["pos"][rows].astype(int).tolist()
        bad = failed[mask].tolist()
        text = [f"{o}: failed" if f else o for o, f in zip(texts, bad, strict=True)]
        marker = _origin_marker(texts, jobs[rows], colors)
        for axes, xcol in (("1", "n"), ("2", "t")):
            traces.append({
                "type": "scatter", "mode": "markers", "name": name,
                "showlegend": axes == "1", "legendgroup": group,
                "x": _rounded(columns[xcol][rows], 4), "y": _rounded(y[mask]),
                "marker": marker, "customdata": pos, "text": text,
                "hovertemplate": "record %{customdata}<br>%{y:.4g} ms<br>%{text}<extra></extra>",
                **_axes(axes),
            })  # fmt: skip
    return traces


def _split_series(best: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    """(job, task, row numbers in order) of each series, in order of first appearance."""
    if best.empty:
        return []
    sid = best["series"].to_numpy() if "series" in best else series_ids(best)
    order = np.argsort(sid, kind="stable")
    starts = np.flatnonzero(np.r_[True, sid[order][1:] != sid[order][:-1]])
    bounds = np.r_[starts, len(order)]
    jobs, tasks = best["job"].to_numpy(), best["task"].to_numpy()
    out = []
    for a, b in itertools.pairwise(bounds):
        rows = order[a:b]
        out.append((str(jobs[rows[0]]), str(tasks[rows[0]]), rows))
    return out


def _thin(
    series: list[tuple[str, str, np.ndarray]],
    wanted: np.ndarray,
    pick: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Row numbers of ``wanted`` rows that ``pick`` keeps, series by series, in row order."""
    kept = []
    for _, _, rows in series:
        rows = rows[wanted[rows]]
        if len(rows):
            kept.append(rows[pick(rows)])
    return np.sort(np.concatenate(kept)) if kept else np.arange(0)


def _evenly(n: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` evenly spaced indices of ``n``, the first and last included."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def rounded_value(value: float) -> float | None:
    """One latency as the figure draws it (six significant digits; None for NaN)."""
    return _rounded(np.array([value]))[0]


def _rounded(values: np.ndarray, digits: int | None = None) -> list[float | None]:
    """Values for the browser: six significant digits (or ``digits`` decimals), NaN -> None."""
    values = np.asarray(values, dtype=float)
    if digits is not None:
        out = np.round(values, digits)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            exponent = np.floor(np.log10(np.abs(values)))
        scale = 10.0 ** np.where(np.isfinite(exponent), 5 - exponent, 0)
        out = np.round(values * scale) / scale
    return [None if v != v else v for v in out.tolist()]


def _axes(which: str) -> dict[str, str]:
    return {} if which == "1" else {"xaxis": "x2", "yaxis": "y2"}


def _series_meta(
    job: str, task: str, left: int, rows: np.ndarray, columns: dict[str, np.ndarray]
) -> SeriesMeta:
    last = rows[-1]
    best, best_pos = float(columns["best_ms"][last]), float(columns["best_pos"][last])
    return SeriesMeta(
        job=job,
        task=task,
        left=left,
        right=left + 1,
        n=int(columns["n"][last]),
        best=None if np.isnan(best) else best,
        best_pos=None if np.isnan(best_pos) else int(best_pos),
    )


def _log_ticks(values: pd.Series, log_y: bool) -> dict[str, Any]:
    """Label only 1, 2 and 5 of each decade when a log axis spans more than one decade."""
    finite = values.to_numpy(dtype=float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if not log_y or len(finite) == 0 or finite.max() / finite.min() < 10:
        return {}
    return {"dtick": "D2"}


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
    reused: Mapping[int, str] | None = None,
) -> go.Figure:
    """Weighted end-to-end estimate per job vs the job's trials (left) and time (right).

    Estimates right after a record reused from a library (``reused``: record position ->
    origin) are marked with stars, the origin in the hover."""
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
    if reused:
        traces.extend(_reused_estimates(e2e, colors, reused, max_points))
    y_type = "log" if log_y else "linear"
    layout = two_panel_layout(
        "estimated end-to-end latency, Σ weight × best (ms)", y_type,
        _log_ticks(e2e["estimate_ms"], log_y), uirevision="e2e",
    )  # fmt: skip
    layout["xaxis"]["title"]["text"] = "trials measured by the job"
    return go.Figure(data=traces, layout=layout, _validate=False)


def _reused_estimates(
    e2e: pd.DataFrame, colors: Mapping[str, str], reused: Mapping[int, str], max_points: int
) -> list[dict[str, Any]]:
    """Markers (trials, time) on the estimates that follow a record reused from a library
    (stars) or from a sibling task (diamonds)."""
    marks = e2e[e2e["pos"].isin(list(reused)) & e2e["estimate_ms"].notna()]
    marks = marks.iloc[_evenly(len(marks), max_points)]
    if marks.empty:
        return []
    origins = [reused[int(p)] for p in marks["pos"]]
    traces = []
    for name, group, mask, texts in _origin_groups(origins):
        part = marks[mask]
        marker = _origin_marker(texts, part["job"], colors)
        common = {
            "type": "scatter", "mode": "markers", "name": name, "legendgroup": group,
            "y": part["estimate_ms"].round(6).tolist(), "marker": marker, "text": texts,
            "customdata": part["pos"].astype(int).tolist(),
            "hovertemplate": "estimate %{y:.4g} ms after record %{customdata}<br>%{text}"
                             "<extra></extra>",
        }  # fmt: skip
        traces.append({**common, "x": part["n"].tolist()})
        traces.append(
            {**common, "x": part["t"].round(4).tolist(), "showlegend": False, **_axes("2")}
        )
    return traces


def time_to_reach(e2e: pd.DataFrame) -> pd.DataFrame:
    """When each job's estimate first reached the latency every job reached: the highest of
    the jobs' final (lowest) estimates. Columns ``job, target_ms, n, t``, one row per job with
    a defined estimate, in order of first appearance. Pure."""
    columns = ["job", "target_ms", "n", "t"]
    defined = e2e[e2e["estimate_ms"].notna()]
    if defined.empty:
        return pd.DataFrame({c: [] for c in columns})
    target = float(defined.groupby("job", sort=False)["estimate_ms"].min().max())
    reached = defined[defined["estimate_ms"] <= target * (1 + 1e-9)]
    first = reached.groupby("job", sort=False).head(1)
    return pd.DataFrame({
        "job": first["job"].to_numpy(), "target_ms": target,
        "n": first["n"].astype(int).to_numpy(), "t": first["t"].astype(float).to_numpy(),
    })[columns]  # fmt: skip
