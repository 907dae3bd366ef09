"""`tuneloom explain`: where a tuned model's time goes, and what its fastest schedules share."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tuneloom.cli import UserError, emit_result

HEAVY_SHARE = 0.8  # heavy tasks: those of the kernels that make up this share of the run


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "explain",
        help="A tuned model's bottleneck kernels and what its fastest schedules have in common.",
        description=(
            "The bottleneck table of a model job (from its newest tuned per-kernel profile: each "
            "fused kernel's share of end-to-end latency, with the source layers it came from) "
            "and, per heavy task, what the fastest 10 %% of measured candidates share and "
            "which schedule decisions matter most for latency."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="the model, as the job names it")
    parser.add_argument("--db", metavar="STORE", required=True, help="store holding the job")
    parser.add_argument("--job", metavar="ID", help="the job (default: the newest of MODEL)")
    parser.add_argument(
        "--top", type=int, default=5, metavar="N", help="at most N heavy tasks (default 5)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from collectors.stores import open_store

    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    store = open_store(args.db, read_only=True)
    try:
        report = explain(store, args.model, args.job, top=args.top)
    finally:
        store.close()
    emit_result(args, report, human_text(report))
    return 0


def model_key(text: str) -> str:
    """A model's name for comparison: ``zoo:cnn``, ``cnn`` and ``models/cnn.tflite`` agree."""
    name = text.strip()
    if name.startswith("zoo:"):
        name = name[4:]
    return Path(name).stem.lower() if ("/" in name or "." in name) else name.lower()


def explain(store: Any, model: str, job: str | None, *, top: int = 5) -> dict[str, Any]:
    """The report ``--json`` prints; raises UserError for a model or job that does not fit."""
    job_row = _job(store.jobs(), model, job)
    job_id = str(job_row["job"])
    tasks = store.tasks(job=job_id)
    records = store.records(job=job_id)
    job_tasks = set(tasks["task"]) | set(records["task"])
    profiles = store.profiles(job_id)
    tuned = [p for p in profiles if p.variant == "tuned"]
    profile = (tuned or profiles or [None])[-1]  # the newest tuned profile, else the newest
    graph_event = store.graph(job_id)
    _check_matches(model, job_id, job_tasks, profile, graph_event)
    report: dict[str, Any] = {
        "model": model,
        "job": job_id,
        "profile": None,
        "end_to_end_ms": None,
        "kernels": [],
        "tasks": [],
        "notes": [],
    }
    if profile is None:
        report["notes"].append(
            f"The store holds no profile event for job {job_id}: no bottleneck table "
            "(profile the model to get one); the tasks follow."
        )
        heavy = _tasks_by_weight(tasks, records)[:top]
    else:
        layers = _layers(graph_event, report["notes"])
        kernels = kernel_table(profile, layers)
        report.update(
            profile=profile.variant,
            end_to_end_ms=profile.end_to_end_secs * 1e3,
            kernel_sum_ms=profile.kernel_sum_secs * 1e3,
            kernels=kernels,
        )
        heavy = heavy_tasks(kernels, top)
        if graph_event is None:
            report["notes"].append(f"No graph event for job {job_id}: layers are empty.")
    report["tasks"] = [_task_report(store, job_id, task, records) for task in heavy]
    return report


def kernel_table(profile: Any, layers: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Kernels of a profile ranked by their share of end-to-end latency."""
    end = profile.end_to_end_secs
    rows = []
    for name, task, calls, secs in zip(
        profile.kernels, profile.tasks, profile.calls, profile.kernel_secs, strict=True
    ):
        total = secs * calls
        rows.append(
            {
                "name": name,
                "task": task or None,
                "calls": calls,
                "ms": total * 1e3,
                "ms_per_call": secs * 1e3,
                "share": total / end if end > 0 else None,
                "layers": layers.get(name, []),
            }
        )
    rows.sort(key=lambda r: -r["ms"])
    return rows


def heavy_tasks(kernels: Sequence[dict[str, Any]], top: int) -> list[str]:
    """Tasks of the heaviest kernels, until they make up ``HEAVY_SHARE`` of kernel time."""
    total = math.fsum(k["ms"] for k in kernels) or 1.0
    out: list[str] = []
    covered = 0.0
    for kernel in kernels:
        if covered >= HEAVY_SHARE * total or len(out) >= top:
            break
        covered += kernel["ms"]
        if kernel["task"] and kernel["task"] not in out:
            out.append(kernel["task"])
    return out


def human_text(report: dict[str, Any]) -> str:
    """The report for a terminal: the bottleneck table, then each heavy task's summary."""
    lines = [f"{report['model']}  (job {report['job']})"]
    if report["kernels"]:
        lines.append(
            f"end-to-end {report['end_to_end_ms']:.3f} ms ({report['profile']} build); kernels "
            f"sum to {report['kernel_sum_ms']:.3f} ms"
        )
        lines.append(f"{'share':>6}  {'ms':>9}  {'calls':>5}  kernel / task / layers")
        for k in report["kernels"]:
            share = f"{k['share'] * 100:5.1f}%" if k["share"] is not None else "     -"
            layers = ", ".join(k["layers"][:4]) + (" ..." if len(k["layers"]) > 4 else "")
            task = k["task"] or "(no task)"
            lines.append(f"{share:>6}  {k['ms']:9.4f}  {k['calls']:5d}  {k['name']} / {task}")
            if layers:
                lines.append(f"{'':26}layers: {layers}")
    lines.extend(report["notes"])
    for task in report["tasks"]:
        best = f"{task['best_ms']:.4f} ms" if task["best_ms"] is not None else "none valid"
        lines.append("")
        lines.append(f"task {task['task']}: {task['trials']} trials, best {best}")
        lines.extend(f"  {sentence}" for sentence in task["summary"])
    return "\n".join(lines)


def _job(jobs: pd.DataFrame, model: str, job: str | None) -> pd.Series:
    key = model_key(model)
    models = [m for m in jobs["model"] if isinstance(m, str)]
    if job is not None:
        found = jobs[jobs["job"] == job]
        if found.empty:
            raise UserError(f"the store holds no job {job!r}")
        row = found.iloc[-1]
        named = row["model"] if isinstance(row["model"], str) else None
        if named is not None and model_key(named) != key:
            raise UserError(
                f"job {job} tuned model {named!r}, not {model!r}: its tasks belong to another model"
            )
        return row
    mine = jobs[[isinstance(m, str) and model_key(m) == key for m in jobs["model"]]]
    if mine.empty:
        here = ", ".join(sorted(set(models))) or "none"
        raise UserError(f"the store holds no job for model {model!r} (models here: {here})")
    return mine.sort_values("submitted_ts", kind="stable").iloc[-1]


def _check_matches(
    model: str, job: str, job_tasks: set[str], profile: Any, graph_event: Any
) -> None:
    key = model_key(model)
    for what, event in (("profile", profile), ("graph", graph_event)):
        if event is not None and model_key(event.model) != key:
            raise UserError(f"job {job}'s newest {what} is of model {event.model!r}, not {model!r}")
    if profile is not None and job_tasks:
        foreign = sorted({t for t in profile.tasks if t} - job_tasks)
        if foreign:
            raise UserError(
                f"the profile of job {job} names tasks the job did not tune ({foreign[0]}"
                f"{' ...' if len(foreign) > 1 else ''}): another model or input shape"
            )


def _layers(graph_event: Any, notes: list[str]) -> dict[str, list[str]]:
    if graph_event is None:
        return {}
    from collectors.modelgraph import GraphError, ModelGraph

    try:
        graph = ModelGraph.from_json(graph_event.graph)
    except GraphError as exc:
        notes.append(f"The stored graph cannot be read ({exc}): layers are empty.")
        return {}
    out: dict[str, list[str]] = {}
    for node in graph.nodes:
        names = out.setdefault(node.kernel, [])
        names.extend(layer for layer in node.layers if layer not in names)
    return out


def _tasks_by_weight(tasks: pd.DataFrame, records: pd.DataFrame) -> list[str]:
    best = records.groupby("task")["mean_secs"].min() if len(records) else pd.Series()
    weight = dict(zip(tasks["task"], tasks["weight"], strict=True))
    names = list(dict.fromkeys([*tasks["task"], *records["task"]]))
    return sorted(names, key=lambda t: -(weight.get(t, 1.0) * best.get(t, 0.0) or 0.0))


def _task_report(store: Any, job: str, task: str, records: pd.DataFrame) -> dict[str, Any]:
    from collectors.decisions_analysis import analyze
    from collectors.decisions_table import store_candidates

    mine = records[records["task"] == task]
    valid = mine["mean_secs"].dropna()
    candidates = store_candidates(store, job, task)
    analysis = analyze(candidates)
    summary = list(analysis.summary)
    if candidates.undecoded:
        summary.insert(0, candidates.undecoded_text() + ".")
    return {
        "task": task,
        "trials": len(mine),
        "best_ms": float(valid.min() * 1e3) if len(valid) else None,
        "decisions": [
            {"decision": i.name, "importance": round(i.score, 4)} for i in analysis.importances
        ],
        "findings": analysis.to_dict()["findings"],
        "method": analysis.method,
        "undecoded": candidates.undecoded_count,
        "summary": summary,
    }
