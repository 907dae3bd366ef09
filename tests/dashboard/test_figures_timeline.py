"""Timeline figures: data steps and traces on small frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard.colors import ERROR_COLOR, PALETTE, job_colors
from dashboard.figures import timeline as tf


def frame(rows: list[tuple]) -> pd.DataFrame:
    """Stages as (job, task, iteration, stage, resource, start, end[, status])."""
    out = []
    for pos, row in enumerate(rows, start=1):
        job, task, it, stage, resource, start, end, *rest = row
        out.append({
            "pos": pos, "source": "s", "clock": "wall", "job": job, "task": task,
            "iteration": it, "stage": stage, "resource": resource, "start": start, "end": end,
            "status": rest[0] if rest else "ok", "error": np.nan, "candidates": 4,
        })  # fmt: skip
    return tf.with_axis(pd.DataFrame(out), t0_wall=100.0)


def test_lanes_are_ordered_clients_first_then_devices_by_number() -> None:
    lanes = [
        "device:llvm:10",
        "device:llvm:2",
        "client:0",
        "device:rpc:cpu:0 · sim abc",
        "client:1",
    ]
    assert tf.order_lanes(lanes) == [
        "client:0", "client:1", "device:llvm:2", "device:llvm:10", "device:rpc:cpu:0 · sim abc",
    ]  # fmt: skip


def test_with_axis_shifts_wall_time_and_keeps_sim_time() -> None:
    stages = frame([("a", "t", 0, "build", "client:0", 105.0, 107.0)])
    assert stages[["x0", "x1"]].iloc[0].tolist() == [5.0, 7.0]
    sim = stages.assign(clock="sim", source="run-123456789")
    sim = tf.with_axis(sim.drop(columns=["lane", "x0", "x1"]), t0_wall=100.0)
    assert sim[["x0", "x1"]].iloc[0].tolist() == [105.0, 107.0]
    assert sim["lane"].iloc[0] == "client:0 · sim 456789"


def test_filter_keeps_jobs_tasks_and_overlapping_stages() -> None:
    stages = frame([
        ("a", "t1", 0, "select", "client:0", 100.0, 101.0),
        ("a", "t2", 0, "select", "client:0", 101.0, 103.0),
        ("b", "t1", 0, "profile", "device:llvm:0", 102.0, 110.0),
    ])  # fmt: skip
    assert list(tf.filter_stages(stages, jobs=["a"])["pos"]) == [1, 2]
    assert list(tf.filter_stages(stages, tasks=["t1"])["pos"]) == [1, 3]
    # window [2.5, 4]: stage 2 ends at 3 and stage 3 spans it; stage 1 ends at 1.
    assert list(tf.filter_stages(stages, window=(2.5, 4.0))["pos"]) == [2, 3]


def test_gantt_has_one_bar_per_stage_coloured_by_job_with_kind_in_hover() -> None:
    stages = frame([
        ("a", "t1", 0, "select", "client:0", 100.0, 101.0),
        ("b", "t1", 3, "profile", "device:llvm:0", 100.5, 102.0, "error"),
    ])  # fmt: skip
    colors = job_colors(["a", "b"])
    bars = tf.bar_data(stages, colors, {"a": "A job"})
    fig = tf.gantt_figure(bars, tf.order_lanes(stages["lane"]))
    (trace,) = fig.data
    assert trace.type == "bar" and trace.orientation == "h"
    assert list(trace.base) == [0.0, 0.5] and list(trace.x) == [1.0, 1.5]
    assert list(trace.marker.color) == [PALETTE[0], PALETTE[1]]
    assert list(trace.marker.line.color)[1] == ERROR_COLOR
    assert list(trace.customdata) == [1, 2]
    assert "A job" in trace.hovertext[0] and "<b>select</b>" in trace.hovertext[0]
    assert "iteration 3" in trace.hovertext[1] and "error" in trace.hovertext[1]
    assert "(s)" in fig.layout.xaxis.title.text


def test_occupancy_bins_intervals_exactly() -> None:
    stages = frame([
        ("a", "t", 0, "build", "client:0", 100.0, 102.5),  # 0..2.5
        ("b", "t", 0, "build", "client:0", 103.25, 103.75),  # inside bin 3
        ("a", "t", 0, "profile", "device:llvm:0", 100.5, 101.0),
    ])  # fmt: skip
    lanes = ["client:0", "device:llvm:0"]
    occ = tf.occupancy(stages, lanes, (0.0, 4.0), bins=4)
    np.testing.assert_allclose(occ.busy[0], [1.0, 1.0, 0.5, 0.5])
    np.testing.assert_allclose(occ.busy[1], [0.5, 0.0, 0.0, 0.0])
    # Integral of busy over bins equals the total stage time inside the window.
    assert occ.busy.sum() * 1.0 == pytest.approx(2.5 + 0.5 + 0.5)
    assert occ.jobs == ["a", "b"]
    assert occ.top_job[0].tolist() == [0, 0, 0, 1] and occ.top_job[1].tolist() == [0, -1, -1, -1]


def test_occupancy_clips_to_the_window_and_matches_a_brute_force_sum() -> None:
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(300):
        s = float(rng.uniform(90, 200))
        rows.append(
            ("a", "t", 0, "build", f"client:{rng.integers(0, 3)}", s, s + rng.uniform(0, 9))
        )
    stages = frame(rows)
    lanes = ["client:0", "client:1", "client:2"]
    window = (10.0, 60.0)
    occ = tf.occupancy(stages, lanes, window, bins=37)
    edges = occ.edges
    for li, lane in enumerate(lanes):
        part = stages[stages["lane"] == lane]
        for b in range(37):
            lo, hi = edges[b], edges[b + 1]
            overlap = np.clip(np.minimum(part["x1"], hi) - np.maximum(part["x0"], lo), 0, None)
            assert occ.busy[li, b] == pytest.approx(overlap.sum() / (hi - lo), abs=1e-9)


def test_occupancy_figure_colours_each_bin_by_the_job_holding_it_most() -> None:
    stages = frame([
        ("a", "t", 0, "build", "client:0", 100.0, 102.0),
        ("b", "t", 0, "build", "client:0", 102.0, 102.5),
        ("a", "t", 0, "profile", "device:llvm:0", 100.0, 100.5),
    ])  # fmt: skip
    occ = tf.occupancy(stages, ["client:0", "device:llvm:0"], (0.0, 4.0), bins=4)
    colors = job_colors(["a", "b"])
    fig = tf.occupancy_figure(occ, colors, {"a": "job A", "b": "job B"}, None)
    (trace,) = fig.data
    assert trace.type == "heatmap" and (trace.zmin, trace.zmax) == (0, 2)
    # Job a's segment of the colour scale is [0, 1), job b's [1, 2): index + busy fraction.
    z = np.asarray(trace.z, dtype=float)
    np.testing.assert_allclose(z[0, :3], [0.999, 0.999, 1 + 0.5 * 0.999], rtol=1e-6)
    assert np.isnan(z[0, 3]) and np.isnan(z[1, 1])  # idle bins stay blank
    np.testing.assert_allclose(np.asarray(trace.customdata)[1, 0], 50.0)
    assert trace.colorscale[1][1] == colors["a"] and trace.colorscale[-1][1] == colors["b"]
    assert trace.colorscale[-1][0] == 1.0


def test_utilization_counts_overlapping_stages_once() -> None:
    stages = frame([
        ("a", "t", 0, "profile", "device:llvm:0", 100.0, 104.0),
        ("b", "t", 0, "profile", "device:llvm:0", 102.0, 106.0),  # overlaps: union 100..106
        ("a", "t", 0, "build", "client:0", 100.0, 101.0),
        ("a", "t", 0, "build", "client:0", 109.0, 110.0),
    ])  # fmt: skip
    util = tf.utilization(stages, ["client:0", "device:llvm:0"], (0.0, 10.0))
    rows = util.set_index("lane")
    assert rows.loc["device:llvm:0", "busy_s"] == pytest.approx(6.0)
    assert rows.loc["device:llvm:0", "idle_s"] == pytest.approx(4.0)
    assert rows.loc["client:0", "utilization"] == pytest.approx(0.2)
    # Without a window: the span of the stages (0..10).
    assert tf.utilization(stages, ["client:0"], None)["idle_s"].iloc[0] == pytest.approx(8.0)
    fig = tf.utilization_figure(util)
    assert list(fig.data[0].x) == [20.0, 60.0]
    assert "idle 4.00 s" in fig.data[0].text[1]


def test_utilization_of_a_window_clips_stages() -> None:
    stages = frame([("a", "t", 0, "profile", "device:llvm:0", 100.0, 110.0)])
    util = tf.utilization(stages, ["device:llvm:0"], (5.0, 15.0))
    assert util["busy_s"].iloc[0] == pytest.approx(5.0)
    assert util["utilization"].iloc[0] == pytest.approx(0.5)


def test_a_node_core_lane_sorts_with_the_clients() -> None:
    lanes = ["device:llvm:0", "client:ab12cd34:1", "client:0", "client:ab12cd34:0"]
    assert tf.order_lanes(lanes)[-1] == "device:llvm:0"


def test_a_lane_whose_resource_left_ends_in_a_marker_at_that_time() -> None:
    stages = frame([("a", "t", 0, "build", "client:ab12cd34:0", 105.0, 107.0),
                    ("a", "t", 0, "build", "client:0", 108.0, 110.0)])  # fmt: skip
    lanes = tf.order_lanes(list(stages["lane"]))
    departures = [
        ("client:ab12cd34:0", 108.5, "node ab12cd34 left"),
        ("client:gone:0", 109.0, "never drew a stage"),
    ]
    ends = tf.lane_ends(departures, 100.0, lanes)
    assert (ends.lane, ends.x, ends.text) == (["client:ab12cd34:0"], [8.5], ["node ab12cd34 left"])
    bars = tf.bar_data(stages, job_colors(["a"]), {"a": "a"})
    figure = tf.gantt_figure(bars, lanes, None, ends)
    marker = figure.data[1]
    assert list(marker.y) == ["client:ab12cd34:0"] and list(marker.x) == [8.5]
    assert "left" in marker.hovertext[0]
    assert len(tf.gantt_figure(bars, lanes).data) == 1  # no departures: the stages alone
