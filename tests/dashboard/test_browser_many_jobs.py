"""Browser: a simulated store of many jobs opens with a short legend and a searchable job
filter; choosing a found job narrows the timeline to it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from collectors.memory_store import MemoryStore
from dashboard.app import create_app
from dashboard.shell import JOB_OPTIONS_LIMIT, LEGEND_LIMIT
from tests.dashboard.browser import served
from tuner.simulation import simulate

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_many_jobs_open_with_a_short_legend_and_a_searchable_filter(page) -> None:
    tab, console = page
    store = MemoryStore()
    jobs = JOB_OPTIONS_LIMIT + 50
    simulate(jobs=jobs, clients=16, devices=4, tasks=1, iterations=1, store=store)
    with served(create_app(store, live=False)) as running:
        tab.goto(running.url + "/")
        expect(tab.locator("#timeline-notice")).to_contain_text(f"{jobs * 4:,} stages")
        expect(tab.locator("#job-legend .tl-chip")).to_have_count(LEGEND_LIMIT)
        expect(tab.locator("#job-legend")).to_contain_text(f"and {jobs - LEGEND_LIMIT} more jobs")
        # The last job is not among the options at first; typing finds it.
        tab.click("#filter-jobs")
        tab.keyboard.type(f"sim-{jobs} ")
        option = tab.get_by_role("option", name=f"sim-{jobs} (")
        expect(option).to_have_count(1)
        option.click()
        expect(tab.locator("#timeline-notice")).to_contain_text("4 stages, each drawn exactly")
        expect(tab.locator("#job-legend .tl-chip")).to_have_count(1)
    assert console.errors == []
