"""Tuning reuse: ranking (pure), applying library schedules to new workloads with real TVM,
planning a model's reuse and choosing source models.

The library is filled from a real, short tuning job (matmul 64, a padded conv2d and a dense
layer, 8 trials each) run once for the module.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuner.metaschedule.library import LibraryEntry, ScheduleLibrary, WorkloadInfo, target_key
from tuner.metaschedule.reuse import (
    ANCHOR_TRANSFER,
    REPLAY,
    apply_schedule,
    block_name_map,
    build_module,
    choose_sources,
    plan_reuse,
    rank_candidates,
    rank_sources,
    refit_tiles,
    refit_trace_json,
    rename_trace_json,
    shape_similarity,
)

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


# --- pure ranking ---------------------------------------------------------------------------


def test_shape_similarity() -> None:
    a = ((64, 64), (64, 64))
    assert shape_similarity(a, a) == 1.0
    assert shape_similarity(a, ((128, 128), (128, 128))) == pytest.approx(0.5)
    assert shape_similarity(((64,),), ((256,),)) == pytest.approx(1 / 3)
    near, far = ((128, 128), (128, 128)), ((512, 512), (512, 512))
    assert shape_similarity(a, near) > shape_similarity(a, far) > 0
    # Extents that do not divide each other count less than a power-of-two step.
    assert shape_similarity(((64,),), ((96,),)) < shape_similarity(((64,),), ((128,),))
    assert shape_similarity(a, near) == shape_similarity(near, a)
    assert shape_similarity(a, ((64, 64, 1), (64, 64))) == 0.0  # ranks differ
    assert shape_similarity(a, ((64, 64),)) == 0.0  # number of tensors differs


def info(op_class: str, shapes: tuple, loops: str, **kw) -> WorkloadInfo:
    """A workload description as ``describe_workload`` gives one (extents from ``shapes``)."""
    extents = kw.pop("extents", None) or [8] * len(loops)
    return WorkloadInfo(
        op_class=op_class,
        anchor_op=kw.pop("anchor_op", "C"),
        shapes=shapes,
        anchor_shapes=shapes,
        loops=tuple(zip(loops, extents, strict=True)),
        blocks=kw.pop("blocks", ("C",)),
        func_name="main",
        fused_ops="C",
        dtype=kw.pop("dtype", "float32"),
        flops=kw.pop("flops", 1e6),
    )


def entry(name: str, workload: WorkloadInfo, *, mcpu: str = "znver5", cores: int = 2, **kw):
    return LibraryEntry(
        source=kw.pop("source", name),
        source_path=f"/dbs/{name}",
        database="/lib/databases/x",
        model=kw.pop("model", name),
        task=name,
        workload_hash=kw.pop("workload_hash", name),
        workload=workload,
        target={"kind": "llvm", "mcpu": mcpu, "num-cores": cores},
        latency_s=kw.pop("latency_s", 1e-3),
        trials=8,
        trace=[[], []],
        trace_digest=kw.pop("trace_digest", name),
    )


MM = {n: info("dense", ((n, n), (n, n), (n, n)), "SSR", extents=[n] * 3) for n in (64, 128, 512)}
CONV = info("conv2d", ((1, 8, 18, 18), (16, 8, 3, 3), (1, 16, 16, 16)), "SSSSRRR")
TARGET = {"kind": "llvm", "mcpu": "znver5", "num-cores": 2}


def test_candidates_are_the_same_op_class_most_similar_first() -> None:
    entries = [entry("mm512", MM[512]), entry("conv", CONV), entry("mm64", MM[64])]
    ranking = rank_candidates(MM[128], entries, 4, target=TARGET)
    assert [c.entry.task for c in ranking.candidates] == ["mm64", "mm512"]
    assert ranking.candidates[0].similarity == pytest.approx(0.5)
    assert ranking.other_classes == 1 and ranking.message is None
    # A conv schedule is never offered to a dense task, nor a dense one to a conv task.
    assert [c.entry.task for c in rank_candidates(CONV, entries, 4).candidates] == ["conv"]
    only_conv = rank_candidates(MM[128], [entry("conv", CONV)], 4)
    assert only_conv.candidates == ()
    assert only_conv.message == "the library has no dense schedule (it holds conv2d x1)"


def test_other_targets_are_excluded_with_the_reason() -> None:
    entries = [
        entry("here", MM[64]),
        entry("there", MM[128], mcpu="cascadelake"),
        entry("wider", MM[128], cores=8),
    ]
    ranking = rank_candidates(MM[128], entries, 4, target=TARGET)
    assert [c.entry.task for c in ranking.candidates] == ["wider", "here"]
    assert ranking.candidates[0].note == "tuned for 8 cores, the target has 2"
    ((excluded, reason),) = [(e.entry.task, e.reason) for e in ranking.excluded]
    assert excluded == "there"
    assert reason == "tuned for llvm -mcpu=cascadelake, not llvm -mcpu=znver5"
    elsewhere = rank_candidates(MM[128], [entry("there", MM[64], mcpu="cascadelake")], 4,
                                target=TARGET)  # fmt: skip
    assert elsewhere.candidates == ()
    assert "none of the library's 1 dense schedules fits: tuned for llvm -mcpu=cascadelake" in (
        elsewhere.message
    )


def test_ranking_excludes_other_loop_nests_and_repeats_and_respects_the_limit() -> None:
    batch = info("dense", ((2, 8, 8), (2, 8, 8), (2, 8, 8)), "SSSR")
    entries = [
        entry("a", MM[64], latency_s=2e-3),
        entry("b", MM[64], latency_s=1e-3),  # as similar, faster
        entry("copy", MM[64], trace_digest="b", workload_hash="b", latency_s=1e-3),
        entry("batched", batch),
        entry("int8", replace(MM[64], dtype="int8")),
    ]
    ranking = rank_candidates(MM[128], entries, 1)
    assert [c.entry.task for c in ranking.candidates] == ["b"]
    assert ranking.more == 1
    reasons = {e.entry.task: e.reason for e in ranking.excluded}
    assert reasons["batched"] == "anchor loop nest SSSR differs from the task's SSR"
    assert reasons["int8"] == "dtype int8 differs from the task's float32"
    assert reasons["copy"] == "same schedule as b/b"
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        rank_candidates(MM[128], entries, 0)


def test_sources_are_ranked_by_work_weighted_similarity() -> None:
    tasks = [("conv", CONV, 9.0), ("fc", MM[128], 1.0)]
    entries = [
        entry("convnet-conv", CONV, model="convnet"),
        entry("mlp-fc", MM[128], model="mlp"),
        entry("far-fc", MM[512], model="far"),
    ]
    scores = rank_sources(tasks, entries, target=TARGET)
    assert [(s.model, round(s.score, 3)) for s in scores] == [
        ("convnet", 0.9),
        ("mlp", 0.1),
        ("far", 0.033),
    ]
    assert scores[0].matches["conv"].entry.task == "convnet-conv"
    assert scores[0].matches["fc"] is None


def test_sources_are_chosen_greedily_by_the_work_they_add() -> None:
    tasks = [("conv", CONV, 9.0), ("fc", MM[128], 1.0)]
    entries = [
        entry("convnet-conv", CONV, model="convnet"),
        entry("convnet2-conv", CONV, model="convnet2", trace_digest="other"),
        entry("mlp-fc", MM[128], model="mlp"),
        entry("far-fc", MM[512], model="far"),
    ]
    choice = choose_sources(tasks, entries, target=TARGET)
    # convnet covers the conv; a second conv model adds nothing; mlp covers the dense fully,
    # so the farther dense model adds nothing either.
    assert choice.names == ("convnet", "mlp")
    assert choice.covered == pytest.approx(1.0)
    assert [s.model for s in choice.ranked] == ["convnet", "convnet2", "mlp", "far"]
    assert choose_sources(tasks, entries, target=TARGET, max_sources=1).names == ("convnet",)
    # Nothing fits (another CPU): no source is chosen, and nothing is covered.
    elsewhere = [replace(e, target=dict(e.target, mcpu="cascadelake")) for e in entries]
    nothing = choose_sources(tasks, elsewhere, target=TARGET)
    assert nothing.chosen == () and nothing.covered == 0.0 and len(nothing.ranked) == 4
    with pytest.raises(ValueError, match="max_sources must be a positive integer"):
        choose_sources(tasks, entries, max_sources=0)


def test_block_names_map_anchor_to_anchor_and_neighbours_by_position() -> None:
    spec = info("conv2d", CONV.shapes, "SSSSRRR", blocks=("pad", "O"), anchor_op="O")
    model = info(
        "conv2d", CONV.shapes, "SSSSRRR", anchor_op="conv2d_nchw",
        blocks=("pad_temp", "conv2d_nchw", "T_add", "compute"),
    )  # fmt: skip
    blocks, funcs = block_name_map(spec, model)
    assert blocks == {"pad": "pad_temp", "O": "conv2d_nchw"}
    assert funcs == {"main": "main"}
    trace = [[["GetSBlock", [], ["O", "main"], ["b0"]], ["GetLoops", ["b0"], [], ["l1"]]], []]
    renamed = rename_trace_json(trace, blocks, {"main": "fused"})
    assert renamed[0][0] == ["GetSBlock", [], ["conv2d_nchw", "fused"], ["b0"]]
    assert renamed[0][1] == trace[0][1] and trace[0][0][2] == ["O", "main"]


def test_tile_sizes_are_refitted_to_new_extents_keeping_their_structure() -> None:
    assert refit_tiles([16, 1, 1, 4], 64) == [16, 1, 1, 4]  # already fits: unchanged
    assert refit_tiles([16, 1, 1, 4], 128, 64) == [32, 1, 1, 4]  # growth goes outwards
    assert refit_tiles([16, 1, 1, 4], 32, 64) == [8, 1, 1, 4]
    assert refit_tiles([2, 1, 2, 16], 200, 64) == [10, 1, 2, 10]  # inner sizes do not grow
    assert refit_tiles([4, 16], 90, 8) == [15, 6]  # the innermost within its maximum
    assert refit_tiles([1, 2, 2, 4], 30, 64) == [1, 5, 2, 3]  # a unit size stays 1
    assert refit_tiles([2, 2, 2, 2], 12) is None  # four sizes above 1 from three primes
    assert refit_tiles([4, 4], 1) is None


def _refit_exists(factors: list[int], extent: int, max_innermost: int) -> bool:
    """Whether ``extent`` has tiles of the structure of ``factors``: they already fit, or it
    splits into one size above 1 per tuned size above 1, the innermost within
    ``max_innermost`` (when positive and the innermost is tiled). Brute force."""
    if math.prod(factors) == extent:
        return True
    parts = sum(f > 1 for f in factors)
    cap = max_innermost if factors[-1] > 1 else 0

    def splits(n: int, parts: int, cap: int) -> bool:
        if parts == 0:
            return n == 1
        divisors = [d for d in range(2, n + 1) if n % d == 0 and not 0 < cap < d]
        return any(splits(n // d, parts - 1, 0) for d in divisors)

    return parts > 0 and splits(extent, parts, cap)


def _assert_refit(tiles: list[int] | None, factors: list[int], extent: int, cap: int) -> None:
    """``tiles`` tile ``extent`` with the unit loops of ``factors``, innermost within ``cap``."""
    assert tiles is not None
    assert len(tiles) == len(factors)
    assert math.prod(tiles) == extent
    assert [t == 1 for t in tiles] == [f == 1 for f in factors]
    if cap and tiles != factors:
        assert tiles[-1] <= cap


@given(
    st.lists(st.integers(1, 32), min_size=1, max_size=4),
    st.integers(1, 5000),
    st.sampled_from([0, 8, 64]),
)
def test_tiles_are_refitted_exactly_when_tiles_of_the_same_structure_exist(
    factors: list[int], extent: int, max_innermost: int
) -> None:
    tiles = refit_tiles(factors, extent, max_innermost)
    if _refit_exists(factors, extent, max_innermost):
        _assert_refit(tiles, factors, extent, max_innermost)
    else:
        assert tiles is None


@st.composite
def _refittable(draw: st.DrawFn) -> tuple[list[int], int, int]:
    """Tuned sizes, an extent up to 16**4 that new sizes of their structure tile, a maximum
    innermost size those new sizes respect."""
    n = draw(st.integers(1, 4))
    unit = draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda u: not all(u)))
    max_innermost = draw(st.sampled_from([0, 2, 8, 64]))
    tuned = [1 if u else draw(st.integers(2, 32)) for u in unit]
    new = [1 if u else draw(st.integers(2, 16)) for u in unit]
    if max_innermost and new[-1] > 1:
        new[-1] = draw(st.integers(2, max_innermost))
    return tuned, math.prod(new), max_innermost


@given(_refittable())
def test_a_refit_is_found_whenever_new_tiles_of_the_same_structure_exist(
    case: tuple[list[int], int, int],
) -> None:
    factors, extent, max_innermost = case
    _assert_refit(refit_tiles(factors, extent, max_innermost), factors, extent, max_innermost)


def test_the_trace_tile_decisions_on_the_anchor_loops_are_refitted() -> None:
    trace = [
        [
            ["GetSBlock", [], ["C", "main"], ["b0"]],
            ["GetLoops", ["b0"], [], ["l1", "l2"]],
            ["SamplePerfectTile", ["l1"], [2, 64], ["v3", "v4"]],
            ["SamplePerfectTile", ["l2"], [2, 64], ["v5", "v6"]],
            ["SampleCategorical", [], [[0, 16], [0.5, 0.5]], ["v7"]],
        ],
        [[2, [4, 16]], [3, [8, 8]], [4, 1]],
    ]
    refitted = refit_trace_json(trace, "C", [128, 64])
    assert refitted[1] == [[2, [8, 16]], [3, [8, 8]], [4, 1]]
    assert refitted[0] == trace[0] and trace[1][0] == [2, [4, 16]]  # the input is kept
    assert refit_trace_json(trace, "other_block", [128, 64]) == trace


def test_a_plan_offers_refitted_and_tuned_tile_sizes_when_they_differ(tmp_path: Path) -> None:
    """The shipped matmul-128 database on a 96^3 matmul: its tile sizes do not divide 96, so
    the plan offers the refitted schedule and the replay's own choice (they differ here)."""
    from tuner.metaschedule.tasks import workload_tasks
    from tuner.metaschedule.traces import trace_json_text
    from tuner.metaschedule.workloads import parse_workload

    sample = Path(__file__).resolve().parents[2] / "sample_logs" / "metaschedule-matmul-128"
    library = ScheduleLibrary(tmp_path / "lib", create=True)
    library.add_database(sample, model="mm128")
    (source,) = library.entries()
    tasks = workload_tasks([parse_workload("matmul:96"), parse_workload("matmul:256")])
    odd, even = plan_reuse(tasks, library, dict(source.target), limit=4)
    assert [a.refitted for a in odd.candidates] == [True, False]
    assert all(a.method == REPLAY and a.entry is odd.candidates[0].entry for a in odd.candidates)
    tiles = []
    for applied in odd.candidates:
        insts, decisions = json.loads(trace_json_text(applied.trace))
        tiles.append([d for i, d in decisions if insts[i][0] == "SamplePerfectTile"])
    assert tiles[0] != tiles[1]
    assert all(int(np.prod(t)) == 96 for t in tiles[0])  # the refit tiles 96 exactly
    # On 256 (a multiple of 128) the replay's own choice equals the refit: offered once.
    assert len(even.candidates) == 1 and even.dropped == ()


# --- real schedules -------------------------------------------------------------------------


def by_task(library: ScheduleLibrary, name: str) -> LibraryEntry:
    (found,) = [e for e in library.entries() if e.task == name]
    return found


def run_kernel(mod, target: dict, inputs: list[np.ndarray], out_shape: tuple) -> tuple:
    """(output, best seconds per call) of the module built for ``target``."""
    import tvm

    built = build_module(mod, target)
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(x, dev) for x in inputs]
    out = tvm.runtime.tensor(np.zeros(out_shape, dtype="float32"), dev)
    built(*args, out)
    timer = built.time_evaluator(built.entry_name, dev, number=5, repeat=5)
    return out.numpy(), min(timer(*args, out).results)


@pytest.mark.slow
def test_a_matmul_64_schedule_runs_matmul_128_correctly_and_faster(
    library: ScheduleLibrary, target: dict
) -> None:
    from tuner.metaschedule.workloads import workload_module

    source = by_task(library, "matmul:64x64x64")
    assert source.op_class == "dense" and source.model == "specs"
    mod = workload_module("matmul:128")
    applied = apply_schedule(source, mod, target)
    assert applied and applied.method == REPLAY and applied.reason is None
    rng = np.random.default_rng(0)
    a, b = (rng.random((128, 128), dtype=np.float32) for _ in range(2))
    out, tuned_s = run_kernel(applied.mod, target, [a, b], (128, 128))
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)
    _, untuned_s = run_kernel(mod, target, [a, b], (128, 128))
    assert tuned_s * 2 < untuned_s, (tuned_s, untuned_s)


@pytest.mark.slow
def test_on_an_awkward_extent_the_tiles_are_refitted_and_the_result_is_right(
    library: ScheduleLibrary, target: dict
) -> None:
    from tuner.metaschedule.traces import trace_json_text
    from tuner.metaschedule.workloads import workload_module

    source = by_task(library, "matmul:64x64x64")
    applied = apply_schedule(source, workload_module("matmul:200"), target)
    assert applied and applied.method == REPLAY
    insts, decisions = json.loads(trace_json_text(applied.trace))
    tiles = [d for i, d in decisions if insts[i][0] == "SamplePerfectTile"]
    assert len(tiles) == 3 and all(int(np.prod(t)) == 200 for t in tiles)
    rng = np.random.default_rng(2)
    a, b = (rng.random((200, 200), dtype=np.float32) for _ in range(2))
    out, _ = run_kernel(applied.mod, target, [a, b], (200, 200))
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_a_conv_schedule_moves_to_a_fused_conv_by_anchor_transfer(
    library: ScheduleLibrary, target: dict, cnn_tasks: list
) -> None:
    conv = next(t for t in cnn_tasks if t.op.startswith("conv2d") and t.shapes[0][1] == 8)
    source = by_task(library, "conv2d:1x8x16x16,16x3x3,stride=1,pad=1")
    applied = apply_schedule(source, conv.mod, target)
    assert applied and applied.method == ANCHOR_TRANSFER
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(s).astype("float32") for s in conv.shapes[:-1]]
    out, _ = run_kernel(applied.mod, target, inputs, conv.shapes[-1])
    expected, _ = run_kernel(conv.mod, target, inputs, conv.shapes[-1])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_schedules_that_do_not_fit_are_dropped_with_the_reason(
    library: ScheduleLibrary, target: dict
) -> None:
    from tuner.metaschedule.workloads import workload_module

    conv = by_task(library, "conv2d:1x8x16x16,16x3x3,stride=1,pad=1")
    unpadded = apply_schedule(conv, workload_module("conv2d:1x8x16x16,16x3x3"), target)
    assert not unpadded and unpadded.schedule is None
    assert unpadded.reason.startswith("replay: ") and "; anchor-transfer: " in unpadded.reason
    dense = by_task(library, "dense:1x256x128")
    wrong = apply_schedule(dense, workload_module("conv2d:1x8x16x16,16x3x3"), target)
    assert wrong.reason == "op class dense does not fit a conv2d task"
    elsewhere = dict(target, mcpu="cascadelake")
    moved = apply_schedule(dense, workload_module("dense:1x256x64"), elsewhere)
    assert moved.reason == f"tuned for {dense.target_key}, not {target_key(elsewhere)}"


@pytest.mark.slow
def test_a_model_plan_reports_sources_per_task_and_falls_back_to_untuned(
    library: ScheduleLibrary, target: dict, cnn_tasks: list
) -> None:
    plans = {p.task: p for p in plan_reuse(cnn_tasks, library, target, limit=2)}
    convs = [p for p in plans.values() if p.op_class == "conv2d"]
    assert len(convs) == 2
    for plan in convs:
        assert plan.sources == ("specs",) and not plan.untuned_only
        assert plan.candidates[0].entry.task.startswith("conv2d:")
        assert plan.candidates[0].similarity > 0
    pools = [p for p in plans.values() if p.op_class == "pool"]
    assert pools and all(p.untuned_only for p in pools)
    assert all(p.message.startswith("the library has no pool schedule") for p in pools)
    untunable = [p for p in plans.values() if p.message and p.message.startswith("not tunable")]
    assert len(untunable) == 1  # the reshape
    # A library holding schedules for another CPU only: every task runs untuned, and says why.
    other = [replace(e, target=dict(e.target, mcpu="cascadelake")) for e in library.entries()]
    for plan in plan_reuse(cnn_tasks, other, target):
        assert plan.untuned_only
        if plan.op_class == "conv2d":
            assert "tuned for llvm -mcpu=cascadelake" in plan.message
    with pytest.raises(ValueError, match="no such source in the library: nowhere"):
        plan_reuse(cnn_tasks, library, target, sources=["nowhere"])


def split_database(db: Path, out: Path, keep: str) -> Path:
    """The part of a database whose workloads' op spec starts with ``keep`` (renumbered)."""
    from tuner.metaschedule.library import describe_workload, load_workload

    out.mkdir()
    workloads = [json.loads(x) for x in (db / WORKLOADS).read_text().splitlines() if x]
    kept = {}
    for index, (workload_hash, _) in enumerate(workloads):
        if describe_workload(load_workload(db, workload_hash)).op_class == keep:
            kept[index] = len(kept)
    (out / WORKLOADS).write_text("".join(json.dumps(workloads[i]) + "\n" for i in kept))
    lines = [json.loads(x) for x in (db / RECORDS).read_text().splitlines() if x]
    (out / RECORDS).write_text(
        "".join(json.dumps([kept[i], body]) + "\n" for i, body in lines if i in kept)
    )
    return out


@pytest.mark.slow
def test_source_models_are_chosen_by_op_class_and_shape_overlap(
    tuned: tuple[Path, dict], tmp_path: Path, target: dict, cnn_tasks: list
) -> None:
    from tuner.models.tasks import model_tasks
    from tuner.models.zoo import build_onnx

    db, _ = tuned
    lib = ScheduleLibrary(tmp_path / "lib", create=True)
    lib.add_database(split_database(db, tmp_path / "conv", "conv2d"), model="convnet")
    lib.add_database(split_database(db, tmp_path / "dense", "dense"), model="mlpnet")
    cnn = rank_sources(cnn_tasks, lib, target=target)
    assert [s.model for s in cnn] == ["convnet", "mlpnet"]
    assert cnn[0].score > cnn[1].score
    conv_matches = [m for m in cnn[0].matches.values() if m is not None]
    assert conv_matches and all(m.entry.op_class == "conv2d" for m in conv_matches)
    _, mlp_tasks = model_tasks(build_onnx("mlp"), target)
    mlp = rank_sources(mlp_tasks, lib, target=target)
    assert [s.model for s in mlp] == ["mlpnet", "convnet"]
    assert mlp[0].score > 0 and mlp[1].score == 0.0
    assert all(match is None for match in mlp[1].matches.values())
