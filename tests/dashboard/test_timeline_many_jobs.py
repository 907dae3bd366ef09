"""The timeline with many jobs and lanes: the raster is exact and stays small to draw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from collectors.memory_store import MemoryStore
from dashboard.app import create_app, parts
from dashboard.colors import PALETTE, job_colors
from dashboard.figures import timeline as tf
from dashboard.shell import LEGEND_LIMIT, legend
from tuner.simulation import simulate


def _stages(jobs: int, lanes: int, count: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 100, count)
    rows = {
        "pos": np.arange(1, count + 1),
        "source": "s",
        "clock": "wall",
        "job": [f"j{j:03d}" for j in rng.integers(0, jobs, count)],
        "task": "t",
        "iteration": 0,
        "stage": "profile",
        "resource": [f"device:x:{r}" for r in rng.integers(0, lanes, count)],
        "start": start,
        "end": start + rng.exponential(3.0, count),
        "status": "ok",
        "error": np.nan,
        "candidates": 1,
    }
    return tf.with_axis(pd.DataFrame(rows), t0_wall=0.0)


def test_occupancy_of_many_jobs_matches_a_brute_force_sum_and_top_job() -> None:
    stages = _stages(jobs=120, lanes=9, count=900, seed=4)
    lanes = tf.order_lanes(list(stages["lane"].unique()))
    window, bins = (5.0, 95.0), 23
    occ = tf.occupancy(stages, lanes, window, bins=bins)
    assert occ.busy.shape == occ.top_job.shape == (9, bins)
    for li, lane in enumerate(lanes):
        part = stages[stages["lane"] == lane]
        for b in range(bins):
            lo, hi = occ.edges[b], occ.edges[b + 1]
            overlap = np.clip(np.minimum(part["x1"], hi) - np.maximum(part["x0"], lo), 0, None)
            assert occ.busy[li, b] == pytest.approx(overlap.sum() / (hi - lo), abs=1e-9)
            per_job = overlap.groupby(part["job"]).sum()
            per_job = per_job[per_job > 0]
            if per_job.empty:
                assert occ.top_job[li, b] == -1
            else:
                best = per_job.max()
                holders = {occ.jobs.index(j) for j, v in per_job.items() if v >= best - 1e-9}
                assert occ.top_job[li, b] in holders


def test_the_colour_scale_has_a_segment_per_colour_not_per_job() -> None:
    stages = _stages(jobs=300, lanes=4, count=3000, seed=5)
    lanes = tf.order_lanes(list(stages["lane"].unique()))
    occ = tf.occupancy(stages, lanes, (0.0, 100.0), bins=50)
    colors = job_colors(sorted(stages["job"].unique()))
    fig = tf.occupancy_figure(occ, colors, {}, None)
    (trace,) = fig.data
    assert len(occ.jobs) == 300
    assert len(trace.colorscale) == 2 * len(PALETTE) and trace.zmax == len(PALETTE)
    z = np.asarray(trace.z, dtype=float)
    busy = np.clip(occ.busy, 0, 1)
    for li, b in zip(*np.nonzero(occ.top_job >= 0), strict=True):
        shade = PALETTE.index(colors[occ.jobs[occ.top_job[li, b]]])
        assert z[li, b] == pytest.approx(shade + busy[li, b] * 0.999, rel=1e-6)
        # The segment the value falls in is drawn in that job's colour.
        assert trace.colorscale[2 * shade + 1][1] == colors[occ.jobs[occ.top_job[li, b]]]


def test_the_legend_names_the_first_jobs_and_counts_the_rest() -> None:
    store = MemoryStore()
    simulate(jobs=LEGEND_LIMIT + 5, clients=2, devices=1, tasks=1, iterations=1, store=store)
    ctx = parts(create_app(store, live=False)).context
    chips = legend(ctx, [])
    assert len(chips) == LEGEND_LIMIT + 1
    assert chips[-1].children.startswith("and 5 more jobs")
    some = list(ctx.view.snapshot().colors)[:3]
    assert len(legend(ctx, some)) == 3  # the chosen ones only, none left out


def test_the_job_filter_holds_the_chosen_and_the_first_jobs_and_searches_the_rest() -> None:
    from dashboard.shell import job_options

    store = MemoryStore()
    simulate(jobs=30, clients=2, devices=1, tasks=1, iterations=1, store=store)
    ctx = parts(create_app(store, live=False)).context
    jobs = list(ctx.view.snapshot().colors)
    assert [o["value"] for o in job_options(ctx)] == jobs  # few jobs: all of them
    options = job_options(ctx, chosen=[jobs[-1]], limit=10)
    assert [o["value"] for o in options[:11]] == [jobs[-1], *jobs[:10]]
    assert options[-1] == {"label": "19 more: type to search", "value": "", "disabled": True}
    found = job_options(ctx, search="SIM-27", limit=10)
    assert [o["value"] for o in found] == [j for j in jobs if j.startswith("j27-")]
    assert found[0]["label"].startswith("sim-27 ")
