"""Fixtures of the dashboard tests: sample stores, the app context built on them, and a
headless chromium (one per test module) with a fresh page per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from collectors.memory_store import MemoryStore
from dashboard.app import create_app, parts
from dashboard.context import AppContext
from tests.dashboard.browser import CHROMIUM, CHROMIUM_ARGS, Console
from tests.dashboard.synthetic import History, synthetic_history
from tuner.simulation import simulate


@pytest.fixture
def synthetic() -> tuple[MemoryStore, History]:
    """A store holding a synthetic wall-clock history of three jobs."""
    store = MemoryStore()
    return store, synthetic_history(store)


@pytest.fixture
def sample_store(synthetic: tuple[MemoryStore, History]) -> MemoryStore:
    """The synthetic history plus a small simulated run (sim clock) in one store."""
    store, _ = synthetic
    simulate(jobs=2, clients=1, devices=2, tasks=2, iterations=3, candidates=8, store=store,
             records=True)  # fmt: skip
    return store


@pytest.fixture
def ctx(sample_store: MemoryStore) -> AppContext:
    """The context of a read-only app on the sample store (no live push)."""
    return parts(create_app(sample_store, live=False)).context


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, Console]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    console = Console()
    console.attach(opened)
    yield opened, console
    context.close()
