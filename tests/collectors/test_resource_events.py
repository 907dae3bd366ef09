"""Resource events (a cluster node's cores joining and leaving) in every store."""

from __future__ import annotations

import pytest

from collectors._base import BaseStore
from collectors.events import EventError, ResourceEvent, StageEvent

STAGE = dict(source="s", clock="wall", job="j1", task="t", iteration=0, stage="build")


@pytest.fixture(params=["memory_store", "sqlite_store"])
def store(request: pytest.FixtureRequest) -> BaseStore:
    return request.getfixturevalue(request.param)


def test_resource_events_are_stored_and_read_by_kind(store: BaseStore) -> None:
    left = ResourceEvent(
        source="s", seq=1, ts=20.0, job="", resource="client:ab12cd34:0", presence="left",
        detail="Ray node ab12cd34 (h) left: it left the Ray cluster",
    )  # fmt: skip
    stage = StageEvent(seq=0, ts=10.0, resource="client:ab12cd34:0", start=5.0, end=9.0, **STAGE)
    store.append([stage, left])
    assert [s.event for s in store.read(kinds=["resource"])] == [left]
    assert [s.event for s in store.read(kinds=["stage"])] == [stage]  # readers of v1 kinds


def test_presence_is_joined_or_left() -> None:
    with pytest.raises(EventError, match="presence"):
        ResourceEvent(source="s", seq=0, ts=1.0, job="", resource="client:0", presence="gone")


def test_a_resource_event_round_trips_through_json_and_drops_no_field() -> None:
    from collectors.events import from_json

    event = ResourceEvent(
        source="s", seq=3, ts=1.5, job="", resource="client:ab12cd34:1", presence="joined",
        detail="Ray node ab12cd34 (h)",
    )  # fmt: skip
    assert from_json(event.to_json()) == event
    assert '"kind":"resource"' in event.to_json()
