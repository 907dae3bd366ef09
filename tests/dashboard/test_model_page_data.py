"""The Model page's data step: shares per variant, collapsed blocks, search, ranking, and
the page's view for bad or missing input (no browser)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from collectors.events import GraphEvent, ProfileEvent
from collectors.memory_store import MemoryStore
from collectors.modelgraph import KernelNode, ModelGraph
from collectors.sink import EventSink
from dashboard.data import ModelEvents, StoreView
from dashboard.figures import modelgraph as mg
from dashboard.pages import model as page
from tests.dashboard.model_synthetic import synthetic_model


def graph() -> ModelGraph:
    """a -> b -> c -> d, b and c one block; a and d share the kernel ``k_ad``; d has no task."""
    return ModelGraph(
        model="m",
        nodes=(
            KernelNode(id="a", kernel="k_ad", op="conv2d", task="conv", layers=("conv_1",)),
            KernelNode(id="b", kernel="k_b", op="dense", task="dense", layers=("fc_1", "fc_2"),
                       ambiguous=True, block="blk"),
            KernelNode(id="c", kernel="k_c", op="add", task="add", fused=("add", "relu"),
                       layers=("add_1",), block="blk"),
            KernelNode(id="d", kernel="k_ad", op="conv2d", task="conv", layers=("conv_2",)),
            KernelNode(id="e", kernel="k_e", op="softmax", layers=("softmax",)),
        ),
        edges=(("a", "b"), ("b", "c"), ("a", "c"), ("c", "d"), ("d", "e")),
    )  # fmt: skip


def profile(variant: str, **kw: object) -> ProfileEvent:
    fields: dict[str, object] = dict(
        source="t", seq=1, ts=1.0, job="j", model="m", variant=variant, end_to_end_secs=0.010,
        kernels=("k_ad", "k_b", "k_c", "k_e", "vm_gap"), tasks=("conv", "dense", "add", "", ""),
        calls=(2, 1, 1, 1, 1), kernel_secs=(0.002, 0.003, 0.001, 0.0005, 0.0001),
    )  # fmt: skip
    fields.update(kw)
    return ProfileEvent(**fields)  # type: ignore[arg-type]


def test_a_profile_splits_each_kernel_over_its_calls_and_names_the_unmatched() -> None:
    shares = mg.profile_shares(graph(), profile("tuned"), "tuned")
    assert shares.node_ms == pytest.approx({"a": 2.0, "d": 2.0, "b": 3.0, "c": 1.0, "e": 0.5})
    assert shares.total_ms == pytest.approx(10.0)  # of the end-to-end time
    assert shares.share("b") == pytest.approx(0.3)
    assert shares.unmatched == ("vm_gap",)
    assert shares.unmatched_ms == pytest.approx(0.1)
    assert shares.kernel_sum_ms == pytest.approx(8.6)


def test_without_an_end_to_end_time_shares_are_of_the_kernels_sum() -> None:
    shares = mg.profile_shares(graph(), profile("tuned", end_to_end_secs=0.0), "tuned")
    assert shares.total_ms == pytest.approx(8.6)


def test_the_variant_picks_the_newest_profile_of_its_kind_and_says_when_there_is_none() -> None:
    old, new = profile("tuned", kernel_secs=(1, 1, 1, 1, 1)), profile("tuned")
    profiles = [profile("untuned", end_to_end_secs=0.05), old, new]
    tuned = mg.shares_for("tuned", graph(), profiles, {})
    assert tuned.node_ms["b"] == pytest.approx(3.0)
    assert mg.shares_for("untuned", graph(), profiles, {}).total_ms == pytest.approx(50.0)
    none = mg.shares_for("tuned", graph(), [profiles[0]], {})
    assert none.node_ms == {} and none.missing == "no tuned profile stored for this job yet"
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        mg.shares_for("fast", graph(), profiles, {})


def test_the_estimate_is_best_latency_times_calls_as_a_share_of_their_sum() -> None:
    stats = {
        "conv": mg.TaskStats(trials=5, best_secs=0.001, best_pos=7, weight=9.0),
        "dense": mg.TaskStats(trials=3, best_secs=0.004, best_pos=9, weight=1.0),
        "add": mg.TaskStats(trials=2, best_secs=None),  # nothing valid yet
    }
    with_profile = mg.shares_for("estimate", graph(), [profile("tuned")], stats)
    # conv: 1 ms x 2 calls (the profile), split over a and d; dense 4 ms x 1.
    assert with_profile.node_ms == pytest.approx({"a": 1.0, "d": 1.0, "b": 4.0})
    assert with_profile.total_ms == pytest.approx(6.0)
    assert with_profile.share("c") is None and with_profile.share("e") is None
    # Without a profile the task's weight counts the calls: conv 1 ms x 9.
    by_weight = mg.shares_for("estimate", graph(), [], stats)
    assert by_weight.node_ms["a"] == pytest.approx(4.5)
    assert by_weight.total_ms == pytest.approx(13.0)
    empty = mg.shares_for("estimate", graph(), [], {})
    assert empty.missing and empty.node_ms == {}


def test_task_stats_count_trials_and_find_the_best_valid_record() -> None:
    records = pd.DataFrame(
        {"job": ["j", "j", "j", "j", "other"], "task": ["conv", "conv", "conv", "add", "conv"],
         "mean_secs": [0.003, None, 0.002, None, 0.0001], "pos": [1, 2, 3, 4, 5]}
    )  # fmt: skip
    tasks = pd.DataFrame({"job": ["j", "j"], "task": ["conv", "dense"], "weight": [2.0, 1.0]})
    stats = mg.task_stats(records, tasks, "j")
    assert stats["conv"] == mg.TaskStats(trials=3, best_secs=0.002, best_pos=3, weight=2.0)
    assert stats["add"] == mg.TaskStats(trials=1, best_secs=None, best_pos=None, weight=None)
    assert stats["dense"] == mg.TaskStats(weight=1.0)


def test_a_collapsed_block_is_one_node_with_its_members_time_and_edges_joined() -> None:
    shares = mg.profile_shares(graph(), profile("tuned"), "tuned")
    view = mg.graph_view(graph(), shares, {}, collapsed=["blk"])
    nodes = {e["data"]["id"]: e for e in view.elements if "source" not in e["data"]}
    edges = {(e["data"]["source"], e["data"]["target"]) for e in view.elements
             if "source" in e["data"]}  # fmt: skip
    assert set(nodes) == {"a", "block::blk", "d", "e"}
    assert nodes["block::blk"]["data"]["ms"] == pytest.approx(4.0)
    assert nodes["block::blk"]["data"]["share"] == pytest.approx(0.4)
    assert "×2 kernels" in nodes["block::blk"]["data"]["label"]
    assert edges == {("a", "block::blk"), ("block::blk", "d"), ("d", "e")}  # a->b, a->c joined
    assert view.collapsed_blocks == 1 and view.drawn_nodes == 4
    # The block's share tops the ramp: it gets the darkest colour.
    assert nodes["block::blk"]["data"]["color"] == mg.RAMP[-1]
    assert nodes["block::blk"]["position"]["y"] > nodes["a"]["position"]["y"]


def test_an_expanded_block_is_a_frame_around_its_kernels() -> None:
    shares = mg.profile_shares(graph(), profile("tuned"), "tuned")
    view = mg.graph_view(graph(), shares, {}, collapsed=[])
    by_id = {e["data"]["id"]: e for e in view.elements}
    assert by_id["block::blk"]["classes"] == "group"
    assert by_id["b"]["data"]["parent"] == "block::blk"
    assert "parent" not in by_id["a"]["data"]
    assert view.collapsed_blocks == 0 and view.drawn_nodes == 5
    # Layered top to bottom: c sits below b (its producer), d below c.
    assert by_id["a"]["position"]["y"] < by_id["b"]["position"]["y"] < by_id["c"]["position"]["y"]
    assert by_id["c"]["position"]["y"] < by_id["d"]["position"]["y"]


def test_a_single_node_label_is_not_a_block() -> None:
    lone = ModelGraph(model="m", nodes=(KernelNode(id="x", kernel="k", op="o", block="solo"),))
    assert mg.blocks(lone) == {}
    view = mg.graph_view(lone, mg.Shares("tuned", {}, 0.0), {}, collapsed=["solo"])
    assert [e["data"]["id"] for e in view.elements] == ["x"]


def test_nodes_without_data_are_neutral_and_labels_say_what_is_known() -> None:
    stats = {"conv": mg.TaskStats(trials=4, best_secs=0.0012)}
    shares = mg.shares_for("estimate", graph(), [], stats)
    view = mg.graph_view(graph(), shares, stats)
    by_id = {e["data"]["id"]: e for e in view.elements}
    assert by_id["e"]["data"]["color"] == mg.NO_DATA_COLOR
    assert "nodata" in by_id["e"]["classes"]
    assert by_id["e"]["data"]["label"] == "softmax\nno data · no task"
    assert by_id["a"]["data"]["label"] == "conv_1\n50.0% · 4 trials · best 1.2 ms"
    assert by_id["b"]["data"]["label"].startswith("fc_1, fc_2 (ambiguous)\nno data")
    assert view.no_data == 3  # b, c (no measurement yet), e (no task)


def test_search_finds_kernels_layers_tasks_and_marks_collapsed_blocks() -> None:
    g = graph()
    assert mg.search(g, "FC_2") == ["b"]
    assert mg.search(g, "conv") == ["a", "d"]  # task and layer names
    assert mg.search(g, "relu") == ["c"]  # a fused operator
    assert mg.search(g, "k_ad") == ["a", "d"]
    assert mg.search(g, "  ") == [] and mg.search(g, "nothing") == []
    view = mg.graph_view(g, mg.Shares("tuned", {}, 0.0), {}, collapsed=["blk"], query="fc")
    by_id = {e["data"]["id"]: e for e in view.elements}
    assert "found" in by_id["block::blk"]["classes"]
    assert "found" not in by_id["a"]["classes"]
    assert (view.found, view.found_hidden) == (1, 1)


def test_bottlenecks_rank_kernels_by_time_with_their_calls_layers_and_tuning() -> None:
    stats = {"dense": mg.TaskStats(trials=8, best_secs=0.0025), "conv": mg.TaskStats(trials=2)}
    shares = mg.profile_shares(graph(), profile("tuned"), "tuned")
    rows = [b.to_row() for b in mg.bottlenecks(graph(), shares, stats)]
    assert [r["kernel"] for r in rows] == ["k_ad", "k_b", "k_c", "k_e"]
    assert rows[0] == {
        "kernel": "k_ad", "calls": 2, "layers": "conv_1, conv_2", "task": "conv", "share": 40.0,
        "ms": 4.0, "trials": 2, "best_ms": None, "node": "a",
    }  # fmt: skip
    assert rows[1]["layers"] == "fc_1, fc_2 (ambiguous)"
    assert rows[1]["best_ms"] == pytest.approx(2.5)
    assert rows[3]["task"] == "—"
    # Kernels without a number go last, in run order.
    tuned_only = mg.Shares("tuned", {"c": 1.0}, 1.0)
    assert [b.kernel for b in mg.bottlenecks(graph(), tuned_only, {})] == [
        "k_c",
        "k_ad",
        "k_b",
        "k_e",
    ]


def test_the_colour_ramp_runs_from_light_to_dark() -> None:
    assert mg.ramp_color(0.0) == mg.RAMP[0]
    assert mg.ramp_color(1.0) == mg.RAMP[-1]
    assert mg.ramp_color(0.5) == mg.RAMP[2]
    assert mg.ramp_color(7.0) == mg.RAMP[-1]


def test_default_variant_prefers_tuned_then_the_estimate() -> None:
    measured = {"conv": mg.TaskStats(trials=1, best_secs=0.001)}
    assert mg.default_variant([profile("untuned"), profile("tuned")], {}) == "tuned"
    assert mg.default_variant([profile("untuned")], measured) == "estimate"
    assert mg.default_variant([profile("untuned")], {}) == "untuned"


# --- the page's view on a store ---------------------------------------------------------------


def view_of(store: MemoryStore, job: str, variant: str = "tuned") -> page.ModelView:
    snap = StoreView(store).snapshot()
    inputs = ModelEvents(store).inputs(job)
    stats = page.job_stats(snap, job)
    return page.model_view(inputs, stats, variant, collapse=True, expanded=[], query=None,
                           picked=None)  # fmt: skip


def text_of(component: object) -> str:
    return json.dumps(component, default=lambda c: c.to_plotly_json())


def test_a_job_without_a_graph_says_so() -> None:
    store = MemoryStore()
    synthetic_model(store, graph=False)
    view = view_of(store, "deep-1")
    assert view.elements == [] and view.rows == []
    assert "Job deep-1 has no model graph yet" in text_of(view.notices)


def test_graph_json_that_does_not_parse_is_one_clear_line() -> None:
    store = MemoryStore()
    synthetic_model(store, graph=False)
    bad = json.loads(graph().to_json())
    bad["nodes"][1]["kernel"] = 5
    EventSink(store, source="bad").emit(
        GraphEvent, ts=2.0, job="deep-1", model="m", graph=json.dumps(bad)
    )
    view = view_of(store, "deep-1")
    assert view.elements == []
    text = text_of(view.notices)
    assert "The stored graph of job deep-1 cannot be read: nodes[1].kernel: expected str" in text
    assert text.count("tl-error") == 1


def test_profiled_kernels_missing_from_the_graph_are_counted() -> None:
    store = MemoryStore()
    model = synthetic_model(store, blocks=2, unmatched=3)
    view = view_of(store, "deep-1")
    kernels = len(model.graph.nodes)
    assert f"3 of {kernels + 3} profiled kernels" in text_of(view.notices)
    assert len(view.rows) == kernels


def test_model_events_refresh_incrementally_and_keep_the_newest_graph() -> None:
    store = MemoryStore()
    synthetic_model(store, blocks=1)
    events = ModelEvents(store)
    first = events.inputs("deep-1")
    assert first.graph is not None and [p.variant for p in first.profiles] == ["untuned", "tuned"]
    assert events.inputs("deep-1").graph is first.graph  # parsed once
    newer = ModelGraph(model="m2", nodes=(KernelNode(id="z", kernel="kz", op="o"),))
    sink = EventSink(store, source="later")
    sink.emit(GraphEvent, ts=3.0, job="deep-1", model="m2", graph=newer.to_json())
    sink.emit(ProfileEvent, ts=3.0, job="deep-1", model="m2", variant="tuned",
              end_to_end_secs=1e-3, kernels=("kz",), tasks=("",), calls=(1,),
              kernel_secs=(1e-3,))  # fmt: skip
    again = events.inputs("deep-1")
    assert again.graph == newer
    assert len(again.profiles) == 3
    assert events.jobs_with_graph() == {"deep-1"}
