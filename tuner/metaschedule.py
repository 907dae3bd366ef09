"""The MetaSchedule adapter: a job's tuning as select/build/profile/update stages.

``MetaScheduleDriver`` (one per job) walks select -> build -> profile -> update for one task
iteration at a time, round-robin over the job's tasks, until each task has its trial budget
or its search ends:

- select: ``TuneContext.generate_measure_candidates`` (evolutionary search guided by the
  job's XGBoost cost model), truncated to the trials left; the cost model's predicted score
  is kept for each candidate once the model has been trained.
- build: the client resource's long-lived build pool (``tuner.metaschedule_build``).
- profile: the device resource's profiler (``tuner.metaschedule_run``): a pinned local
  worker for ``device:llvm:N``, tracker sessions for ``device:rpc:KEY:N``. When the device
  cannot be reached the stage fails and is retried (on whichever resource of the pool the
  scheduler picks); after ``profile_retries`` retries the job is stalled: ``on_stall`` is
  called (e.g. to pause the job) or, without one, the stage raises so the job fails with the
  reason.
- update: ``notify_runner_results``, a tuning record per candidate committed to the job's
  ``JSONDatabase`` (failed ones with run_secs [1e10], as MetaSchedule does), the cost model
  update, ``record`` events, and removal of the built libraries.

Reuse (``ReuseSettings``, see ``tuner.metaschedule_reuse``): a job started from a schedule
library first selects, per task, the library's schedules applied to the task instead of
searching; they are built, profiled and committed like any batch (the cost model learns from
them), and the task event's detail then names each such record (``collectors.reuse``). A
warm-started task's search continues from them (MetaSchedule's evolutionary search seeds its
population with the database's best records); a reuse-only task also measures its untuned
workload as the fallback and stops there. A finished job's database can join a library.

Each job has its own ``JSONDatabase`` in ``db_dir`` (``database_workload.json`` and
``database_tuning_record.json``, MetaSchedule's own format: ``ms.tir_integration.compile_tir``
and ``compile_relax`` read it directly) and one ``XGBModel`` shared by its tasks. Every
TVM tuning import of the project lives in ``tuner/metaschedule*.py``.

Events: a ``task`` event per task when the job first asks for a stage (``detail`` lines
``metaschedule_database=<dir>`` and ``spec=<spec>``, plus ``stopped=<why>`` in a second
event if its search ends early), a ``record`` event per measured candidate. A
record's ``trace`` is the trace in MetaSchedule's JSON form (``[instructions, decisions]``, as
in ``database_tuning_record.json``): ``Trace.apply_json_to_schedule`` replays it on the
workload, found in the job's database by ``workload_hash`` (``tuner.metaschedule_inspect``
renders it as Python lines, TIR and code).

Runs are reproducible for a seed up to measurement noise: the search's random state and
numpy's (which MetaSchedule's untrained cost model draws from) are seeded per task and
iteration.
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import tvm
import tvm_ffi
from tvm.s_tir import meta_schedule as ms
from tvm.target import Target

from collectors.events import RecordEvent, TaskEvent
from collectors.reuse import UNTUNED, ReusedSchedule, origin_text
from collectors.sink import EventSink
from tuner._base import JobDriver, JobSpec, StageKind, StageResult, TunerError
from tuner.cpus import CpuPlan, available_cpus, pin_thread, plan_cpus
from tuner.metaschedule_build import BuildOutcome, BuildPool, remove_artifact
from tuner.metaschedule_library import AddSummary, LibraryEntry, LibraryError, ScheduleLibrary
from tuner.metaschedule_reuse import (
    ReuseSettings,
    SourceChoice,
    choose_sources,
    entries_of_sources,
    plan_reuse,
)
from tuner.metaschedule_run import EvalConfig, LocalProfiler, RPCProfiler, RunOutcome
from tuner.rpc import RpcPool
from tuner.tasks import TuningTask, workload_tasks
from tuner.workloads import WorkloadSpec, parse_job_workloads

log = logging.getLogger(__name__)

DB_WORKLOAD = "database_workload.json"
DB_RECORDS = "database_tuning_record.json"
# Task event detail line naming the job's database (the convention the best-db export reads).
DETAIL_DATABASE = "metaschedule_database="
FAILED_RUN_SECS = 1e10  # what MetaSchedule commits for a candidate without a measurement
STAGE_ATTEMPTS = 3  # a stage that raises this many times in a row stops its task
LOCAL_POOL = "device:llvm"
TARGET_KINDS = ("llvm",)


class DeviceLost(RuntimeError):
    """The job's device pool stayed unreachable through every profile retry."""


# --- targets ------------------------------------------------------------------------------


def host_cpu() -> str:
    """This machine's CPU name as LLVM knows it (``generic`` if LLVM cannot tell)."""
    codegen = tvm.target.codegen
    name = str(codegen.llvm_get_system_cpu())
    valid = name and codegen.llvm_is_valid_cpu(name, str(codegen.llvm_get_system_triple()))
    return name if valid else "generic"


def target_config(text: str | Mapping[str, Any], num_cores: int) -> dict[str, Any]:
    """A target dict from ``llvm`` or a JSON object, with ``mcpu`` and ``num-cores`` filled in.

    ``mcpu`` "native" or missing becomes the host CPU; ``num-cores`` defaults to the device's
    core count so kernels do not oversubscribe a pinned device. Raises TunerError for a kind
    other than llvm or unreadable JSON.
    """
    if isinstance(text, Mapping):
        config = dict(text)
    else:
        spec = (text or "").strip()
        if spec.startswith("{"):
            try:
                config = json.loads(spec)
            except json.JSONDecodeError as exc:
                raise TunerError(f"bad target {spec!r}: not valid JSON ({exc.msg})") from None
            if not isinstance(config, dict):
                raise TunerError(f"bad target {spec!r}: expected a JSON object")
        else:
            config = {"kind": spec}
    kind = config.get("kind")
    if kind not in TARGET_KINDS:
        raise TunerError(
            f"unknown target {kind!r}: supported kinds are {', '.join(TARGET_KINDS)} "
            '(a name, or a JSON object like {"kind": "llvm", "mcpu": "skylake"})'
        )
    if config.get("mcpu") in (None, "", "native"):
        config["mcpu"] = host_cpu()
    config.setdefault("num-cores", num_cores)
    if not isinstance(config["num-cores"], int) or config["num-cores"] < 1:
        raise TunerError(
            f"target num-cores must be a positive integer, got {config['num-cores']!r}"
        )
    try:
        Target(config)
    except Exception as exc:
        raise TunerError(f"bad target {config}: {str(exc).splitlines()[-1]}") from None
    return config


def split_job_target(target: str) -> tuple[str, str]:
    """A JobSpec target -> (device pool, codegen target): ``llvm`` profiles on the local
    pinned device (``device:llvm``); ``rpc:KEY`` builds for llvm and profiles on the RPC pool
    ``device:rpc:KEY``."""
    if target.startswith("rpc:") and target[4:]:
        return f"device:{target}", "llvm"
    return LOCAL_POOL, target


# --- workers shared by every job -------------------------------------------------------------


class StageWorkers:
    """The long-lived build and profile workers, one set per resource, shared by all jobs.

    ``client:N`` -> a build pool pinned to the plan's client cores; ``device:llvm:N`` -> a
    profiler pinned to the plan's device N cores; ``device:rpc:KEY:N`` -> an RPC profiler for
    the pool with that key. Workers start on first use (or all at once with ``start``).
    """

    def __init__(
        self,
        *,
        clients: int = 1,
        local_devices: int = 1,
        rpc_pools: Mapping[RpcPool, int] | None = None,
        plan: CpuPlan | None = None,
        build_timeout_s: float = 30.0,
        run_timeout_s: float = 10.0,
        evaluator: EvalConfig | None = None,
        build_workers: int | None = None,
    ) -> None:
        if clients < 1:
            raise TunerError(f"need at least one client resource, got {clients}")
        self.plan = plan or plan_cpus(available_cpus(), devices=local_devices)
        if len(self.plan.devices) < local_devices:
            raise TunerError(
                f"the CPU plan has {len(self.plan.devices)} devices, need {local_devices}"
            )
        self.build_timeout_s = build_timeout_s
        self.run_timeout_s = run_timeout_s
        self.evaluator = evaluator or EvalConfig()
        self.build_workers = build_workers
        self.rpc_pools = dict(rpc_pools or {})
        names = [f"client:{i}" for i in range(clients)]
        names += [f"{LOCAL_POOL}:{i}" for i in range(local_devices)]
        for pool, servers in self.rpc_pools.items():
            names += pool.resources(servers)
        self.resources: tuple[str, ...] = tuple(names)
        self._builders: dict[str, BuildPool] = {}
        self._profilers: dict[str, LocalProfiler | RPCProfiler] = {}
        self._lock = threading.Lock()

    @property
    def device_cores(self) -> int:
        """Cores of one local device: the ``num-cores`` kernels are built for unless the
        target says otherwise (without local devices, the client's core count; give RPC
        servers on other machines their own ``num-cores`` in the target)."""
        return len(self.plan.devices[0]) if self.plan.devices else len(self.plan.client)

    def device_pools(self) -> list[str]:
        pools = [LOCAL_POOL] if any(r.startswith(LOCAL_POOL + ":") for r in self.resources) else []
        return pools + [pool.pool for pool in self.rpc_pools]

    def builder(self, resource: str) -> BuildPool:
        with self._lock:
            pool = self._builders.get(resource)
            if pool is None:
                if resource not in self.resources or not resource.startswith("client:"):
                    raise TunerError(f"no client resource {resource!r} here")
                pool = BuildPool(
                    self.plan.client, workers=self.build_workers, timeout_s=self.build_timeout_s
                )
                self._builders[resource] = pool
            return pool

    def profiler(self, resource: str) -> LocalProfiler | RPCProfiler:
        with self._lock:
            profiler = self._profilers.get(resource)
            if profiler is None:
                profiler = self._new_profiler(resource)
                self._profilers[resource] = profiler
            return profiler

    def start(self) -> None:
        """Start every worker now, while this process imports MetaSchedule's tensor
        intrinsics (what the first TuneContext would import), so that the first stages do
        not pay for start-up."""
        starters = [self.builder(r).start for r in self.resources if r.startswith("client:")]
        starters += [
            self.profiler(r).start for r in self.resources if r.startswith(LOCAL_POOL + ":")
        ]
        with ThreadPoolExecutor(max(1, len(starters))) as pool:
            futures = [pool.submit(start) for start in starters]
            import tvm.s_tir.tensor_intrin  # noqa: F401

            for future in futures:
                future.result()

    def close(self) -> None:
        """Stop every worker process."""
        with self._lock:
            builders, self._builders = self._builders, {}
            profilers, self._profilers = self._profilers, {}
        for builder in builders.values():
            builder.close()
        for profiler in profilers.values():
            profiler.close()

    def __enter__(self) -> StageWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _new_profiler(self, resource: str) -> LocalProfiler | RPCProfiler:
        if resource not in self.resources:
            raise TunerError(f"no device resource {resource!r} here")
        if resource.startswith(LOCAL_POOL + ":"):
            index = int(resource.rpartition(":")[2])
            return LocalProfiler(
                self.plan.devices[index],
                evaluator=self.evaluator,
                timeout_s=self.run_timeout_s,
                name=resource,
            )
        for pool in self.rpc_pools:
            if resource.startswith(pool.pool + ":"):
                return RPCProfiler(
                    pool.host,
                    pool.port,
                    pool.key,
                    evaluator=self.evaluator,
                    timeout_s=self.run_timeout_s,
                    name=resource,
                )
        raise TunerError(f"no device resource {resource!r} here")


# --- the driver ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """Evolutionary search and cost model settings (MetaSchedule's defaults, except the
    XGBoost warm-up, which is lowered so small jobs get predictions)."""

    population_size: int = 512
    init_measured_ratio: float = 0.2
    init_min_unmeasured: int = 50
    genetic_num_iters: int = 4
    genetic_mutate_prob: float = 0.85
    max_fail_count: int = 5
    eps_greedy: float = 0.05
    xgb_warmup_samples: int = 32

    def strategy(self) -> ms.search_strategy.EvolutionarySearch:
        return ms.search_strategy.EvolutionarySearch(
            population_size=self.population_size,
            init_measured_ratio=self.init_measured_ratio,
            init_min_unmeasured=self.init_min_unmeasured,
            genetic_num_iters=self.genetic_num_iters,
            genetic_mutate_prob=self.genetic_mutate_prob,
            max_fail_count=self.max_fail_count,
            eps_greedy=self.eps_greedy,
        )


# A test and demo sized search: ~0.4 s per select of 8 candidates on one core.
SMALL_SEARCH = SearchConfig(population_size=64, init_min_unmeasured=16)


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
    # The batch in flight.
    next_kind: StageKind = StageKind.SELECT
    candidates: list[Any] = field(default_factory=list)
    predicted: list[float | None] = field(default_factory=list)
    builds: list[BuildOutcome] = field(default_factory=list)
    runs: list[RunOutcome | None] = field(default_factory=list)
    profile_failures: int = 0
    stage_failures: int = 0  # stages in a row that raised
    # Tuning reuse: library schedules still to measure first, those measured (for the task
    # event's detail), the batch's (offset -> schedule origin), and why nothing applied.
    reuse_pending: bool = False
    reused: list[ReusedSchedule] = field(default_factory=list)
    batch_reused: dict[int, ReusedSchedule] = field(default_factory=dict)
    reuse_note: str | None = None
    reused_secs: dict[int, float | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskSummary:
    """A task's outcome so far."""

    name: str
    trials: int
    best_latency_s: float | None
    done: bool
    error: str | None = None
    weight: float = 1.0


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


class MetaScheduleDriver(JobDriver):
    """One job's MetaSchedule tuning, one stage at a time (see the module docstring).

    ``workloads`` are workload specs (strings or parsed) or ``TuningTask``s (e.g. a model's
    extracted tasks); a task marked untunable is reported as such and not searched.
    ``trials`` is the budget of each task; ``batch_size`` the candidates per iteration.
    ``device_pool`` names the pool its profile stages need (``device:llvm`` or
    ``device:rpc:KEY``); ``workers`` provides the build pool and profiler of each resource.
    ``model`` is the ``LoadedModel`` a model job's tasks were extracted from (kept so the
    model can be compiled with the job's database afterwards). ``reuse`` starts each task
    from a schedule library (``ReuseSettings``): its first batch is the library's schedules
    applied to the task, measured like any other; with ``reuse.only`` (plus the untuned
    workload as the fallback) it is the task's only batch. ``library``: when the job
    finishes, its database joins this schedule library under the model's source, else
    ``name`` (the job's name), else the job id (``library_added`` says what came of it: an
    ``AddSummary``, or the reason it was refused).
    """

    def __init__(
        self,
        job_id: str,
        workloads: Sequence[WorkloadSpec | str | TuningTask],
        *,
        trials: int,
        workers: StageWorkers,
        db_dir: str | Path,
        sink: EventSink | None = None,
        device_pool: str = LOCAL_POOL,
        target: str | Mapping[str, Any] = "llvm",
        seed: int = 0,
        batch_size: int = 16,
        search: SearchConfig | None = None,
        profile_retries: int = 2,
        on_stall: Callable[[str, str], None] | None = None,
        model: Any = None,
        reuse: ReuseSettings | None = None,
        library: ScheduleLibrary | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(trials, int) or isinstance(trials, bool) or trials <= 0:
            raise TunerError(f"trials must be a positive integer, got {trials!r}")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise TunerError(f"batch size must be a positive integer, got {batch_size!r}")
        tasks = job_tasks(workloads)
        if not tasks:
            raise TunerError("a job needs at least one workload")
        if device_pool not in workers.device_pools():
            raise TunerError(
                f"no device pool {device_pool!r} here (pools: {', '.join(workers.device_pools())})"
            )
        self.job_id = job_id
        self.model = model  # the LoadedModel the tasks come from, if any
        self.device_pool = device_pool
        self.workers = workers
        self.sink = sink
        self.seed = seed
        self.batch_size = batch_size
        self.search = search or SearchConfig()
        self.profile_retries = profile_retries
        self.on_stall = on_stall
        self.target = Target(target_config(target, workers.device_cores))
        self.db_dir = Path(db_dir)
        self.db_dir.mkdir(parents=True, exist_ok=True)
        self.database = ms.database.JSONDatabase(
            path_workload=str(self.db_dir / DB_WORKLOAD),
            path_tuning_record=str(self.db_dir / DB_RECORDS),
        )
        client_cores = len(workers.plan.client)
        self.cost_model = ms.cost_model.XGBModel(
            config=ms.cost_model.xgb_model.XGBConfig(seed=seed, nthread=client_cores),
            num_warmup_samples=self.search.xgb_warmup_samples,
            verbose_eval=0,
        )
        self.reuse = reuse
        self.library = library
        self.name = name
        self.library_added: AddSummary | str | None = None
        self.reuse_sources: SourceChoice | None = None
        self._reuse_entries: list[LibraryEntry] = []
        if reuse is not None:
            self._reuse_entries, self.reuse_sources = _reuse_entries(reuse, tasks, self.target)
        self._tasks = []
        for index, task in enumerate(tasks):
            budget = 0 if task.untunable else trials
            if reuse is not None and reuse.only and not task.untunable:
                budget = reuse.limit + 1  # until the plan says how many apply
            item = _Task(index, task.name, task, str(tvm_ffi.structural_hash(task.mod)), budget)
            if task.untunable:
                item.done, item.failed = True, task.untunable
            item.reuse_pending = reuse is not None and not task.untunable
            self._tasks.append(item)
        self.tasks: tuple[str, ...] = tuple(t.name for t in self._tasks)
        self._by_name = {t.name: t for t in self._tasks}
        self._current: _Task | None = None
        self._last = -1
        self._announced = False
        self._closed = False

    # --- JobDriver ---------------------------------------------------------------------------

    def next_stage(self) -> tuple[str, int, StageKind] | None:
        if not self._announced:
            self._announced = True
            for task in self._tasks:
                self._emit_task(task)
        task = self._current
        if task is None:
            task = self._pick_next()
            if task is None:
                return None
            self._current = task
        return (task.name, task.iteration, task.next_kind)

    def run(self, task: str, iteration: int, kind: StageKind, resource: str) -> StageResult:
        t = self._by_name.get(task)
        if t is None or t is not self._current or t.iteration != iteration or t.next_kind != kind:
            return StageResult(ok=False, error=f"unexpected stage {kind} of {task}#{iteration}")
        if kind != StageKind.PROFILE:
            pin_thread(self.workers.plan.client)
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
            if t.done or t.next_kind != kind:  # the stage completed or ended the task
                t.stage_failures = 0

    def trials(self) -> tuple[int, int]:
        return (sum(t.trials for t in self._tasks), sum(t.budget for t in self._tasks))

    def close(self, cancelled: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        finished = not cancelled and all(t.done for t in self._tasks)
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
        if finished and self.library is not None and any(t.trials for t in self._tasks):
            self._join_library(self.library)

    def _join_library(self, library: ScheduleLibrary) -> None:
        source = self.model.source if self.model is not None else None
        try:
            self.library_added = library.add_database(
                self.db_dir,
                model=str(source or self.name or self.job_id),
                task_names=self.task_names_by_hash(),
            )
        except LibraryError as exc:
            self.library_added = str(exc)
            log.warning("job %s did not join the library: %s", self.job_id, exc)

    # --- results -------------------------------------------------------------------------------

    def summary(self) -> list[TaskSummary]:
        """Per task: trials measured, best latency, whether it is done (and why it stopped)."""
        return [
            TaskSummary(t.name, t.trials, t.best_s, t.done, t.failed, t.spec.weight)
            for t in self._tasks
        ]

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
        if t.reuse_pending:
            t.reuse_pending = False
            result = self._select_reused(t)
            if result is not None:
                return result
        if t.ctx is None:
            try:
                self._start_task(t)
            except Exception as exc:
                self._end_task(t, f"cannot start the search: {type(exc).__name__}: {exc}")
                return StageResult(ok=False, error=t.failed, candidates=0)
        np.random.seed(_mix(self.seed, t.name, t.iteration, "np"))
        candidates = t.ctx.generate_measure_candidates()
        if not candidates:
            self._end_task(t, None if t.trials else "the search space has no candidates")
            return StageResult(ok=True, candidates=0)
        candidates = list(candidates)[: t.budget - t.trials]
        t.candidates = candidates
        t.predicted = self._predict(t, candidates)
        t.builds, t.runs = [], []
        t.profile_failures = 0
        t.next_kind = StageKind.BUILD
        return StageResult(ok=True, candidates=len(candidates))

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
        t.candidates = [ms.MeasureCandidate(sch, args_info) for sch, _ in sources]
        t.batch_reused = {
            offset: replace(origin, candidate=t.trials + offset)
            for offset, (_, origin) in enumerate(sources)
        }
        t.predicted = [None] * len(t.candidates)
        t.builds, t.runs = [], []
        t.profile_failures = 0
        t.next_kind = StageKind.BUILD
        return StageResult(ok=True, candidates=len(t.candidates))

    def _build(self, t: _Task, resource: str) -> StageResult:
        builder = self.workers.builder(resource)
        t.builds = builder.build([c.sch.mod for c in t.candidates], self.target)
        t.runs = [None] * len(t.candidates)
        t.next_kind = StageKind.PROFILE
        failed = sum(1 for b in t.builds if b.error)
        return StageResult(ok=True, candidates=len(t.candidates) - failed)

    def _profile(self, t: _Task, resource: str) -> StageResult:
        todo = [i for i, b in enumerate(t.builds) if b.artifact and t.runs[i] is None]
        profiler = self.workers.profiler(resource)
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
        t.next_kind = StageKind.UPDATE
        return StageResult(ok=True, candidates=measured)

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
        searched = not t.batch_reused  # the search proposed this batch (not the library)
        if searched:
            try:
                t.ctx.notify_runner_results(t.candidates, results)
            except Exception as exc:
                errors.append(f"notify: {exc}")
        for cand, outcome in zip(t.candidates, outcomes, strict=True):
            run_secs = list(outcome.run_secs) if outcome.run_secs else [FAILED_RUN_SECS]
            self.database.commit_tuning_record(
                ms.database.TuningRecord(
                    cand.sch.trace, t.workload, run_secs, self.target, cand.args_info
                )
            )
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
            self._emit_record(t, first + offset, cand, outcome, predicted)
        for build in t.builds:
            remove_artifact(build.artifact)
        count = len(t.candidates)
        t.trials += count
        t.iteration += 1
        t.candidates, t.predicted, t.builds, t.runs = [], [], [], []
        t.next_kind = StageKind.SELECT
        self._current = None
        if not searched:
            t.reused.extend(t.batch_reused.values())
            t.batch_reused = {}
            self._emit_task(t)  # now naming the records that came from the library
        if t.trials >= t.budget:
            self._end_task(t, None)
        if errors:
            return StageResult(ok=False, error="; ".join(errors), candidates=count)
        return StageResult(ok=True, candidates=count)

    # --- helpers -----------------------------------------------------------------------------

    def _start_task(self, t: _Task) -> None:
        threads = len(self.workers.plan.client)
        ctx = ms.TuneContext(
            t.spec.mod,
            target=self.target,
            space_generator="post-order-apply",
            search_strategy=self.search.strategy(),
            task_name=t.name,
            rand_state=1 + _mix(self.seed, t.name, "ctx") % (2**31 - 2),
            num_threads=threads,
            logger=logging.getLogger(f"{__name__}.search"),
        )
        ctx.pre_tuning(
            max_trials=1 << 30,  # the driver enforces the budget itself
            num_trials_per_iter=self.batch_size,
            design_spaces=ctx.generate_design_space(),
            database=self.database,
            cost_model=self.cost_model,
        )
        t.ctx = ctx
        t.workload = self.database.commit_workload(t.spec.mod)

    def _end_task(self, t: _Task, failed: str | None) -> None:
        t.done = True
        t.failed = failed
        t.next_kind = StageKind.SELECT
        for build in t.builds:
            remove_artifact(build.artifact)
        t.candidates, t.predicted, t.builds, t.runs = [], [], [], []
        if self._current is t:
            self._current = None
        if t.ctx is not None:
            try:
                t.ctx.post_tuning()
            except Exception as exc:
                log.warning("post_tuning of %s failed: %s", t.name, exc)
            t.ctx = None
        if failed is not None:
            self._emit_task(t, stopped=failed)

    def _pick_next(self) -> _Task | None:
        count = len(self._tasks)
        for step in range(1, count + 1):
            task = self._tasks[(self._last + step) % count]
            if not task.done:
                self._last = task.index
                return task
        return None

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
        detail = [f"{DETAIL_DATABASE}{self.db_dir.resolve()}", *t.spec.detail]
        if t.reuse_note:
            detail.append(f"reuse_note={t.reuse_note}")
        detail.extend(r.detail_line() for r in t.reused)
        stopped = stopped or t.spec.untunable
        if stopped:
            detail.append(f"stopped={stopped}")
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

    def _emit_record(
        self, t: _Task, candidate: int, cand: Any, outcome: RunOutcome, predicted: float | None
    ) -> None:
        if self.sink is None:
            return
        self.sink.emit(
            RecordEvent,
            job=self.job_id,
            task=t.name,
            candidate=candidate,
            iteration=t.iteration,
            workload_hash=t.workload_hash,
            trace=trace_json_text(cand.sch.trace),
            run_secs=outcome.run_secs,
            error=outcome.error,
            error_class=outcome.error_class,
            predicted=predicted,
            origin="metaschedule",
        )


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


def _prim_func(mod: Any) -> Any:
    """A task module's one PrimFunc."""
    funcs = list(mod.functions.values())
    if len(funcs) != 1:
        raise TunerError(f"a task's module holds {len(funcs)} functions, expected one")
    return funcs[0]


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


def model_tasks(
    source: Any, target: Mapping[str, Any], **load: Any
) -> tuple[Any, list[TuningTask]]:
    """Import a model (``tuner.models.loaders.load_model`` with ``load`` settings) and
    extract its tasks for ``target``: (the LoadedModel, its tasks)."""
    from tuner.models.loaders import load_model
    from tuner.models.tasks import extract_tasks

    model = load_model(source, **load)
    return model, extract_tasks(model, Target(dict(target)))


# --- traces ---------------------------------------------------------------------------------


def trace_json_text(trace: Any) -> str:
    """A trace as compact MetaSchedule JSON (``[instructions, decisions]``, the form of
    ``database_tuning_record.json``; ``Trace.apply_json_to_schedule`` replays it)."""
    return json.dumps(_plain(trace.as_json(remove_postproc=False)), separators=(",", ":"))


def _plain(value: Any) -> Any:
    """TVM containers and scalars -> plain JSON values."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) or hasattr(value, "__iter__"):
        return [_plain(v) for v in value]
    if hasattr(value, "value"):
        return value.value
    return str(value)


def _mix(*parts: Any) -> int:
    """A stable 32-bit seed from the parts."""
    return zlib.crc32(":".join(map(str, parts)).encode())


# --- wiring ---------------------------------------------------------------------------------


def driver_factory(
    *,
    workers: StageWorkers,
    runs_dir: str | Path,
    sink: EventSink | None,
    seed: int = 0,
    batch_size: int = 16,
    search: SearchConfig | None = None,
    profile_retries: int = 2,
    on_stall: Callable[[str, str], None] | None = None,
    library: ScheduleLibrary | None = None,
) -> Callable[[str, JobSpec], MetaScheduleDriver]:
    """A ``Scheduler`` driver factory: a ``JobSpec`` -> a driver whose database lives in
    ``runs_dir/<job id>``. ``spec.trials`` is the budget of each task; ``spec.target`` is
    ``llvm`` (local pinned device) or ``rpc:KEY`` (profile on the RPC pool with that key).
    A spec with a ``model`` (a zoo name like ``zoo:cnn`` or a model file) is imported and
    its tasks extracted here, so a bad model fails the submit with a ModelError; one with
    ``warm_start`` opens that schedule library here (a bad one fails the submit too).
    Finished jobs join ``library``."""

    def make(job_id: str, spec: JobSpec) -> MetaScheduleDriver:
        device_pool, target = split_job_target(spec.target)
        model = None
        tasks: Sequence[str | TuningTask] = spec.workloads
        if spec.model:
            model, tasks = model_tasks(spec.model, target_config(target, workers.device_cores))
        reuse = None
        if spec.warm_start:
            reuse = ReuseSettings(ScheduleLibrary(spec.warm_start), only=spec.reuse_only)
        elif spec.reuse_only:
            raise TunerError("a reuse-only job needs a library to start from (warm_start)")
        return MetaScheduleDriver(
            job_id,
            tasks,
            trials=spec.trials,
            workers=workers,
            db_dir=Path(runs_dir) / job_id,
            sink=sink,
            device_pool=device_pool,
            target=target,
            seed=seed,
            batch_size=batch_size,
            search=search,
            profile_retries=profile_retries,
            on_stall=on_stall,
            model=model,
            reuse=reuse,
            library=library,
            name=spec.name,
        )

    return make
