"""How a job spends its trial budget across its tasks: pure functions of the tasks' histories.

A model job's tasks matter unequally: a convolution called twelve times a run holds most of
the model's latency, a reshape none. After each measured batch a task's history gains its
best latency so far; an allocator then names the task whose next batch should pay most.

- ``uniform``: the task with the fewest batches (ties: the job's task order), i.e. the same
  trials for every task.
- ``gradient``: MetaSchedule's gradient-based task scheduler (and Ansor's, without its
  similarity term), the reference: after one batch each, the task with the largest
  ``weight * (alpha * backward + (1 - alpha) * forward)``, where backward is the best
  latency's decrease per batch over the last ``window`` batches and forward the optimistic
  ``best / batches``.
- ``gain``: tuneloom's. The same two estimates, but per trial rather than per batch (reused
  and final batches are smaller) and divided by the task's measured seconds per trial, so the
  budget goes where the end-to-end latency falls fastest per second of tuning, not per batch;
  and a task whose best stopped improving (less than ``min_gain`` over the last ``window``
  batches) while it holds under ``small_share`` of the model's estimated latency stops early,
  with the reason (``stop_reason``).

Latencies are per call; a task's share of the model is ``weight * best`` over the sum of
them (the tasks' estimate of the end-to-end latency).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from collectors.jobs import ALLOCATORS


@dataclass(frozen=True, slots=True)
class TaskProgress:
    """What an allocator knows of a task: its name, calls per model run (``weight``), trials
    measured, its best latency after each batch (``history``; inf while nothing measured
    ran), the trials of each batch (``batch_trials``, same length), and the seconds of
    tuning one of its trials took on average (None before any)."""

    name: str
    weight: float = 1.0
    trials: int = 0
    history: tuple[float, ...] = ()
    batch_trials: tuple[int, ...] = ()
    seconds_per_trial: float | None = None

    @property
    def best(self) -> float:
        return self.history[-1] if self.history else math.inf

    @property
    def batches(self) -> int:
        return len(self.history)


@dataclass(frozen=True)
class AllocationSettings:
    """The allocators' parameters (MetaSchedule's defaults for ``gradient``)."""

    alpha: float = 0.2
    window: int = 3
    min_gain: float = 0.01  # relative improvement over ``window`` batches that counts
    small_share: float = 0.05  # a task under this share of the model may stop early


def choose_task(
    allocator: str, tasks: Sequence[TaskProgress], settings: AllocationSettings | None = None
) -> str | None:
    """The task that gets the next batch (None when ``tasks`` is empty). ``tasks`` are the
    candidates in the job's task order (alive, not already searching)."""
    if allocator not in ALLOCATORS:
        raise ValueError(f"unknown allocator {allocator!r} (allocators: {', '.join(ALLOCATORS)})")
    if not tasks:
        return None
    settings = settings or AllocationSettings()
    if allocator == "uniform":
        return min(enumerate(tasks), key=lambda it: (it[1].batches, it[0]))[1].name
    unexplored = [t for t in tasks if t.batches == 0]
    if unexplored:  # every task gets one batch first, in the job's order
        return unexplored[0].name
    score = gradient_score if allocator == "gradient" else gain_score
    scores = [score(t, settings) for t in tasks]
    best = max(scores)
    return tasks[scores.index(best)].name


def gradient_score(task: TaskProgress, settings: AllocationSettings) -> float:
    """MetaSchedule's gradient of a task (larger: more promising)."""
    n = task.batches
    best = task.best
    if not math.isfinite(best) or best >= 1e9:
        return -1e9  # nothing valid measured: the task is skipped while others gain
    w = settings.window
    backward = (task.history[n - 1 - w] - best) / w if n >= 1 + w else 0.0
    forward = best / n
    return task.weight * (settings.alpha * backward + (1 - settings.alpha) * forward)


def gain_score(task: TaskProgress, settings: AllocationSettings) -> float:
    """Expected decrease of the model's latency per second of tuning this task."""
    best = task.best
    if not math.isfinite(best) or best >= 1e9:
        return -1e9
    w = min(settings.window, task.batches - 1)
    backward = 0.0
    if w > 0:
        trials = sum(task.batch_trials[-w:]) or 1
        backward = (task.history[-1 - w] - best) / trials
    forward = best / max(1, task.trials)
    per_trial = task.weight * (settings.alpha * backward + (1 - settings.alpha) * forward)
    seconds = task.seconds_per_trial
    return per_trial / seconds if seconds and seconds > 0 else per_trial


def stop_reason(
    task: TaskProgress, tasks: Sequence[TaskProgress], settings: AllocationSettings | None = None
) -> str | None:
    """Why ``task`` should stop early (``gain`` only), or None: its best improved by less
    than ``min_gain`` over the last ``window`` batches and it holds under ``small_share`` of
    the model's estimated latency (``tasks``: every task of the job)."""
    settings = settings or AllocationSettings()
    w = settings.window
    if task.batches < w + 1 or not math.isfinite(task.best):
        return None
    before = task.history[-1 - w]
    improved = (before - task.best) / before if math.isfinite(before) and before > 0 else 1.0
    total = sum(t.weight * t.best for t in tasks if math.isfinite(t.best))
    share = task.weight * task.best / total if total > 0 else 1.0
    if improved >= settings.min_gain or share >= settings.small_share:
        return None
    trials = sum(task.batch_trials[-w:])
    return (
        f"stopped early: {improved:.1%} better over its last {w} batches ({trials} trials), "
        f"{share:.1%} of the model's estimated latency"
    )
