"""A synthetic model job for the Model page's tests and benchmark: a deep residual stack.

Everything is made up (nothing measured): a job with its tasks, the model's graph after
fusion (a stem, ``blocks`` repeated blocks of four fused kernels each, a head), an untuned and
a tuned per-kernel profile, and measured candidates per task. Blocks of one stage share their
tuning tasks, as same-shaped layers of a real model do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from collectors._base import BaseStore
from collectors.events import GraphEvent, JobEvent, ProfileEvent, RecordEvent, TaskEvent
from collectors.modelgraph import KernelNode, ModelGraph
from collectors.sink import EventSink

START = 1_700_000_000.0
STAGES = 3


@dataclass
class SyntheticModel:
    """What ``synthetic_model`` wrote."""

    job: str
    graph: ModelGraph
    tasks: list[str] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)  # task -> best valid seconds
    untuned: dict[str, float] = field(default_factory=dict)  # kernel -> seconds per call
    tuned: dict[str, float] = field(default_factory=dict)
    records: int = 0


def model_graph(model: str, blocks: int) -> ModelGraph:
    """The stack's graph: ``4 * blocks + 3`` kernel nodes; every 7th block's second
    convolution matches two source layers (ambiguous)."""
    nodes = [KernelNode(id="n0", kernel="fused_conv2d_stem", op="conv2d", task="conv_stem",
                        fused=("conv2d", "relu"), shapes=((1, 3, 32, 32),),
                        layers=("stem/conv",))]  # fmt: skip
    edges: list[tuple[str, str]] = []
    prev = "n0"
    for b in range(blocks):
        stage = b * STAGES // max(blocks, 1)
        base = len(nodes)
        ids = [f"n{base + i}" for i in range(4)]
        label = f"stage{stage}/block{b}"
        ambiguous = b % 7 == 3
        nodes += [
            KernelNode(id=ids[0], kernel=f"fused_conv2d_relu_b{b}a", op="conv2d",
                       task=f"conv3x3_s{stage}", fused=("conv2d", "relu"),
                       layers=(f"{label}/conv_a",), block=label),
            KernelNode(id=ids[1], kernel=f"fused_conv2d_b{b}b", op="conv2d",
                       task=f"conv3x3_s{stage}", fused=("conv2d",),
                       layers=(f"{label}/conv_b", f"{label}/conv_c") if ambiguous
                       else (f"{label}/conv_b",), ambiguous=ambiguous, block=label),
            KernelNode(id=ids[2], kernel=f"fused_add_relu_b{b}", op="add",
                       task=f"add_relu_s{stage}", fused=("add", "relu"),
                       layers=(f"{label}/add",), block=label),
            KernelNode(id=ids[3], kernel=f"reshape_b{b}", op="reshape", task=None,
                       layers=(f"{label}/reshape",), block=label),
        ]  # fmt: skip
        edges += [(prev, ids[0]), (ids[0], ids[1]), (ids[1], ids[2]), (prev, ids[2]),
                  (ids[2], ids[3])]  # fmt: skip
        prev = ids[3]
    head = len(nodes)
    nodes += [
        KernelNode(id=f"n{head}", kernel="fused_dense_head", op="matmul", task="dense_head",
                   fused=("matmul", "add"), layers=("head/dense",)),
        KernelNode(id=f"n{head + 1}", kernel="softmax", op="softmax", task=None,
                   layers=("head/softmax",)),
    ]  # fmt: skip
    edges += [(prev, f"n{head}"), (f"n{head}", f"n{head + 1}")]
    return ModelGraph(model=model, nodes=tuple(nodes), edges=tuple(edges), framework="keras",
                      detail="synthetic deep residual stack")  # fmt: skip


def synthetic_model(
    store: BaseStore,
    *,
    job: str = "deep-1",
    blocks: int = 6,
    trials: int = 12,
    unmatched: int = 0,
    graph: bool = True,
    profiles: tuple[str, ...] = ("untuned", "tuned"),
    seed: int = 0,
    source: str = "synthetic-model",
) -> SyntheticModel:
    """Write a synthetic model job (graph, profiles, records) into ``store``.

    ``unmatched`` profiled kernels are not in the graph; ``graph=False`` stores none.
    """
    rng = random.Random(seed)
    sink = EventSink(store, source=source)
    model = f"deep{blocks}"
    g = model_graph(model, blocks)
    tasks = list(dict.fromkeys(n.task for n in g.nodes if n.task))
    out = SyntheticModel(job=job, graph=g, tasks=tasks)
    sink.emit(JobEvent, ts=START, job=job, change="submitted", name=model, target="llvm",
              policy="interleaved", trials=trials * len(tasks), tasks=tuple(tasks),
              model=f"zoo:{model}")  # fmt: skip
    for task in tasks:
        calls = sum(1 for n in g.nodes if n.task == task)
        sink.emit(TaskEvent, ts=START, job=job, task=task, op=task.split("_")[0],
                  weight=float(calls), flops=1e6)  # fmt: skip
    sink.emit(JobEvent, ts=START + 0.1, job=job, change="started")
    if graph:
        sink.emit(GraphEvent, ts=START + 0.2, job=job, model=model, graph=g.to_json())
    base = {task: rng.uniform(0.05, 0.5) / 1000 for task in tasks}
    for node in g.nodes:
        secs = base[node.task] if node.task else 0.01 / 1000
        out.untuned[node.kernel] = secs * 3.0 * rng.uniform(0.9, 1.1)
        out.tuned[node.kernel] = secs * rng.uniform(0.9, 1.1)
    extra = [f"vm_extra_{i}" for i in range(unmatched)]
    for variant in profiles:
        times = out.untuned if variant == "untuned" else out.tuned
        kernels = [*times, *extra]
        secs = [*times.values(), *(0.02 / 1000 for _ in extra)]
        by_kernel = {n.kernel: n.task or "" for n in g.nodes}
        total = sum(secs)
        sink.emit(ProfileEvent, ts=START + 0.3, job=job, model=model, variant=variant,
                  end_to_end_secs=total * 1.05, kernels=tuple(kernels),
                  tasks=tuple(by_kernel.get(k, "") for k in kernels),
                  calls=tuple(1 for _ in kernels), kernel_secs=tuple(secs),
                  target="llvm", threads=2)  # fmt: skip
    for t, task in enumerate(tasks):
        best = None
        for c in range(trials):
            failed = c % 5 == 4
            trace = f"# synthetic trace\nsch.split(l0, [None, {2 ** (c % 5)}])"
            common = {"ts": START + 1 + c, "job": job, "task": task, "iteration": c // 4,
                      "candidate": c, "origin": "synthetic", "trace": trace}  # fmt: skip
            out.records += 1
            if failed:
                sink.emit(RecordEvent, error="synthetic run error", error_class="run", **common)
                continue
            secs = base[task] * (0.5 + 0.5 * 0.8**c) * rng.uniform(0.95, 1.05) * (1 + t * 1e-3)
            best = secs if best is None else min(best, secs)
            sink.emit(RecordEvent, run_secs=(secs, secs), **common)
        if best is not None:
            out.best[task] = best
    return out
