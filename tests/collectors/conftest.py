"""Fixtures of the collectors tests: every store backend, and an event factory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import strategies as st

from collectors._base import BaseStore
from collectors.events import Event
from tests.collectors.storekit import BACKENDS, EventFactory, event_strategy, open_backend


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseStore]:
    """An empty store of each backend in turn: the one suite every backend must pass."""
    opened = open_backend(request.param, tmp_path / "store.db")
    yield opened
    opened.close()


@pytest.fixture
def make() -> EventFactory:
    """A factory of valid events from one source."""
    return EventFactory()


@pytest.fixture(scope="session")
def events_strategy() -> st.SearchStrategy[Event]:
    """``event_strategy()``, for tests that draw with ``st.data()``."""
    return event_strategy()
