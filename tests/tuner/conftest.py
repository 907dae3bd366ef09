"""Fixtures for the tuner tests (helpers to import live in ``scheduling_helpers``)."""

from __future__ import annotations

import pytest
from scheduling_helpers import make_sink

from collectors.sink import EventSink
from tuner.clock import SimClock


@pytest.fixture
def sim_clock() -> SimClock:
    """A fresh simulated clock at 0.0."""
    return SimClock()


@pytest.fixture
def sim_sink(sim_clock: SimClock) -> EventSink:
    """A sink on ``sim_clock`` writing to a MemoryStore, stamping ``clock: "sim"``."""
    return make_sink(sim_clock)
