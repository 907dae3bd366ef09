"""Convergence figures: running best, min/max downsampling, end-to-end estimate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dashboard.colors import job_colors
from dashboard.figures import convergence as cf


def records(rows: list[tuple]) -> pd.DataFrame:
    """Records as (job, task, ts, mean_secs or None)."""
    return pd.DataFrame(
        [
            {"pos": i, "job": j, "task": t, "ts": ts,
             "mean_secs": np.nan if secs is None else secs, "clock": "wall"}
            for i, (j, t, ts, secs) in enumerate(rows, start=1)
        ]
    )  # fmt: skip


def test_best_so_far_is_a_running_minimum_per_series_that_skips_errors() -> None:
    df = records([
        ("a", "t1", 10.0, None),
        ("a", "t1", 11.0, 0.004),
        ("a", "t2", 11.5, 0.010),
        ("a", "t1", 12.0, None),
        ("a", "t1", 13.0, 0.002),
        ("a", "t1", 14.0, 0.003),
    ])  # fmt: skip
    best = cf.best_so_far(df, {"a": 10.0})
    t1 = best[best["task"] == "t1"]
    assert t1["n"].tolist() == [1, 2, 3, 4, 5]
    assert t1["best_ms"].tolist()[1:] == pytest.approx([4.0, 4.0, 2.0, 2.0])
    assert math.isnan(t1["best_ms"].iloc[0])
    assert t1["best_pos"].tolist()[1:] == [2, 2, 5, 5]
    assert t1["is_error"].tolist() == [True, False, True, False, False]
    assert t1["t"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert best[best["task"] == "t2"]["n"].tolist() == [1]


@pytest.mark.parametrize("n", [10, 1000, 12345])
def test_minmax_downsample_keeps_every_bucket_extreme(n: int) -> None:
    rng = np.random.default_rng(n)
    y = rng.normal(size=n)
    y[rng.integers(0, n, 5)] = np.nan
    keep = cf.minmax_downsample(y, 200)
    assert keep[0] == 0 and keep[-1] == n - 1
    assert np.all(np.diff(keep) > 0)
    if n <= 200:
        assert len(keep) == n
        return
    assert len(keep) <= 202
    assert np.nanargmin(y) in keep and np.nanargmax(y) in keep
    buckets = (np.arange(n) * 100) // n
    for b in range(100):
        idx = np.flatnonzero(buckets == b)
        values = y[idx]
        if np.isnan(values).all():
            continue
        assert idx[np.nanargmin(values)] in keep and idx[np.nanargmax(values)] in keep


def test_convergence_figure_has_two_lines_per_series_and_a_meta_for_live_extension() -> None:
    df = records([
        ("a", "t1", 0.0, 0.004), ("a", "t1", 1.0, None), ("b", "t1", 0.5, 0.002),
        ("a", "t1", 2.0, 0.003),
    ])  # fmt: skip
    best = cf.best_so_far(df, {"a": 0.0, "b": 0.0})
    spec, meta = cf.convergence_figure_dict(best, job_colors(["a", "b"]), {}, show_points=True)
    data = spec["data"]
    # 2 series x (left, right) + points (left, right) + errors (left, right)
    assert len(data) == 8
    a = meta.series[cf.series_key("a", "t1")]
    assert (a.left, a.right, a.n, a.best, a.best_pos) == (0, 1, 3, 3.0, 4)
    assert meta.points == (4, 5) and meta.errors == (6, 7)
    assert list(data[a.left]["y"]) == [4.0, 4.0, 3.0]
    assert [list(c) for c in data[a.left]["customdata"]] == [[1, 1], [1, 2], [4, 4]]
    assert list(data[6]["customdata"]) == [2]  # the failed candidate
    assert list(data[4]["customdata"]) == [1, 3, 4]  # valid measurements
    assert spec["layout"]["yaxis"]["type"] == "log"
    assert "(ms)" in spec["layout"]["yaxis"]["title"]["text"]
    json_meta = meta.to_json()
    assert json_meta["series"][cf.series_key("b", "t1")]["best"] == 2.0


def test_convergence_series_longer_than_the_limit_are_downsampled() -> None:
    n = 5000
    secs = np.linspace(0.01, 0.001, n)
    df = records([("a", "t", float(i), float(s)) for i, s in enumerate(secs)])
    best = cf.best_so_far(df, {})
    spec, meta = cf.convergence_figure_dict(best, {"a": "#000"}, {}, max_points=100)
    assert len(spec["data"][0]["x"]) <= 102
    assert spec["data"][0]["y"][-1] == pytest.approx(1.0)  # the final best survives
    assert meta.series[cf.series_key("a", "t")].n == n


def test_end_to_end_estimate_weights_each_task_once_all_have_a_best() -> None:
    df = records([
        ("m", "conv", 0.0, 0.010),
        ("m", "dense", 1.0, None),
        ("m", "dense", 2.0, 0.004),
        ("m", "conv", 3.0, 0.008),
        ("m", "conv", 4.0, 0.009),
    ])  # fmt: skip
    tasks = pd.DataFrame(
        {"job": ["m", "m", "m"], "task": ["conv", "dense", "reshape"], "weight": [2.0, 3.0, 1.0],
         "tunable": [True, True, False]}
    )  # fmt: skip
    e2e = cf.end_to_end(df, tasks, {"m": 0.0})
    est = e2e["estimate_ms"].tolist()
    assert math.isnan(est[0]) and math.isnan(est[1])
    assert est[2:] == pytest.approx([2 * 10 + 3 * 4, 2 * 8 + 3 * 4, 2 * 8 + 3 * 4])
    assert e2e["n"].tolist() == [1, 2, 3, 4, 5]
    fig = cf.end_to_end_figure(e2e, {"m": "#123456"}, {"m": "model"})
    assert [t.name for t in fig.data] == ["model", "model"]
    assert list(fig.data[0].y) == pytest.approx([32.0, 28.0, 28.0])


def test_end_to_end_without_task_events_weighs_seen_tasks_equally() -> None:
    df = records([("m", "a", 0.0, 0.001), ("m", "b", 1.0, 0.002)])
    e2e = cf.end_to_end(df, pd.DataFrame(columns=["job", "task", "weight", "tunable"]), {})
    assert e2e["estimate_ms"].iloc[-1] == pytest.approx(3.0)
