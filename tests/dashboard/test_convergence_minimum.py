"""The Convergence page draws every series' minimum, and its step lines stay exact when long
series are drawn from fewer points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.events import JobEvent, RecordEvent
from collectors.sqlite_store import SQLiteStore
from dashboard.data import StoreView
from dashboard.figures import convergence as cf
from dashboard.pages.convergence import convergence_view


def _lines(figure: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The left-panel best-so-far line of each (job, task) series."""
    return {
        tuple(t["legendgroup"].split(cf.SERIES_SEP)): t
        for t in figure["data"]
        if t.get("mode") == "lines" and t.get("xaxis") in (None, "x")
    }


def _drawn_at(line: dict[str, Any], n: np.ndarray) -> np.ndarray:
    """The value a step line ("hv") shows at each trial number ``n``."""
    x = np.asarray(line["x"], dtype=float)
    y = np.array([np.nan if v is None else v for v in line["y"]], dtype=float)
    at = np.searchsorted(x, n, side="right") - 1
    return np.where(at >= 0, y[np.clip(at, 0, None)], np.nan)


def _rounded(values: np.ndarray) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in cf._rounded(values)], dtype=float)


def _check_series(records: pd.DataFrame, figure: dict[str, Any], *, exact: bool) -> int:
    """Assert each series' minimum is drawn and points at its record; with ``exact``, that
    the drawn line equals the running best at every trial. Returns the series checked."""
    lines = _lines(figure)
    checked = 0
    for (job, task), rows in records.groupby(["job", "task"], sort=False):
        line = lines[(job, task)]
        ms = rows["mean_secs"].to_numpy(dtype=float) * 1000.0
        if np.isnan(ms).all():
            continue
        best = int(np.nanargmin(ms))
        drawn = [v for v in line["y"] if v is not None]
        assert min(drawn) == cf.rounded_value(ms[best]), (job, task)
        holders = {c[0] for c in line["customdata"]}
        assert int(rows["pos"].iloc[best]) in holders, (job, task)
        if exact:
            running = pd.Series(ms).cummin().ffill().to_numpy()
            n = np.arange(1, len(ms) + 1)
            np.testing.assert_array_equal(_drawn_at(line, n), _rounded(running))
        checked += 1
    return checked


def test_a_large_store_draws_every_series_minimum(tmp_path: Path) -> None:
    """40 series of 2,500 records (past each series' share of the figure), 1 in 10 failed."""
    rng = np.random.default_rng(3)
    series, per_series = 40, 2_500
    events: list[Any] = [JobEvent(source="s", seq=0, ts=0.0, job="j", change="submitted")]
    for i in range(per_series):
        for k in range(series):
            failed = rng.random() < 0.1
            secs = float(rng.lognormal(-7.0, 0.4))
            events.append(RecordEvent(
                source="s", seq=len(events), ts=float(i), job=f"j{k % 4}", task=f"t{k}",
                candidate=i, run_secs=None if failed else (secs,),
                error="BUILD_TIMEOUT" if failed else None,
                error_class="timeout" if failed else None,
            ))  # fmt: skip
    with SQLiteStore(tmp_path / "big.db") as store:
        for at in range(0, len(events), 20_000):
            store.append(events[at : at + 20_000])
        snap = StoreView(store).snapshot()
        view = convergence_view(snap, [], [], None)
        records = store.records()
    assert len(records) == series * per_series
    assert "drawn from fewer points" in view.notice  # the view says it aggregates
    lines = _lines(view.figure)
    assert max(len(t["x"]) for t in lines.values()) < per_series
    assert _check_series(records, view.figure, exact=True) == series


_SERIES = st.lists(
    st.lists(st.none() | st.floats(1e-6, 1e-2), min_size=1, max_size=1_500),
    min_size=1,
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(series=_SERIES, max_points=st.integers(4, 300), show_points=st.booleans())
def test_downsampled_lines_keep_the_running_minimum(
    series: list[list[float | None]], max_points: int, show_points: bool
) -> None:
    rows = []
    for k, values in enumerate(series):
        for i, secs in enumerate(values):
            rows.append({"job": "j", "task": f"t{k}", "ts": float(i), "mean_secs": secs})
    rng = np.random.default_rng(len(rows))
    records = pd.DataFrame(rows).iloc[rng.permutation(len(rows))].reset_index(drop=True)
    records = records.sort_values(["task", "ts"], kind="stable").reset_index(drop=True)
    records["pos"] = rng.permutation(len(records)) + 1  # interleave the series
    records = records.sort_values("pos").reset_index(drop=True)
    records["mean_secs"] = records["mean_secs"].astype(float)
    best = cf.best_so_far(records, {})
    figure, meta = cf.convergence_figure_dict(
        best, {"j": "#123456"}, {}, show_points=show_points, max_points=max_points
    )
    for (job, task), part in records.groupby(["job", "task"], sort=False):
        ms = part["mean_secs"].to_numpy(dtype=float) * 1000.0
        cap = cf._budget(cf.LINE_BUDGET, len(series), max_points, 200)
        steps = cf.step_points(pd.Series(ms).cummin().ffill().to_numpy())
        if np.isnan(ms).all():
            continue
        assert meta.series[cf.series_key(job, task)].best == float(np.nanmin(ms))
        exact = len(steps) <= cap
        assert _check_series(part, figure, exact=exact) == 1
    if show_points:
        (left, _) = meta.points
        drawn = set(figure["data"][left]["customdata"])
        for _, part in records.groupby("task"):
            valid = part[part["mean_secs"].notna()]
            if len(valid):
                assert int(valid.loc[valid["mean_secs"].idxmin(), "pos"]) in drawn
