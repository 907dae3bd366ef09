"""The ``profile`` and ``graph`` kinds added to v1, and the model-graph JSON they carry."""

from __future__ import annotations

import json

import pytest

from collectors._base import BaseStore
from collectors.events import EventError, GraphEvent, ProfileEvent, from_json
from collectors.modelgraph import GraphError, KernelNode, ModelGraph
from tests.collectors.storekit import EventFactory


def profile(make: EventFactory, **kw: object) -> ProfileEvent:
    fields: dict[str, object] = dict(
        source=make.source, seq=next(make._seq), ts=1.0, job="job-a", model="cnn",
        variant="tuned", end_to_end_secs=1e-3, kernels=("fused_conv2d", "fused_dense"),
        tasks=("fused_conv2d", ""), calls=(2, 1), kernel_secs=(3e-4, 2e-4),
    )  # fmt: skip
    fields.update(kw)
    return ProfileEvent(**fields)  # type: ignore[arg-type]


def small_graph() -> ModelGraph:
    return ModelGraph(
        model="cnn",
        framework="keras",
        nodes=(
            KernelNode(
                id="n0",
                kernel="fused_conv2d",
                op="conv2d",
                task="fused_conv2d",
                fused=("conv2d", "relu"),
                shapes=((1, 8, 8, 4),),
                layers=("conv_1",),
            ),
            KernelNode(
                id="n1", kernel="fused_dense", op="matmul", layers=("d1", "d2"), ambiguous=True
            ),
        ),
        edges=(("n0", "n1"),),
    )


def test_a_profile_round_trips_through_json_and_sums_its_kernels(make: EventFactory) -> None:
    event = profile(make)
    assert from_json(event.to_json()) == event
    assert event.kernel_sum_secs == pytest.approx(2 * 3e-4 + 2e-4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"calls": (1,)}, "profile.calls: 1 items for 2 kernels"),
        ({"tasks": ("a", "b", "c")}, "profile.tasks: 3 items for 2 kernels"),
        ({"kernel_secs": (-1.0, 1.0)}, "profile.kernel_secs"),
        ({"end_to_end_secs": -1.0}, "profile.end_to_end_secs"),
        ({"calls": (-1, 1)}, "profile.calls"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_field(
    make: EventFactory, change: dict[str, object], message: str
) -> None:
    with pytest.raises(EventError, match=message):
        profile(make, **change)


def test_both_kinds_are_stored_and_read_back_by_kind_and_job(
    store: BaseStore, make: EventFactory
) -> None:
    graph = GraphEvent(source=make.source, seq=100, ts=2.0, job="job-a", model="cnn",
                       graph=small_graph().to_json())  # fmt: skip
    untuned = profile(make, variant="untuned")
    other_job = profile(make, job="job-b")
    store.append([make.job("submitted"), untuned, graph, other_job, make.task("t")])
    assert [p.variant for p in store.profiles("job-a")] == ["untuned"]
    assert store.profiles("job-b") == [other_job]
    assert store.graph("job-a") == graph
    assert store.graph("job-b") is None
    assert [s.event.kind for s in store.read()] == ["job", "profile", "graph", "profile", "task"]
    assert [s.event.kind for s in store.read(kinds=["job", "task"])] == ["job", "task"]
    assert store.jobs()["job"].tolist() == ["job-a"]  # the new kinds do not disturb replays
    assert store.append([untuned]) == []  # idempotent by (source, seq)


def test_the_graph_json_round_trips_and_finds_nodes() -> None:
    graph = small_graph()
    again = ModelGraph.from_json(graph.to_json())
    assert again == graph
    assert again.node("n1").layers == ("d1", "d2")
    assert again.node("n1").ambiguous


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("nodes"), r"graph\.nodes: missing field"),
        (lambda d: d.update(version=9), "graph.version: unknown version 9"),
        (lambda d: d["nodes"][0].update(kernel=3), r"nodes\[0\]\.kernel: expected str"),
        (lambda d: d["nodes"][1].update(id="n0"), r"nodes\[1\]\.id: 'n0' appears twice"),
        (lambda d: d["edges"].append(["n0", "zz"]), "unknown consumer node 'zz'"),
        (lambda d: d["nodes"][0].update(shapes=[[1, "x"]]), r"shapes\[0\]: expected a list"),
    ],
)
def test_bad_graph_json_is_refused_naming_the_field(mutate: object, message: str) -> None:
    data = json.loads(small_graph().to_json())
    mutate(data)  # type: ignore[operator]
    with pytest.raises(GraphError, match=message):
        ModelGraph.from_json(json.dumps(data))


def test_graph_text_that_is_not_json_is_one_clear_error() -> None:
    with pytest.raises(GraphError, match="graph: not valid JSON"):
        ModelGraph.from_json("{nope")
