"""The MetaSchedule adapter: a job's tuning as select/build/profile/update stages.

``MetaScheduleDriver`` (one per job) walks each task through select -> build -> profile ->
update batches until the job's budget is spent (``tuner.allocation`` picks the task that gets
each next batch), each task stops at its cap, its search ends, or a stop rule fires (a time
budget, a latency target met):

- select: ``TuneContext.generate_measure_candidates`` (evolutionary search guided by the
  job's XGBoost cost model), truncated to the trials left; the cost model's predicted score
  is kept for each candidate once the model has been trained. A task whose search stalled
  (``settings.stalled``) with the population sized to few cores starts a search with
  MetaSchedule's population; what the first one measured is never proposed again (after a
  restart too: ``settings.first_stall`` on the history rebuilt from the database; such a
  search may be asked for a few more candidates than the batch: ``settings.search_batch``).
  On a GPU, each task's first batch starts with its DLight default schedule
  (``gpu_default``).
- build: the long-lived build pool of the client resource, or of a device lent to client work
  (``tuner.metaschedule.build``).
- profile: the device resource's profiler (``tuner.metaschedule.run``): a pinned local
  worker for ``device:llvm:N``, a worker driving GPU N for ``device:cuda:N``, tracker
  sessions for ``device:rpc:KEY:N``. When the device cannot be reached the stage fails and
  is retried (on whichever resource of the pool the scheduler picks); after
  ``profile_retries`` retries the job is stalled: ``on_stall`` is called (e.g. to pause the
  job) or, without one, the stage raises so the job fails with the reason. A candidate
  that would become its task's best is timed a second time (``candidate_to_confirm``): on
  a core of this machine in a second, quiet profile stage (``tuner.quiet``: no client work
  beside it, which costs a kernel 1-4 %, unless waiting for that would let a later batch
  take the device first), also when it comes within ``CONFIRM_MARGIN`` of
  the best, and its record holds the quiet timing (where it disagrees with the batch's by
  over 3 %, the median of those two and a third); elsewhere (a GPU, an RPC device) in the
  same stage, its record holding both timings. ``settings.retime`` chooses otherwise:
  ``inline`` times every would-be best again in the same stage, ``off`` not at all.
- update: ``notify_runner_results``, a tuning record per candidate committed to the job's
  ``JSONDatabase`` (failed ones with run_secs [1e10], as MetaSchedule does), the cost model
  update, ``record`` events, and removal of the built libraries.

Reuse (``ReuseSettings``, see ``tuner.metaschedule.reuse``): a job started from a schedule
library first selects, per task, the library's schedules applied to the task instead of
searching; they are built, profiled and committed like any batch (the cost model learns from
them), and the task event's detail then names each such record (``collectors.reuse``). A
warm-started task's search continues from them (MetaSchedule's evolutionary search seeds its
population with the database's best records); a reuse-only task also measures its untuned
workload as the fallback and stops there. A finished job's database can join a library.

Each job has its own ``JSONDatabase`` in ``db_dir`` (``database_workload.json`` and
``database_tuning_record.json``, MetaSchedule's own format: ``ms.tir_integration.compile_tir``
and ``compile_relax`` read it directly) and one ``SharedXGBModel`` shared by its tasks. Every
TVM tuning import of the project lives in ``tuner/metaschedule/``.

Events: a ``task`` event per task when the job first asks for a stage (``detail`` lines
``metaschedule_database=<dir>`` and ``spec=<spec>``, plus ``stopped=<why>`` in a second
event if its search ends early), a ``record`` event per measured candidate. A
record's ``trace`` is the trace in MetaSchedule's JSON form (``[instructions, decisions]``, as
in ``database_tuning_record.json``): ``Trace.apply_json_to_schedule`` replays it on the
workload, found in the job's database by ``workload_hash`` (``tuner.metaschedule.inspector``
renders it as Python lines, TIR and code).

A job's tasks search side by side (``ready`` offers a new batch to as many idle tasks as
``settings.parallel_tasks`` allows, chosen by the allocator); selects of different tasks run
at once, and beside another task's update: the database is a ``LockedDatabase`` (each call
holds its lock; no thread waits for another's stage), and the cost model is a
``SharedXGBModel`` (updates one at a time, XGBoost entered by one thread at a time, selects
predicting with the booster trained last).

Runs are reproducible for a seed up to measurement noise when one task searches at a time:
the search's random state and numpy's (which MetaSchedule's untrained cost model draws from)
are seeded per task and iteration, but numpy's is one per process, so concurrent selects draw
from it in whatever order they run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import tvm_ffi
from tvm.s_tir import meta_schedule as ms
from tvm.target import Target

from collectors.events import GraphEvent, ProfileEvent, RecordEvent, TaskEvent
from collectors.importers.ms_database import (
    DETAIL_DATABASE_PREFIX,
    FAILED_RUN_SECS,
    RECORD_FILE,
    WORKLOAD_FILE,
)
from collectors.jobs import StageKind
from collectors.reuse import UNTUNED, ReusedSchedule, origin_text
from collectors.sink import EventSink, StoreWriteError
from tuner._base import JobDriver, StageResult, Step, TunerError, duration_text, one_line
from tuner.allocation import TaskProgress, choose_task, stop_reason
from tuner.cpus import pin_thread
from tuner.metaschedule.build import BuildOutcome, remove_artifact
from tuner.metaschedule.cost_model import SharedXGBModel
from tuner.metaschedule.fixed import fixed_schedules, most_fixed_schedules
from tuner.metaschedule.gpu_default import default_schedule
from tuner.metaschedule.intrinsics import load_tensor_intrinsics
from tuner.metaschedule.library import LibraryEntry, WorkloadInfo, describe_workload
from tuner.metaschedule.locked_database import LockedDatabase
from tuner.metaschedule.resume import (
    DatabaseRecord,
    ResumeState,
    records_by_workload,
    repair_database,
    sync_file,
)
from tuner.metaschedule.reuse import (
    ReuseSettings,
    SourceChoice,
    choose_sources,
    entries_of_sources,
    plan_reuse,
)
from tuner.metaschedule.run import LocalProfiler, RPCProfiler, RunOutcome, times_host_cpu
from tuner.metaschedule.settings import DriverSettings, first_stall, search_batch, stalled
from tuner.metaschedule.siblings import (
    SiblingBest,
    SiblingBoard,
    SiblingSchedule,
    sibling_schedules,
)
from tuner.metaschedule.spaces import space_generator
from tuner.metaschedule.targets import GPU_KIND, target_config
from tuner.metaschedule.tasks import TuningTask, workload_tasks
from tuner.metaschedule.traces import trace_json_text
from tuner.metaschedule.workers import StageWorkers
from tuner.metaschedule.workloads import WorkloadSpec, parse_job_workloads
from tuner.quiet import median_timing, timings_disagree

log = logging.getLogger(__name__)

STAGE_ATTEMPTS = 3  # a stage that raises this many times in a row stops its task
CONFIRMATIONS = 3  # most candidates of one batch timed a second time as would-be bests
# A candidate timed beside client work within this of its task's best (timed quietly) is
# timed again quietly: the client work may have cost it that much.
CONFIRM_MARGIN = 0.03
# A record recovered from the database after a restart: its error text was in the store only.
RECOVERED_ERROR = "failed (recovered from the job's database after a restart)"


class DeviceLost(RuntimeError):
    """The job's device pool stayed unreachable through every profile retry."""


@dataclass(eq=False)
class _Task:
    index: int
    name: str
    spec: TuningTask
    workload_hash: str
    budget: int
    ctx: Any = None
    workload: Any = None
    trials: int = 0
    iteration: int = 0
    done: bool = False
    failed: str | None = None
    best_s: float | None = None
    best_candidate: int | None = None
    history: list[float] = field(default_factory=list)  # best after each batch (inf: none)
    batch_trials: list[int] = field(default_factory=list)
    seconds: float = 0.0  # time its stages took
    # The batch in flight.
    next_kind: StageKind = StageKind.SELECT
    candidates: list[Any] = field(default_factory=list)
    predicted: list[float | None] = field(default_factory=list)
    builds: list[BuildOutcome] = field(default_factory=list)
    runs: list[RunOutcome | None] = field(default_factory=list)
    profile_failures: int = 0
    stage_failures: int = 0  # stages in a row that raised
    confirm_pending: bool = False  # its would-be bests wait for a quiet profile
    # Tuning reuse: library schedules still to measure first, those measured (for the task
    # event's detail), the batch's (offset -> schedule origin), and why nothing applied.
    reuse_pending: bool = False
    reused: list[ReusedSchedule] = field(default_factory=list)
    batch_reused: dict[int, ReusedSchedule] = field(default_factory=dict)
    reuse_note: str | None = None
    reused_secs: dict[int, float | None] = field(default_factory=dict)
    # After a restart: the schedules measured before it (structural hashes, never measured
    # again) and whether the cost model still has to learn from the database's records.
    measured: set[int] = field(default_factory=set)
    relearn: bool = False
    timed_trials: int = 0  # trials whose stages this process timed (``seconds``)
    # Candidates at the head of the batch that the search did not propose (a GPU task's
    # default schedule): measured and recorded, but not reported back to the search.
    injected: int = 0
    # The search stalled with a small population: its next select starts a larger one.
    grow_pending: bool = False
    grown: bool = False
    grown_at: int | None = None  # the trial from which the larger search proposed
    # Sibling schedules (``tuner.metaschedule.siblings``): the siblings' bests offered so far,
    # the batch's (by offset) and every measured one (by candidate).
    siblings_offered: set[tuple[str, int]] = field(default_factory=set)
    batch_siblings: dict[int, ReusedSchedule] = field(default_factory=dict)
    from_siblings: dict[int, ReusedSchedule] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskSummary:
    """A task's outcome so far (``siblings``: how many of its trials measured a sibling's
    schedule; ``best_from``: the sibling whose schedule holds its best, None: its own)."""

    name: str
    trials: int
    best_latency_s: float | None
    done: bool
    error: str | None = None
    weight: float = 1.0
    siblings: int = 0
    best_from: str | None = None


@dataclass(frozen=True, slots=True)
class TaskReuseReport:
    """A reuse job's task: each library schedule measured with its mean latency (None: it
    failed), the best latency so far and where that schedule came from, and a note (why
    nothing applied, or why the task stopped)."""

    name: str
    measured: tuple[tuple[ReusedSchedule, float | None], ...]
    best_s: float | None
    best_origin: str | None
    note: str | None

    def as_json(self) -> dict[str, Any]:
        untuned = [secs for r, secs in self.measured if r.method == UNTUNED]
        return {
            "reused": [
                {"source": r.source, "method": r.method, "refitted": r.refitted, "latency_s": s}
                for r, s in self.measured
                if r.method != UNTUNED
            ],
            **({"untuned_s": untuned[0]} if untuned else {}),
            "best_s": self.best_s,
            "best_origin": self.best_origin,
            **({"note": self.note} if self.note else {}),
        }


@dataclass(frozen=True, slots=True)
class FinalStage:
    """Work a job does once its tasks are done, as one more client stage (a ``build`` of
    ``task``): compiling the tuned model, adding the database to a schedule library. It runs
    like any other stage, so it never shares a core with a profile and shows on the timeline.
    ``run`` returns a line for the ``finished`` job event (or None) and may raise."""

    task: str
    run: Callable[[], str | None]


@dataclass(frozen=True, slots=True)
class LatencyCheck:
    """A model job's stop rule: tune until the model, compiled with the job's database and
    timed afresh, runs in ``target_s`` or less. ``compile(database)`` compiles the model with
    a copy of the job's database (a folder) and returns the saved model's folder;
    ``measure(folder, cores)`` times it in a fresh process pinned to ``cores`` (the device's)
    and returns seconds per run. A check is a ``build`` of ``CHECK_TASK`` on a client, then a
    ``profile`` of it on the device, like any candidate."""

    target_s: float
    compile: Callable[[Path], Path]
    measure: Callable[[Path, Sequence[int]], float]


@dataclass(frozen=True, slots=True)
class ModelProfiling:
    """A model job's graph and per-kernel profiles, as events of the job.

    ``graph`` (``ModelGraph`` JSON of ``model``) is emitted as a ``graph`` event with the
    task events. With ``compile_untuned`` the untuned model is compiled in a ``build`` of
    ``PROFILE_TASK`` on a client (returning the saved model's folder) and profiled in a
    ``profile`` of it on the device while the tasks search (iteration 0). After the final
    stage, when ``tuned_folder()`` names the compiled tuned model, a ``profile`` of
    ``PROFILE_TASK`` (iteration 1) profiles it on the device. ``profile(folder, variant,
    cores)`` runs the profiler in a fresh process pinned to ``cores`` and returns the
    ``ProfileEvent`` fields. Like any profile stage these never share a core with another
    stage; a failure is reported on its stage and never fails the job."""

    model: str
    graph: str | None
    compile_untuned: Callable[[], Path] | None
    tuned_folder: Callable[[], Path | None]
    profile: Callable[[Path, str, Sequence[int]], dict[str, Any]]


PROFILE_TASK = "model profile"
CHECK_TASK = "model check"
CHECK_GAIN = 0.98  # the next check waits for the estimate to fall this far below the last
FIXED_DETAIL = "fixed: no decision to search; each fixed schedule measured once"


class MetaScheduleDriver(JobDriver):
    """One job's MetaSchedule tuning as stages of its tasks (see the module docstring).

    ``workloads`` are workload specs (strings or parsed) or ``TuningTask``s (e.g. a model's
    extracted tasks); a task marked untunable is reported as such and not searched.
    ``settings`` say the budget of each task, the batch, the search, the target and the
    device pool its profile stages need; ``workers`` provides the build pool and profiler of
    each resource. With ``settings.reuse`` each task starts from a schedule library
    (``ReuseSettings``): its first batch is the library's schedules applied to the task,
    measured like any other; with ``reuse.only`` (plus the untuned workload as the fallback)
    it is the task's only batch. ``on_stall(job, reason)`` is called when the device pool
    stays unreachable (without it, the stage raises and the job fails). ``final`` is run as
    the job's last stage once its tasks are done (``FinalStage``); ``check`` stops the job
    once its compiled model meets a latency target (``LatencyCheck``). ``siblings`` is the
    board where its tasks publish their bests and find their siblings' (shared with other
    jobs, see ``tuner.metaschedule.siblings``; without it, one of the job's own).
    """

    def __init__(
        self,
        job_id: str,
        workloads: Sequence[WorkloadSpec | str | TuningTask],
        settings: DriverSettings,
        *,
        workers: StageWorkers,
        db_dir: str | Path,
        sink: EventSink | None = None,
        on_stall: Callable[[str, str], None] | None = None,
        final: FinalStage | None = None,
        check: LatencyCheck | None = None,
        resume: ResumeState | None = None,
        profiling: ModelProfiling | None = None,
        siblings: SiblingBoard | None = None,
    ) -> None:
        tasks = job_tasks(workloads)
        if not tasks:
            raise TunerError("a job needs at least one workload")
        names = {task.name for task in tasks}
        if final is not None and final.task in names:
            raise TunerError(f"the final stage's task {final.task!r} is also a task of the job")
        if check is not None and CHECK_TASK in names:
            raise TunerError(f"a task of the job is named {CHECK_TASK!r}")
        if profiling is not None and PROFILE_TASK in names:
            raise TunerError(f"a task of the job is named {PROFILE_TASK!r}")
        device_pool = settings.device_pool
        if device_pool not in workers.device_pools():
            raise TunerError(
                f"no device pool {device_pool!r} here (pools: {', '.join(workers.device_pools())})"
            )
        self.job_id = job_id
        self.settings = settings
        self.device_pool = device_pool
        self.workers = workers
        self.sink = sink
        self.seed = settings.seed
        self.retime = settings.retime
        self.batch_size = settings.batch_size
        self.search = settings.search
        self.spare = settings.search.spare(settings.batch_size)
        self.profile_retries = settings.profile_retries
        self.on_stall = on_stall
        self.final = final
        self._final_note: str | None = None  # set once the final stage ran
        self.check = check
        self._check_next: StageKind | None = None  # the running check's next stage
        self._check_index = 0
        self._check_folder: Path | None = None
        self._check_estimate = 0.0  # the estimate when the running check started
        self.checks: list[tuple[float, float]] = []  # (estimate, measured) seconds
        self.profiling = profiling
        # The untuned profile's next stage (None: not started or done) and the tuned one's.
        self._untuned_next: StageKind | None = None
        self._untuned_done = profiling is None or profiling.compile_untuned is None
        self._untuned_folder: Path | None = None
        self._tuned_done = profiling is None
        self.met = False  # the compiled model met the latency target
        self.target = Target(target_config(settings.target, workers.device_cores))
        self.siblings = siblings if siblings is not None else SiblingBoard()
        self.gpu = self.target.kind.name == GPU_KIND  # each task measures the default first
        load_tensor_intrinsics(self.target)  # before any TuneContext or trace replay
        self.db_dir = Path(db_dir)
        self.db_dir.mkdir(parents=True, exist_ok=True)
        self.repairs = repair_database(self.db_dir) if resume is not None else []
        self.database = LockedDatabase(
            ms.database.JSONDatabase(
                path_workload=str(self.db_dir / WORKLOAD_FILE),
                path_tuning_record=str(self.db_dir / RECORD_FILE),
            )
        )
        client_cores = len(workers.plan.client)
        self.cost_model = SharedXGBModel(
            config=ms.cost_model.xgb_model.XGBConfig(seed=self.seed, nthread=client_cores),
            num_warmup_samples=self.search.xgb_warmup_samples,
            verbose_eval=0,
        )
        reuse = self.reuse = settings.reuse
        self.allocator = settings.allocator
        searched = sum(1 for task in tasks if task.searched)
        self.total_budget, cap = settings.budgets(searched)
        # A task with fixed schedules measures them once, besides the search budget.
        self.total_budget += sum(most_fixed_schedules(task.fixed_spaces) for task in tasks)
        if settings.trials is None and settings.trials_per_task is not None:
            self.allocator = "uniform"  # the same trials for every task, as asked
        self.reuse_sources: SourceChoice | None = None
        self._reuse_entries: list[LibraryEntry] = []
        if reuse is not None:
            self._reuse_entries, self.reuse_sources = _reuse_entries(reuse, tasks, self.target)
        self._tasks = []
        for index, task in enumerate(tasks):
            budget = cap if task.searched else most_fixed_schedules(task.fixed_spaces)
            if reuse is not None and reuse.only and task.searched:
                budget = reuse.limit + 1  # until the plan says how many apply
            item = _Task(index, task.name, task, str(tvm_ffi.structural_hash(task.mod)), budget)
            if task.untunable:
                item.done, item.failed = True, task.untunable
            item.reuse_pending = reuse is not None and task.searched
            self._tasks.append(item)
        self.tasks: tuple[str, ...] = tuple(t.name for t in self._tasks)
        self._by_name = {t.name: t for t in self._tasks}
        self._infos: dict[str, WorkloadInfo | None] = {}  # what each task's workload computes
        self._deadline: float | None = None
        self._stopped_by: str | None = None  # why the job stopped searching early
        self._announced = False
        self._closed = False
        self.resume = resume
        if resume is not None:
            self._pick_up(resume)

    # --- JobDriver ---------------------------------------------------------------------------

    def ready(self, busy: frozenset[str]) -> list[Step] | None:
        """The next stage of every task in the middle of a batch, and new batches for the
        tasks the allocator picks, up to ``settings.parallel_tasks`` tasks at once; the final
        stage once every task is done; None after it."""
        if not self._announced:
            self._announce()
        steps = [
            (t.name, t.iteration, t.next_kind)
            for t in self._tasks
            if not t.done and t.name not in busy and t.next_kind != StageKind.SELECT
        ]
        searching = {t.name for t in self._tasks if not t.done and t.next_kind != StageKind.SELECT}
        if self._check_next is None and self._check_due():
            self._check_next = StageKind.BUILD
        if self._check_next is not None:
            searching.add(CHECK_TASK)
            if CHECK_TASK not in busy:
                steps.append((CHECK_TASK, self._check_index, self._check_next))
        if not self._untuned_done:
            self._untuned_next = self._untuned_next or StageKind.BUILD
            searching.add(PROFILE_TASK)
            if PROFILE_TASK not in busy:
                steps.append((PROFILE_TASK, 0, self._untuned_next))
        slots = self.settings.parallel_tasks - len(searching | busy)
        for t in self._next_batches(slots, exclude=searching | busy):
            steps.append((t.name, t.iteration, StageKind.SELECT))
        if steps or busy:
            return steps
        if not all(t.done for t in self._tasks):
            return steps  # a task is waiting for its turn (none right now)
        if self.final is not None and self._final_note is None:
            return [(self.final.task, 0, StageKind.BUILD)]
        if not self._tuned_done:
            if self._tuned_folder() is not None:
                return [(PROFILE_TASK, 1, StageKind.PROFILE)]
            self._tuned_done = True
        return None

    def _tuned_folder(self) -> Path | None:
        return self.profiling.tuned_folder() if self.profiling is not None else None

    def next_stage(self) -> Step | None:
        """The job walked one stage at a time (the first stage ``ready`` offers with nothing
        running): a task's batch is finished before another task starts one."""
        steps = self.ready(frozenset())
        return steps[0] if steps else None

    def _announce(self) -> None:
        self._announced = True
        if self.settings.time_budget_s is not None:
            started = self.resume.started_at if self.resume is not None else None
            spent = max(0.0, time.time() - started) if started is not None else 0.0
            self._deadline = time.monotonic() + self.settings.time_budget_s - spent
        for task in self._tasks:
            self._emit_task(task, stopped=task.failed if task.done else None)
        if self.profiling is not None and self.profiling.graph is not None and self.sink:
            self.sink.emit(
                GraphEvent, job=self.job_id, model=self.profiling.model, graph=self.profiling.graph
            )

    def _pick_up(self, resume: ResumeState) -> None:
        """Continue from what the job's database holds (see ``tuner.metaschedule.resume``):
        each task's trials, best and history from its records; tasks that had stopped stay
        stopped; the records the store lacks are emitted now, so both agree at once."""
        by_workload = records_by_workload(self.db_dir)
        for t in self._tasks:
            records = by_workload.get(t.workload_hash, [])
            stored = resume.stopped.get(t.name)
            if records:
                t.reuse_pending = False
                t.relearn = True
                for offset, record in enumerate(records):
                    mean = float(np.mean(record.run_secs)) if record.run_secs else None
                    if mean is not None and (t.best_s is None or mean < t.best_s):
                        t.best_s, t.best_candidate = mean, offset
                    if (offset + 1) % self.batch_size == 0 or offset + 1 == len(records):
                        t.history.append(t.best_s if t.best_s is not None else math.inf)
                        t.batch_trials.append(offset % self.batch_size + 1)
                t.trials, t.iteration = len(records), len(t.history)
                self._grown_before(t)
                already = resume.stored_records.get(t.name, 0)
                if already > len(records):
                    log.warning(
                        "job %s task %s: the store holds %d records, its database only %d",
                        self.job_id, t.name, already, len(records),
                    )  # fmt: skip
                for candidate in range(already, len(records)):  # the store catches up now
                    self._emit_recovered(t, candidate, records[candidate])
            if t.done:
                continue
            if records and t.spec.fixed_spaces:  # its one batch was measured
                t.done = True
            elif stored is not None:
                t.done, t.failed = True, stored
            elif t.trials >= t.budget:
                t.done = True

    def _grown_before(self, t: _Task) -> None:
        """After a restart: a task whose search had stalled goes on with the grown one, from
        the trial it grew at (read from its rebuilt history)."""
        if not self.search.can_grow(len(self.workers.plan.client)):
            return
        batches = first_stall(t.history)
        if batches is not None:
            t.grown, t.grown_at = True, sum(t.batch_trials[:batches])

    def _next_batches(self, slots: int, exclude: set[str] | frozenset[str]) -> list[_Task]:
        """The tasks that start a batch now: at most ``slots``, picked by the allocator among
        the idle ones, and no more than the job's budget left can fill."""
        if slots <= 0:
            return []
        if self._stopped_by is not None:  # a stop rule fired: batches under way only finish
            self._stop_searching(None, busy=exclude)
            return []
        if self._deadline is not None and time.monotonic() >= self._deadline:
            spent = duration_text(self.settings.time_budget_s)
            self._stop_searching(f"time budget of {spent} spent", busy=exclude)
            return []
        left = self.total_budget - self._used()
        if left <= 0:
            self._stop_searching(None, busy=exclude)
            return []
        idle = [t for t in self._tasks if not t.done and t.name not in exclude]
        # Fixed schedules first: one batch each, and the model's estimate needs them.
        chosen = [t for t in idle if t.spec.fixed_spaces][:slots]
        left -= sum(t.budget - t.trials for t in chosen)
        idle = [t for t in idle if not t.spec.fixed_spaces]
        progress = [self._progress(t) for t in idle]
        while idle and len(chosen) < slots and left > 0:
            name = choose_task(self.allocator, progress)
            task = self._by_name[name]  # type: ignore[index]
            chosen.append(task)
            left -= min(self.batch_size, task.budget - task.trials)
            idle.remove(task)
            progress = [p for p in progress if p.name != name]
        return chosen

    def _room(self, t: _Task) -> int:
        """Trials task ``t`` may still take: its own cap and the job's budget left."""
        return min(t.budget - t.trials, self.total_budget - self._used())

    def _used(self) -> int:
        """Trials measured or on their way (batches selected but not yet updated)."""
        return sum(t.trials + len(t.candidates) for t in self._tasks)

    def _stop_searching(self, why: str | None, busy: Collection[str]) -> None:
        """Every idle task ends: the job's budget (trials or time) is spent, or its latency
        target met. Called from ``ready``, which knows the ``busy`` tasks (a stage waiting or
        running): a busy task's select ends it when it returns (``_select``), since ending it
        here would free its search under the select."""
        for t in self._tasks:
            idle = t.next_kind == StageKind.SELECT and not t.candidates
            if not t.done and idle and t.name not in busy:
                self._end_task(t, None)
        if why and self._stopped_by is None:
            self._stopped_by = why

    def _progress(self, t: _Task) -> TaskProgress:
        return TaskProgress(
            name=t.name,
            weight=t.spec.weight,
            trials=t.trials,
            history=tuple(t.history),
            batch_trials=tuple(t.batch_trials),
            seconds_per_trial=t.seconds / t.timed_trials if t.timed_trials else None,
        )

    def run(self, task: str, iteration: int, kind: StageKind, resource: str) -> StageResult:
        if task == PROFILE_TASK and self.profiling is not None:
            if iteration == 1 and kind == StageKind.PROFILE:
                return self._run_tuned_profile(resource)
            return self._run_untuned_profile(kind, resource)
        if self.final is not None and task == self.final.task and task not in self._by_name:
            return self._run_final(resource)
        if task == CHECK_TASK and self.check is not None:
            return self._run_check(kind, resource)
        t = self._by_name.get(task)
        if t is None or t.done or t.iteration != iteration or t.next_kind != kind:
            return StageResult(ok=False, error=f"unexpected stage {kind} of {task}#{iteration}")
        if kind != StageKind.PROFILE:  # on a client, or on a device lent to client work
            pin_thread(self.workers.cores(resource))
        started = time.perf_counter()
        try:
            if kind == StageKind.SELECT:
                return self._select(t)
            if kind == StageKind.BUILD:
                return self._build(t, resource)
            if kind == StageKind.PROFILE:
                return self._profile(t, resource)
            return self._update(t)
        except DeviceLost:
            raise
        except Exception as exc:
            log.warning("%s stage of %s failed: %s: %s", kind, task, type(exc).__name__, exc)
            return self._stage_raised(t, kind, exc)
        finally:
            t.seconds += time.perf_counter() - started
            if t.done or t.next_kind != kind:  # the stage completed or ended the task
                t.stage_failures = 0

    def trials(self) -> tuple[int, int]:
        done = sum(t.trials for t in self._tasks)
        return (done, min(self.total_budget, sum(t.budget for t in self._tasks)))

    def finish_note(self) -> str | None:
        notes = [self._stopped_by, self._check_note(), self._final_note]
        return "; ".join(n for n in notes if n) or None

    # --- the latency target ---------------------------------------------------------------------

    def estimate_s(self) -> float | None:
        """The model's end-to-end estimate: each tuned task's best latency times its calls
        per run, summed (None while a task that can be tuned has no measurement yet)."""
        total = 0.0
        for t in self._tasks:
            if t.spec.untunable is not None or (t.done and t.best_s is None):
                continue
            if t.best_s is None:
                return None
            total += t.spec.weight * t.best_s
        return total

    def _check_due(self) -> bool:
        """Time to compile and time the model: the first time once every task has a
        measurement (at once for a warm start: the library's schedules may already do), then
        whenever the estimate, scaled by the last check's measured/estimated ratio, says the
        target is met and the estimate fell ``CHECK_GAIN`` below the last check's."""
        if self.check is None or self._stopped_by is not None:
            return False
        estimate = self.estimate_s()
        if estimate is None or estimate <= 0:
            return False
        if not self.checks:
            return self.reuse is not None or estimate <= self.check.target_s
        last_estimate, last_measured = self.checks[-1]
        if not math.isfinite(last_measured):
            return False  # the last check failed: no more checks
        predicted = estimate * last_measured / last_estimate
        return predicted <= self.check.target_s and estimate <= last_estimate * CHECK_GAIN

    def _run_check(self, kind: StageKind, resource: str) -> StageResult:
        """Compile the model with a snapshot of the database (build), or time it (profile)."""
        assert self.check is not None
        folder = self.db_dir / "checks" / str(self._check_index)
        try:
            if kind == StageKind.BUILD and self._check_next == StageKind.BUILD:
                pin_thread(self.workers.cores(resource))
                with self.database.lock:  # a consistent copy: no update appends meanwhile
                    self._check_estimate = self.estimate_s() or 0.0
                    folder.mkdir(parents=True, exist_ok=True)
                    for name in (WORKLOAD_FILE, RECORD_FILE):
                        shutil.copyfile(self.db_dir / name, folder / name)
                self._check_folder = self.check.compile(folder)
                self._check_next = StageKind.PROFILE
                return StageResult(ok=True)
            if kind == StageKind.PROFILE and self._check_next == StageKind.PROFILE:
                assert self._check_folder is not None
                measured = self.check.measure(self._check_folder, self.workers.cores(resource))
                self._checked(measured)
                return StageResult(ok=True, candidates=1)
        except Exception as exc:
            self._checked(math.inf)
            return StageResult(ok=False, error=f"model check failed: {one_line(exc, last=True)}")
        finally:
            if self._check_next is None:
                shutil.rmtree(folder, ignore_errors=True)
        return StageResult(ok=False, error=f"unexpected stage {kind} of {CHECK_TASK}")

    def _checked(self, measured: float) -> None:
        assert self.check is not None
        self.checks.append((self._check_estimate, measured))
        self._check_next, self._check_folder = None, None
        self._check_index += 1
        if measured <= self.check.target_s:
            self.met = True
            reused = sum(len(t.reused) for t in self._tasks)
            by = " by the library's schedules" if reused and reused >= self._used() else ""
            # The idle tasks end in the scheduler's next ``ready`` (this runs on a worker).
            self._stopped_by = self._stopped_by or (
                f"target latency met{by}: {_ms(measured)} measured "
                f"(target {_ms(self.check.target_s)})"
            )

    def _check_note(self) -> str | None:
        if self.check is None or self.met:
            return None
        measured = [m for _, m in self.checks if math.isfinite(m)]
        best = f"best measured {_ms(min(measured))}" if measured else "never measured"
        return f"target latency {_ms(self.check.target_s)} not met ({best})"

    # --- the model's per-kernel profiles -------------------------------------------------------

    def _run_untuned_profile(self, kind: StageKind, resource: str) -> StageResult:
        """Compile the untuned model (build, on a client) or profile it (on the device)."""
        assert self.profiling is not None and self.profiling.compile_untuned is not None
        if kind != self._untuned_next:
            return StageResult(ok=False, error=f"unexpected stage {kind} of {PROFILE_TASK}")
        try:
            if kind == StageKind.BUILD:
                pin_thread(self.workers.cores(resource))
                self._untuned_folder = self.profiling.compile_untuned()
                self._untuned_next = StageKind.PROFILE
                return StageResult(ok=True)
            assert self._untuned_folder is not None
            self._emit_profile(self._untuned_folder, "untuned", resource)
            self._untuned_next, self._untuned_done = None, True
            shutil.rmtree(self._untuned_folder, ignore_errors=True)
            return StageResult(ok=True, candidates=1)
        except Exception as exc:
            self._untuned_next, self._untuned_done = None, True
            error = f"untuned model profile failed: {one_line(exc, last=True)}"
            log.warning("job %s: %s", self.job_id, error)
            return StageResult(ok=False, error=error)

    def _run_tuned_profile(self, resource: str) -> StageResult:
        """Profile the compiled tuned model on the device (after the final stage)."""
        self._tuned_done = True
        folder = self._tuned_folder()
        if folder is None:
            return StageResult(ok=False, error="no compiled model to profile")
        try:
            self._emit_profile(folder, "tuned", resource)
        except Exception as exc:
            error = f"tuned model profile failed: {one_line(exc, last=True)}"
            log.warning("job %s: %s", self.job_id, error)
            return StageResult(ok=False, error=error)
        return StageResult(ok=True, candidates=1)

    def _emit_profile(self, folder: Path, variant: str, resource: str) -> None:
        assert self.profiling is not None
        fields = self.profiling.profile(folder, variant, self.workers.cores(resource))
        if self.sink is not None:
            self.sink.emit(ProfileEvent, job=self.job_id, **fields)

    def _run_final(self, resource: str) -> StageResult:
        """The job's last stage, once every task is done (see ``FinalStage``)."""
        assert self.final is not None
        pin_thread(self.workers.cores(resource))
        try:
            self._final_note = self.final.run() or ""
        except Exception as exc:
            self._final_note = f"{self.final.task} failed: {one_line(exc, last=True)}"
            log.warning("job %s: %s", self.job_id, self._final_note)
            return StageResult(ok=False, error=self._final_note)
        return StageResult(ok=True)

    def close(self, cancelled: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        self.siblings.retire(self.job_id)
        for task in self._tasks:
            for build in task.builds:
                remove_artifact(build.artifact)
            task.builds = []
            if task.ctx is not None:
                try:
                    task.ctx.post_tuning()
                except Exception as exc:  # the database stays valid either way
                    log.warning("post_tuning of %s failed: %s", task.name, exc)
                task.ctx = None

    # --- results -------------------------------------------------------------------------------

    def summary(self) -> list[TaskSummary]:
        """Per task: trials measured, best latency, whether it is done (and why it stopped)."""
        return [
            TaskSummary(
                t.name, t.trials, t.best_s, t.done, t.failed, t.spec.weight, len(t.from_siblings),
                _source_of(t.from_siblings, t.best_candidate),
            )
            for t in self._tasks
        ]  # fmt: skip

    def task_names_by_hash(self) -> dict[str, str]:
        """Task names by workload hash (to name a database's workloads in a library)."""
        return {t.workload_hash: t.name for t in self._tasks}

    def reuse_tasks(self) -> list[TaskReuseReport]:
        """Per task of a reuse job: the library schedules measured, with their latencies,
        and where the best schedule so far came from."""
        reports = []
        for t in self._tasks:
            by_candidate = {r.candidate: r for r in t.reused}
            origin = None
            if t.best_s is not None and t.best_candidate is not None:
                origin = origin_text(by_candidate, t.best_candidate)
            reports.append(
                TaskReuseReport(
                    t.name,
                    tuple((r, t.reused_secs.get(r.candidate)) for r in t.reused),
                    t.best_s,
                    origin,
                    t.reuse_note or t.failed,
                )
            )
        return reports

    # --- stages ----------------------------------------------------------------------------------

    def _select(self, t: _Task) -> StageResult:
        if self._stopped_by is not None:  # a stop rule fired after this select was offered
            self._end_task(t, None)
            return StageResult(ok=True, candidates=0)
        if t.spec.fixed_spaces:
            return self._select_fixed(t)
        if t.reuse_pending:
            t.reuse_pending = False
            result = self._select_reused(t)
            if result is not None:
                return result
        if t.ctx is None or t.grow_pending:
            growing = t.grow_pending
            try:
                self._start_task(t, grown=growing or t.grown)
            except Exception as exc:
                self._end_task(t, f"cannot start the search: {type(exc).__name__}: {exc}")
                return StageResult(ok=False, error=t.failed, candidates=0)
            if growing:
                self._emit_task(t)  # its detail says from which trial the search is wider
        if self._room(t) <= 0:  # the job's budget went to other tasks' batches meanwhile
            self._end_task(t, None)
            return StageResult(ok=True, candidates=0)
        np.random.seed(_mix(self.seed, t.name, t.iteration, "np"))
        candidates = t.ctx.generate_measure_candidates()
        if candidates and t.measured:  # measured before a restart or a new search: never again
            candidates = [
                c for c in candidates if tvm_ffi.structural_hash(c.sch.mod) not in t.measured
            ]
        if not candidates:
            self._end_task(t, None if t.trials else "the search space has no candidates")
            return StageResult(ok=True, candidates=0)
        room = self._room(t)
        if room <= 0 or self._stopped_by is not None:
            # Meanwhile the job's budget went to other tasks' batches, or a stop rule fired.
            self._end_task(t, None)
            return StageResult(ok=True, candidates=0)
        # Ahead of the search's candidates: a GPU task's default schedule in its first batch
        # (besides the batch), then its siblings' new bests (in the batch's place of the
        # search's last). Measured and recorded; the search is not told of them.
        head: list[Any] = []
        if self.gpu and t.trials == 0 and not t.measured:
            default = default_schedule(t.spec.mod, self.target)
            if default is not None:
                head.append(default)
        siblings = self._sibling_schedules(t, min(self.search.siblings, room - len(head)))
        t.batch_siblings = {
            len(head) + k: ReusedSchedule(0, s.sibling, s.method, s.refitted, sibling=True)
            for k, s in enumerate(siblings)
        }
        head.extend(s.schedule for s in siblings)
        candidates = list(candidates)[: max(1, self.batch_size - len(siblings))]
        if head:
            args_info = ms.arg_info.ArgInfo.from_prim_func(_prim_func(t.spec.mod))
            candidates = [ms.MeasureCandidate(sch, args_info) for sch in head] + candidates
            t.injected = len(head)
        candidates = candidates[:room]
        return _begin_batch(t, candidates, self._predict(t, candidates))

    def _sibling_schedules(self, t: _Task, limit: int) -> list[SiblingSchedule]:
        """The new bests of ``t``'s siblings (the other tasks of its op class on the board:
        the job's, or every running job's) applied to it, at most ``limit``
        (``tuner.metaschedule.siblings``)."""
        info = self._workload_info(t) if limit > 0 else None
        if info is None:
            return []
        on_offer = self.siblings.bests(self.job_id, t.name, str(self.target), info.op_class)
        bests = [best for best in on_offer if best.key not in t.siblings_offered]
        t.siblings_offered.update(best.key for best in bests)
        return sibling_schedules(
            t.spec.mod, info, bests, self.target, limit=limit, folder=str(self.db_dir),
            known=t.measured,
        )  # fmt: skip

    def _publish_best(self, t: _Task) -> None:
        """Put ``t``'s best on the sibling board, for the other tasks of its op class."""
        if self.search.siblings <= 0 or t.best_candidate is None or t.best_s is None:
            return
        info = self._workload_info(t)
        top = self.database.get_top_k(t.workload, 1) if t.workload is not None else []
        if info is None or not top:
            return
        trace = json.loads(trace_json_text(top[0].trace))
        best = SiblingBest(
            t.name, t.best_candidate, t.spec.mod, info, t.workload_hash, t.best_s, t.trials, trace
        )
        self.siblings.publish(self.job_id, str(self.target), best)

    def _workload_info(self, t: _Task) -> WorkloadInfo | None:
        """What ``t``'s workload computes (op class, shapes; cached), None where it cannot
        be read: such a task neither offers nor takes sibling schedules."""
        if t.name not in self._infos:
            try:
                self._infos[t.name] = describe_workload(t.spec.mod)
            except Exception as exc:
                log.info("task %s: no sibling schedules (%s)", t.name, one_line(exc, last=True))
                self._infos[t.name] = None
        return self._infos[t.name]

    def _select_fixed(self, t: _Task) -> StageResult:
        """The one batch of a task whose design spaces hold no decision (``fixed_schedules``):
        each space post-processed, one vector loop and the unscheduled function, so that the
        database keeps whichever runs fastest. On a GPU the schedule
        TVM gives it untuned (DLight's) comes first, as for searched tasks."""
        schedules = fixed_schedules(t.spec.mod, self.target, t.name, cpu=not self.gpu)
        default = default_schedule(t.spec.mod, self.target) if self.gpu else None
        if default is not None:
            schedules.insert(0, default)
        t.workload = self.database.commit_workload(t.spec.mod)
        args_info = ms.arg_info.ArgInfo.from_prim_func(_prim_func(t.spec.mod))
        t.budget = t.trials + len(schedules)
        return _begin_batch(t, [ms.MeasureCandidate(sch, args_info) for sch in schedules])

    def _select_reused(self, t: _Task) -> StageResult | None:
        """The task's first batch from the library (see ``ReuseSettings``); None when nothing
        applies and the search should select instead."""
        assert self.reuse is not None
        plan = plan_reuse(
            [t.spec], self._reuse_entries, self.target, limit=self.reuse.limit, build=False
        )[0]
        t.reuse_note = plan.message
        sources: list[tuple[Any, ReusedSchedule]] = [
            (a.schedule, ReusedSchedule(0, a.entry.label, a.method or "", a.refitted))
            for a in plan.candidates
        ]
        if self.reuse.only:
            from tvm.s_tir import Schedule

            sources.append((Schedule(t.spec.mod), ReusedSchedule(0, "", UNTUNED)))
            t.budget = t.trials + len(sources)
        sources = sources[: max(0, t.budget - t.trials)]
        if not sources:
            return None
        if self.reuse.only:
            t.workload = self.database.commit_workload(t.spec.mod)
        else:
            self._start_task(t)  # the cost model learns from the reused batch too
        args_info = ms.arg_info.ArgInfo.from_prim_func(_prim_func(t.spec.mod))
        t.batch_reused = {
            offset: replace(origin, candidate=t.trials + offset)
            for offset, (_, origin) in enumerate(sources)
        }
        return _begin_batch(t, [ms.MeasureCandidate(sch, args_info) for sch, _ in sources])

    def _build(self, t: _Task, resource: str) -> StageResult:
        builder = self.workers.builder(resource)
        t.builds = builder.build([c.sch.mod for c in t.candidates], self.target)
        t.runs = [None] * len(t.candidates)
        t.next_kind = StageKind.PROFILE
        failed = sum(1 for b in t.builds if b.error)
        return StageResult(ok=True, candidates=len(t.candidates) - failed)

    def _profile(self, t: _Task, resource: str) -> StageResult:
        profiler = self.workers.profiler(resource)
        if t.confirm_pending:
            return self._confirm_quietly(t, profiler)
        todo = [i for i, b in enumerate(t.builds) if b.artifact and t.runs[i] is None]
        if isinstance(profiler, RPCProfiler) and t.profile_failures:
            reason = profiler.wait_for_server()
            if reason is not None:
                return self._profile_failed(t, reason, 0)
        batch = profiler.profile(
            [t.builds[i].artifact for i in todo],  # type: ignore[misc]
            [[a.as_json() for a in t.candidates[i].args_info] for i in todo],
        )
        measured = 0
        for i, outcome in zip(todo, batch.outcomes, strict=True):
            if outcome is not None:
                t.runs[i] = outcome
                measured += 1
        if batch.unavailable is not None:
            return self._profile_failed(t, f"{resource}: {batch.unavailable}", measured)
        if self.retime == "quiet" and times_host_cpu(profiler):
            would_be_best = candidate_to_confirm(_means(t.runs), t.best_s, (), CONFIRM_MARGIN)
            t.confirm_pending = would_be_best is not None
            if t.confirm_pending:
                return StageResult(ok=True, candidates=measured)  # a quiet profile follows
        elif self.retime != "off":  # timed again here, the record holding both timings
            self._time_again(t, profiler, margin=0.0, keep_first=True)
        t.next_kind = StageKind.UPDATE
        return StageResult(ok=True, candidates=measured)

    def wants_quiet(self, task: str) -> bool:
        t = self._by_name.get(task)
        return t is not None and t.confirm_pending

    def _confirm_quietly(self, t: _Task, profiler: LocalProfiler | RPCProfiler) -> StageResult:
        """The quiet profile: the batch's would-be bests, and those within ``CONFIRM_MARGIN``
        of the best so far, timed again; each record keeps that timing alone, or the median
        of three where it disagrees with the batch's (``_time_again``)."""
        timed = self._time_again(t, profiler, margin=CONFIRM_MARGIN, keep_first=False)
        t.confirm_pending = False
        t.next_kind = StageKind.UPDATE
        return StageResult(ok=True, candidates=timed)

    def _time_again(
        self, t: _Task, profiler: LocalProfiler | RPCProfiler, *, margin: float, keep_first: bool
    ) -> int:
        """Time the batch's would-be bests once more, fastest first, at most ``CONFIRMATIONS``
        (``candidate_to_confirm`` with ``margin``), so that no best stands on one disturbed or
        lucky profile: each record then holds the first timing and the second with
        ``keep_first``; else the second, or where the two disagree (``timings_disagree``)
        the median of them and a third (a failed timing changes nothing). Returns how many
        candidates were timed."""
        confirmed: set[int] = set()
        for _ in range(CONFIRMATIONS):
            i = candidate_to_confirm(_means(t.runs), t.best_s, confirmed, margin)
            if i is None:
                break
            confirmed.add(i)
            first, again = t.runs[i], self._time_once(t, i, profiler)
            if again is None or first is None or not first.run_secs:
                continue  # the first timing stands
            if keep_first:
                t.runs[i] = RunOutcome(first.run_secs + again)
            elif timings_disagree(float(np.mean(first.run_secs)), float(np.mean(again))):
                third = self._time_once(t, i, profiler)
                settled = median_timing([first.run_secs, again, third]) if third else again
                t.runs[i] = RunOutcome(tuple(settled))
            else:
                t.runs[i] = RunOutcome(again)
        return len(confirmed)

    def _time_once(
        self, t: _Task, i: int, profiler: LocalProfiler | RPCProfiler
    ) -> tuple[float, ...] | None:
        """Candidate ``i`` of the batch timed once more: its run seconds (None: it failed)."""
        outcome = profiler.profile(
            [t.builds[i].artifact], [[a.as_json() for a in t.candidates[i].args_info]]
        ).outcomes[0]
        return tuple(outcome.run_secs) if outcome is not None and outcome.run_secs else None

    def _stage_raised(self, t: _Task, kind: StageKind, exc: Exception) -> StageResult:
        """A stage raised: retry it, or stop the task after ``STAGE_ATTEMPTS`` in a row."""
        t.stage_failures += 1
        error = f"{type(exc).__name__}: {exc}"
        if t.stage_failures < STAGE_ATTEMPTS:
            return StageResult(ok=False, error=f"{error} (will retry)")
        self._end_task(t, f"{kind} failed {t.stage_failures} times in a row: {error}")
        return StageResult(ok=False, error=f"{error} (task stopped)")

    def _profile_failed(self, t: _Task, reason: str, measured: int) -> StageResult:
        t.profile_failures += 1
        if t.profile_failures <= self.profile_retries:
            return StageResult(ok=False, error=f"{reason} (will retry)", candidates=measured)
        t.profile_failures = 0
        attempts = self.profile_retries + 1
        message = f"device pool {self.device_pool} unavailable after {attempts} attempts: {reason}"
        if self.on_stall is None:
            raise DeviceLost(message)
        self.on_stall(self.job_id, message)
        return StageResult(ok=False, error=f"{message} (job stalled)", candidates=measured)

    def _update(self, t: _Task) -> StageResult:
        results: list[Any] = []
        outcomes: list[RunOutcome] = []
        for build, run in zip(t.builds, t.runs, strict=True):
            if build.error is not None:
                outcome = RunOutcome(None, build.error, "build")
            else:
                outcome = run or RunOutcome(None, "not measured", "other")
            outcomes.append(outcome)
            results.append(
                ms.runner.RunnerResult(
                    list(outcome.run_secs) if outcome.run_secs else None, outcome.error
                )
            )
        errors = []
        # The search proposed this batch (not the library, nor a task's fixed schedules).
        searched = not t.batch_reused and t.ctx is not None
        if searched:
            try:
                skip = t.injected
                t.ctx.notify_runner_results(t.candidates[skip:], results[skip:])
            except Exception as exc:
                errors.append(f"notify: {exc}")
        with self.database.lock:  # the batch joins the database whole
            for cand, outcome in zip(t.candidates, outcomes, strict=True):
                run_secs = list(outcome.run_secs) if outcome.run_secs else [FAILED_RUN_SECS]
                self.database.commit_tuning_record(
                    ms.database.TuningRecord(
                        cand.sch.trace, t.workload, run_secs, self.target, cand.args_info
                    )
                )
            sync_file(self.db_dir / RECORD_FILE)  # on disk before the store hears of them
        ok = [(c, r) for c, r, o in zip(t.candidates, results, outcomes, strict=True) if o.run_secs]
        if t.ctx is not None:
            try:
                self.cost_model.update(t.ctx, [c for c, _ in ok], [r for _, r in ok])
            except Exception as exc:
                errors.append(f"cost model update: {exc}")
        first = t.trials
        for offset, (cand, outcome, predicted) in enumerate(
            zip(t.candidates, outcomes, t.predicted, strict=True)
        ):
            mean = float(np.mean(outcome.run_secs)) if outcome.run_secs else None
            if mean is not None and (t.best_s is None or mean < t.best_s):
                t.best_s, t.best_candidate = mean, first + offset
            if offset in t.batch_reused:
                t.reused_secs[first + offset] = mean
            if offset in t.batch_siblings:
                t.from_siblings[first + offset] = replace(
                    t.batch_siblings[offset], candidate=first + offset
                )
            self._emit_record(t, first + offset, cand, outcome, predicted)
        for build in t.builds:
            remove_artifact(build.artifact)
        count = len(t.candidates)
        t.trials += count
        t.timed_trials += count
        t.iteration += 1
        t.history.append(t.best_s if t.best_s is not None else math.inf)
        t.batch_trials.append(count)
        if searched and not t.grown:
            # A new search does not know what this one measured: the driver filters it.
            t.measured.update(tvm_ffi.structural_hash(c.sch.mod) for c in t.candidates)
            grow = self.search.can_grow(len(self.workers.plan.client))
            t.grow_pending = grow and stalled(t.history)
        t.candidates, t.predicted, t.builds, t.runs = [], [], [], []
        t.injected = 0
        t.batch_siblings = {}
        if t.best_candidate is not None and t.best_candidate >= first:
            self._publish_best(t)
        t.next_kind = StageKind.SELECT
        if not searched:
            t.reused.extend(t.batch_reused.values())
            t.batch_reused = {}
            self._emit_task(t)  # now naming the records that came from the library
        elif t.best_candidate in t.from_siblings and t.best_candidate >= first:
            self._emit_task(t)  # its new best came from a sibling: the detail says which
        if t.trials >= t.budget:
            self._end_task(t, None)
        elif self.allocator == "gain":
            why = stop_reason(self._progress(t), [self._progress(x) for x in self._tasks])
            if why is not None:
                self._end_task(t, why)
        if errors:
            return StageResult(ok=False, error="; ".join(errors), candidates=count)
        return StageResult(ok=True, candidates=count)

    # --- helpers -----------------------------------------------------------------------------

    def _start_task(self, t: _Task, *, grown: bool = False) -> None:
        """A new search of task ``t`` (``grown``: with the population of a stalled search)."""
        threads = len(self.workers.plan.client)
        if grown and not t.grown:
            t.grown_at = t.trials
            log.info("job %s task %s: the search stalled, population now %d", self.job_id,
                     t.name, self.search.population(threads, grown=True))  # fmt: skip
        t.grow_pending, t.grown = False, grown
        # The driver drops what this search proposes that was measured already: a grown
        # search, or one started again after a restart (``_relearn`` fills ``measured``).
        filtered = bool(t.measured) or t.relearn
        ctx = ms.TuneContext(
            t.spec.mod,
            target=self.target,
            space_generator=space_generator(self.target),
            search_strategy=self.search.strategy(threads, grown=grown),
            task_name=t.name,
            rand_state=1 + _mix(self.seed, t.name, "ctx") % (2**31 - 2),
            num_threads=threads,
            logger=logging.getLogger(f"{__name__}.search"),
        )
        ctx.pre_tuning(
            max_trials=1 << 30,  # the driver enforces the budget itself
            num_trials_per_iter=search_batch(self.batch_size, self.spare, filtered=filtered),
            design_spaces=ctx.generate_design_space(),
            database=self.database,
            cost_model=self.cost_model,
        )
        t.ctx = ctx
        t.workload = self.database.commit_workload(t.spec.mod)
        if t.relearn:
            t.relearn = False
            self._relearn(t)
            self._publish_best(t)  # its best from before a restart

    def _relearn(self, t: _Task) -> None:
        """After a restart: the cost model learns from the task's records in the database
        (MetaSchedule's search already starts from their best), and what they measured is
        never proposed again."""
        candidates, results = [], []
        hashes: dict[Any, str] = {}  # per workload object: records share a few
        for record in self.database.get_all_tuning_records():
            workload = record.workload
            if workload not in hashes:
                hashes[workload] = str(tvm_ffi.structural_hash(workload.mod))
            if hashes[workload] != t.workload_hash:
                continue
            candidate = record.as_measure_candidate()
            t.measured.add(tvm_ffi.structural_hash(candidate.sch.mod))
            secs = [float(x) for x in record.run_secs or ()]
            if secs and float(np.mean(secs)) < FAILED_RUN_SECS / 10:
                candidates.append(candidate)
                results.append(ms.runner.RunnerResult(secs, None))
        if candidates:
            self.cost_model.update(t.ctx, candidates, results)

    def _end_task(self, t: _Task, failed: str | None) -> None:
        t.done = True
        t.failed = failed
        t.next_kind = StageKind.SELECT
        t.confirm_pending = False
        for build in t.builds:
            remove_artifact(build.artifact)
        t.candidates, t.predicted, t.builds, t.runs = [], [], [], []
        if t.ctx is not None:
            try:
                t.ctx.post_tuning()
            except Exception as exc:
                log.warning("post_tuning of %s failed: %s", t.name, exc)
            t.ctx = None
        if failed is not None:
            self._emit_task(t, stopped=failed)
        elif t.from_siblings:
            self._emit_task(t)  # its detail names every sibling's schedule it measured

    def _predict(self, t: _Task, candidates: list[Any]) -> list[float | None]:
        model = self.cost_model
        if model.booster is None or model.data_size < model.num_warmup_samples:
            return [None] * len(candidates)  # untrained: MetaSchedule would return noise
        try:
            scores = model.predict(t.ctx, candidates)
        except Exception as exc:
            log.warning("cost model prediction failed: %s", exc)
            return [None] * len(candidates)
        return [float(s) if np.isfinite(s) else None for s in scores]

    def _emit_task(self, t: _Task, stopped: str | None = None) -> None:
        if self.sink is None:
            return
        detail = [f"{DETAIL_DATABASE_PREFIX}{self.db_dir.resolve()}", *t.spec.detail]
        if t.reuse_note:
            detail.append(f"reuse_note={t.reuse_note}")
        if t.grown_at is not None:
            threads = len(self.workers.plan.client)
            detail.append(
                f"search=population {self.search.population(threads, grown=True)} from trial "
                f"{t.grown_at}: population {self.search.population(threads)} stalled"
            )
        detail.extend(r.detail_line() for r in t.reused)
        detail.extend(r.detail_line() for r in t.from_siblings.values())
        if t.spec.fixed_spaces:
            detail.append(f"schedules={FIXED_DETAIL}")
        stopped = stopped or t.spec.untunable
        if stopped:
            detail.append(f"stopped={stopped}")
        with _kept_in_database():
            self.sink.emit(
                TaskEvent,
                job=self.job_id,
                task=t.name,
                op=t.spec.op,
                shapes=t.spec.shapes,
                dtype=t.spec.dtype,
                weight=t.spec.weight,
                flops=t.spec.flops,
                workload_hash=t.workload_hash,
                tunable=t.spec.untunable is None and (t.failed is None or t.trials > 0),
                detail="\n".join(detail),
            )

    def _emit_recovered(self, t: _Task, candidate: int, record: DatabaseRecord) -> None:
        """A record the database holds and the store missed (the process stopped between)."""
        failed = record.run_secs is None
        self._emit_record_event(
            t, candidate, candidate // self.batch_size, record.trace_text, record.run_secs,
            RECOVERED_ERROR if failed else None, "other" if failed else None, None,
        )  # fmt: skip

    def _emit_record(
        self, t: _Task, candidate: int, cand: Any, outcome: RunOutcome, predicted: float | None
    ) -> None:
        self._emit_record_event(
            t, candidate, t.iteration, trace_json_text(cand.sch.trace), outcome.run_secs,
            outcome.error, outcome.error_class, predicted,
        )  # fmt: skip

    def _emit_record_event(
        self,
        t: _Task,
        candidate: int,
        iteration: int,
        trace: str,
        run_secs: Any,
        error: str | None,
        error_class: str | None,
        predicted: float | None,
    ) -> None:
        if self.sink is None:
            return
        with _kept_in_database():
            self.sink.emit(
                RecordEvent,
                job=self.job_id,
                task=t.name,
                candidate=candidate,
                iteration=iteration,
                workload_hash=t.workload_hash,
                trace=trace,
                run_secs=run_secs,
                error=error,
                error_class=error_class,
                predicted=predicted,
                origin="metaschedule",
            )


@contextlib.contextmanager
def _kept_in_database() -> Iterator[None]:
    """A store that refuses a write loses nothing: the database holds the records, and a
    restart puts them in the store (``tuner.metaschedule.resume``); the scheduler halts."""
    try:
        yield
    except StoreWriteError as exc:
        log.error("%s", exc)


def _reuse_entries(
    reuse: ReuseSettings, tasks: Sequence[TuningTask], target: Target
) -> tuple[list[LibraryEntry], SourceChoice | None]:
    """The library entries a reuse job draws from: those of the named sources, or of the
    sources ``choose_sources`` picks for the job's tasks."""
    entries = reuse.library.entries()
    if reuse.sources is not None:
        where = f" {reuse.library.folder}"
        return entries_of_sources(entries, reuse.sources, where), None
    choice = choose_sources(tasks, entries, target=target, max_sources=reuse.max_sources)
    if not choice.chosen:  # nothing fits: every entry stays, so each task can say why
        return entries, choice
    names = set(choice.names)
    return [e for e in entries if e.origin in names], choice


def _begin_batch(
    t: _Task, candidates: list[Any], predicted: list[float | None] | None = None
) -> StageResult:
    """Task ``t``'s next batch is ``candidates`` (with the cost model's ``predicted``
    scores, None: not predicted): its build comes next."""
    t.candidates = candidates
    t.predicted = predicted if predicted is not None else [None] * len(candidates)
    t.builds, t.runs = [], []
    t.profile_failures = 0
    t.next_kind = StageKind.BUILD
    return StageResult(ok=True, candidates=len(candidates))


def _source_of(found: dict[int, ReusedSchedule], candidate: int | None) -> str | None:
    """The task a candidate's schedule came from, if it came from another task."""
    schedule = found.get(candidate) if candidate is not None else None
    return schedule.source if schedule is not None else None


def _prim_func(mod: Any) -> Any:
    """A task module's one PrimFunc."""
    funcs = list(mod.functions.values())
    if len(funcs) != 1:
        raise TunerError(f"a task's module holds {len(funcs)} functions, expected one")
    return funcs[0]


def candidate_to_confirm(
    means: Sequence[float | None],
    best_s: float | None,
    confirmed: Collection[int],
    margin: float = 0.0,
) -> int | None:
    """The batch's fastest candidate not yet timed twice (by mean; ``None``: not measured)
    when it beats the task's best so far (``best_s``) and every candidate of the batch timed
    twice, or comes within ``margin`` (a fraction) of the fastest of those; else None."""
    measured = [(mean, i) for i, mean in enumerate(means) if mean is not None]
    timed_twice = [mean for mean, i in measured if i in confirmed]
    bar = min([*timed_twice, math.inf if best_s is None else best_s])
    waiting = [(mean, i) for mean, i in measured if i not in confirmed]
    if not waiting:
        return None
    mean, i = min(waiting)
    return i if mean < bar * (1.0 + margin) else None


def _means(runs: Sequence[RunOutcome | None]) -> list[float | None]:
    """Each run's mean latency (None: not measured)."""
    return [float(np.mean(r.run_secs)) if r and r.run_secs else None for r in runs]


def job_tasks(workloads: Sequence[WorkloadSpec | str | TuningTask]) -> list[TuningTask]:
    """A job's tasks from spec strings, parsed specs and ready-made tasks, in order; spec
    tasks are named by their canonical spec (``#2`` for repeats)."""
    tasks: list[TuningTask] = []
    specs: list[WorkloadSpec] = []

    def flush() -> None:
        tasks.extend(workload_tasks(specs))
        specs.clear()

    for item in workloads:
        if isinstance(item, TuningTask):
            flush()
            tasks.append(item)
        else:
            specs.extend(parse_job_workloads(item) if isinstance(item, str) else [item])
    flush()
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise TunerError(f"task names repeat within the job: {', '.join(repeated)}")
    return tasks


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4g} ms"


def _mix(*parts: Any) -> int:
    """A stable 32-bit seed from the parts."""
    return zlib.crc32(":".join(map(str, parts)).encode())
