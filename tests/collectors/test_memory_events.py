"""The ``memory`` kind added to v1, and the memory-plan JSON it carries."""

from __future__ import annotations

import json

import pytest

from collectors._base import BaseStore
from collectors.events import MemoryEvent, from_json
from collectors.memoryplan import MemoryPlan, MemoryPlanError, OrderProfile, TcmPlacement
from tests.collectors.storekit import EventFactory


def small_plan() -> MemoryPlan:
    return MemoryPlan(
        model="cnn",
        tensors={"a": 40, "b": 20, "c": 4},
        orders=(
            OrderProfile("TVM's order", ("n0", "n1", "n2"), (("a",), ("a", "b"), ("b", "c")), 64),
            OrderProfile("least peak", ("n0", "n1", "n2"), (("a",), ("a", "b"), ("b", "c"))),
        ),
        tcm=TcmPlacement(
            tcm_bytes=30,
            order="least peak",
            resident=((), ("b",), ("b", "c")),
            streamed=((0, "a"), (1, "a")),
            spills=((2, "c"),),
            dram_bytes=84,
            greedy_dram_bytes=84,
            compulsory_dram_bytes=84,
        ),
    )


def test_the_plan_json_round_trips() -> None:
    plan = small_plan()
    assert MemoryPlan.from_json(plan.to_json()) == plan
    assert MemoryPlan.from_json(plan.to_json()).order("least peak").planned_bytes is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("orders"), r"plan\.orders: missing field"),
        (lambda d: d.update(version=7), "plan.version: unknown version 7"),
        (lambda d: d["tensors"][0].update(bytes=-1), r"tensors\[0\]\.bytes: must not be neg"),
        (lambda d: d["orders"][0]["live"].pop(), r"orders\[0\]\.live: 2 steps for 3 kernels"),
        (lambda d: d["orders"][1].update(label="TVM's order"), "appears twice"),
        (lambda d: d["orders"][0]["live"][0].append("zz"), "unknown tensor 'zz'"),
        (lambda d: d["tcm"].update(order="other"), "tcm.order: no order labelled 'other'"),
        (lambda d: d["tcm"]["spills"].append([9, "a"]), r"tcm\.spills\[1\]: no step 9"),
        (lambda d: d["tcm"].update(dram_bytes="x"), r"tcm\.dram_bytes: expected int"),
    ],
)
def test_bad_plan_json_is_refused_naming_the_field(mutate: object, message: str) -> None:
    data = json.loads(small_plan().to_json())
    mutate(data)  # type: ignore[operator]
    with pytest.raises(MemoryPlanError, match=message):
        MemoryPlan.from_json(json.dumps(data))
    with pytest.raises(MemoryPlanError, match="plan: not valid JSON"):
        MemoryPlan.from_json("{nope")


def test_memory_events_are_stored_and_read_back_by_job(
    store: BaseStore, make: EventFactory
) -> None:
    text = small_plan().to_json()
    event = MemoryEvent(source=make.source, seq=100, ts=2.0, job="job-a", model="cnn", plan=text)
    other = MemoryEvent(source=make.source, seq=101, ts=3.0, job="job-b", model="cnn", plan=text)
    assert from_json(event.to_json()) == event
    store.append([make.job("submitted"), event, make.task("t"), other])
    assert store.memory_plans("job-a") == [event]
    assert store.memory_plans() == [event, other]
    assert [s.event.kind for s in store.read(kinds=["job", "task"])] == ["job", "task"]
    assert store.jobs()["job"].tolist() == ["job-a"]
    assert store.append([event]) == []
