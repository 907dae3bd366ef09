"""The one way to run tuning jobs on this machine, and tuneloom's Python API.

An ``Engine`` owns everything a run needs: the CPU plan (client cores apart from the device
cores), the long-lived build and profile workers, the scheduler under a policy, and the store
the events go to. Jobs come in as ``JobSpec``s (``collectors.jobs``), whichever way they are
submitted: the ``tune`` command, the dashboard's Jobs page (the engine implements
``Control``), ``reuse``, the demo or a notebook. Each becomes a MetaSchedule job planned here
from one ``DriverSettings`` record; a model job's last stage compiles the tuned model into
``RUNS_DIR/<job id>/compiled/`` and every finished job joins the schedule library, as one more
client stage of the job (``FinalStage``), so both happen however the job was submitted. A
model job also emits its fused graph with its tasks and per-kernel profiles of the model,
untuned while it tunes and tuned after the final compile (``ModelProfiling``).

A notebook user's whole flow::

    from collectors.jobs import JobSpec
    from tuner.engine import Engine, EngineSettings
    from tuner.models.compiled import load_compiled
    from tuner.models.loaders import load_model, random_inputs

    with Engine(EngineSettings(runs_dir="runs"), store="runs.db") as engine:
        job = engine.submit(JobSpec(model="zoo:cnn", trials=200))
        report = engine.run()                       # until every job is done
    compiled = load_compiled(report.job(job).compiled)
    outputs = compiled.run(random_inputs(load_model("zoo:cnn")))

``report.as_json()`` is what ``tuneloom tune --json`` prints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from collectors._base import BaseStore
from collectors.events import JobEvent, ResourceEvent
from collectors.hub import Hub
from collectors.jobs import (
    TERMINAL_STATES,
    Catalog,
    JobArtifact,
    JobInfo,
    JobSpec,
    JobState,
    NoArtifactError,
)
from collectors.sink import EventSink, StoreWriteError
from collectors.stores import open_store
from tuner._base import (
    CLIENT_POOL,
    NODE_POOL,
    PlannedJob,
    TunerError,
    UnknownJob,
    duration_text,
    one_line,
    resource_pool,
)
from tuner.clock import WallClock
from tuner.cpus import CpuPlan, available_cpus, plan_cpus
from tuner.metaschedule.driver import (
    FinalStage,
    LatencyCheck,
    MetaScheduleDriver,
    ModelProfiling,
)
from tuner.metaschedule.library import LibraryError, ScheduleLibrary
from tuner.metaschedule.resume import ResumeState
from tuner.metaschedule.reuse import ReuseSettings
from tuner.metaschedule.rpc import discover, parse_rpc
from tuner.metaschedule.run import EvalConfig
from tuner.metaschedule.settings import GPU_POOL, LOCAL_POOL, DriverSettings, SearchConfig
from tuner.metaschedule.siblings import SiblingBoard
from tuner.metaschedule.targets import cuda_devices, is_gpu, target_config
from tuner.metaschedule.workers import StageWorkers
from tuner.models.compiled import compile_and_save
from tuner.models.evaluate import time_saved_model
from tuner.models.graph import model_graph
from tuner.models.profile import profile_saved_model
from tuner.models.tasks import model_tasks
from tuner.models.zoo import ZOO
from tuner.policies import DEFAULT_POLICY, create_policy
from tuner.quiet import check_retime
from tuner.recovery import StoredJob, stored_jobs
from tuner.scheduler import STILL_PAUSED, Scheduler

log = logging.getLogger(__name__)

DEVICE_PREFIX = "device:"
WAITING_FOR_POOL = "waiting for device pool"  # how such a pause reason starts
POOL_POLL_S = 2.0  # how often a pool that jobs wait for is checked
PREPARE_WAIT_S = 120.0  # a control on a job still being planned waits this long for it
COMPILE_TASK = "model"  # the final stage's task of a model job: compiling the model
LIBRARY_TASK = "library"  # the final stage's task of a job that only joins the library


@dataclass(frozen=True)
class EngineSettings:
    """What the machine gives every job: where databases go, the policy, the devices, how
    candidates are built and timed, and what happens when a job finishes.

    ``runs_dir`` holds each job's MetaSchedule database (``RUNS_DIR/<job id>``). ``rpc``
    (``HOST:PORT:KEY``) profiles on the servers a TVM RPC tracker lists under KEY, one device
    resource per server, instead of the local pinned device. ``cores`` are the CPUs to plan
    (default: all this process may use). ``search`` is the evolutionary search a job gets
    (``JobSpec.population`` overrides its population) and where its sibling schedules come
    from (``siblings_from="all-jobs"``: the engine's running jobs on the same target offer
    each other their tasks' bests, on ``Engine.siblings``). ``library`` is the schedule library
    finished jobs join (None: none). ``compile_models``: a finished model job's last stage
    compiles it. ``profile_models``: a model job emits its fused graph and profiles the model
    per kernel, untuned while it tunes and tuned after the final compile (profiles need the
    local device). ``pause_on_stall``: a job whose device pool stays unreachable is paused (a
    long-running service) instead of failed (a one-shot run). ``lend_idle_devices``: a local
    device's cores take client stages (select, build, update) while no profile is expected
    before such a stage would end, or at most ``lend_wait_s`` later (``math.inf``: whenever
    no profile waits); profiles never share them. ``target`` is the codegen target of jobs
    whose spec names none; a cuda target makes this host's GPUs the local devices
    (``device:cuda:N``, every CPU core then a client core). ``ray`` (``auto`` or
    ``HOST:PORT`` of a running Ray head): the cores of that cluster's nodes are resources
    that take the builds, which run there (``tuner.cluster``); select and update stay on
    this process's client cores, with the jobs' search state. ``retime``: how a candidate
    that would become its task's best is timed again (``RETIME_MODES``: ``quiet``, on this
    machine's cores with no client work beside it; ``inline``, in the same profile; ``off``).
    """

    runs_dir: str | Path
    policy: str = DEFAULT_POLICY
    rpc: str | None = None
    cores: tuple[int, ...] | None = None
    build_workers: int | None = None
    build_timeout_s: float = 30.0
    run_timeout_s: float = 10.0
    measure: EvalConfig = field(default_factory=EvalConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    library: str | Path | None = None
    compile_models: bool = True
    profile_models: bool = True
    pause_on_stall: bool = False
    profile_retries: int = 2
    lend_idle_devices: bool = False
    lend_wait_s: float = 0.0
    target: str | Mapping[str, Any] = "llvm"
    ray: str | None = None
    retime: str = "quiet"

    def __post_init__(self) -> None:
        create_policy(self.policy)  # an unknown policy fails before anything starts
        check_retime(self.retime)
        if self.build_workers is not None and self.build_workers <= 0:
            raise TunerError(f"build workers must be positive, got {self.build_workers}")
        for name in ("build_timeout_s", "run_timeout_s"):
            if not getattr(self, name) > 0:
                raise TunerError(f"{name} must be positive, got {getattr(self, name)}")
        runs = Path(self.runs_dir)
        if runs.exists() and not runs.is_dir():
            raise TunerError(f"runs folder {runs} exists and is not a directory")


@dataclass(frozen=True, slots=True)
class TaskReport:
    """A task's outcome: trials measured, best latency, weight in its model, why it stopped,
    how many trials measured its siblings' schedules and which sibling's holds its best."""

    name: str
    trials: int
    best_latency_s: float | None
    weight: float = 1.0
    stopped: str | None = None
    sibling_schedules: int = 0
    best_from_sibling: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trials": self.trials,
            "best_latency_s": self.best_latency_s,
            **({"weight": self.weight} if self.weight != 1.0 else {}),
            **({"stopped": self.stopped} if self.stopped else {}),
            **({"sibling_schedules": self.sibling_schedules} if self.sibling_schedules else {}),
            **({"best_from_sibling": self.best_from_sibling} if self.best_from_sibling else {}),
        }


@dataclass(frozen=True, slots=True)
class JobReport:
    """A job's outcome: its state, tasks and database, and what its final stage did
    (``compiled``: the compiled model's folder, or ``compile_error``; ``library``: what
    joining the library added, or the reason it was refused). ``reuse`` says which library
    models a warm-started job drew from and, per task, what came of it."""

    id: str
    name: str
    state: str
    detail: str | None
    model: str | None
    tasks: tuple[TaskReport, ...]
    db_dir: str
    compiled: str | None = None
    compile_s: float | None = None
    compile_error: str | None = None
    library: dict[str, Any] | None = None
    reuse: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "detail": self.detail,
            **({"model": self.model} if self.model else {}),
            "tasks": [task.as_json() for task in self.tasks],
            "db_dir": self.db_dir,
        }
        if self.compiled is not None:
            out["compiled"] = self.compiled
            out["compile_s"] = self.compile_s
        if self.compile_error is not None:
            out["compile_error"] = self.compile_error
        if self.library is not None:
            out["library"] = self.library
        if self.reuse is not None:
            out["reuse"] = self.reuse
        return out


@dataclass(frozen=True)
class EngineReport:
    """A run's outcome: every job, each resource's busy and idle time, the scheduler's
    overhead, and the set-up time (workers started) before the first stage."""

    wall_s: float
    setup_s: float
    policy: str
    cpus: str
    jobs: tuple[JobReport, ...]
    resources: Mapping[str, Mapping[str, float]]
    scheduler: Mapping[str, float]
    library: str | None = None

    def job(self, job_id: str) -> JobReport:
        for job in self.jobs:
            if job.id == job_id:
                return job
        raise TunerError(f"unknown job {job_id!r} (jobs: {', '.join(j.id for j in self.jobs)})")

    def as_json(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall_s, 4),
            "setup_s": round(self.setup_s, 4),
            "policy": self.policy,
            "cpus": self.cpus,
            "jobs": [job.as_json() for job in self.jobs],
            "resources": {name: dict(times) for name, times in self.resources.items()},
            "scheduler": dict(self.scheduler),
            **({"library": self.library} if self.library else {}),
        }


@dataclass(eq=False)
class _EngineJob:
    """What the engine keeps of a job besides its driver."""

    spec: JobSpec
    driver: MetaScheduleDriver
    model: Any  # the LoadedModel of a model job
    target: dict[str, Any]
    compiled: str | None = None
    compile_s: float | None = None
    compile_error: str | None = None
    library: dict[str, Any] | None = None


class Engine:
    """Tuning jobs on this machine under one scheduler; implements ``Control``.

    ``store`` is a ``BaseStore`` or the path of one to open (and close with the engine);
    ``hub`` fans the events out live (the dashboard's push). Workers start with the first
    ``run`` or ``serve`` (``start`` starts them earlier). Use it as a context manager, or
    ``close`` it: that stops the scheduler and the worker processes.
    """

    def __init__(
        self,
        settings: EngineSettings,
        *,
        store: BaseStore | str | Path | None = None,
        hub: Hub | None = None,
    ) -> None:
        self.settings = settings
        self.runs_dir = Path(settings.runs_dir)
        rpc = parse_rpc(settings.rpc) if settings.rpc else None
        servers = len(discover(rpc)) if rpc else 0
        gpus = 0 if rpc else _local_gpus(settings.target)
        local_devices = 0 if rpc or gpus else 1
        self.plan: CpuPlan = plan_cpus(settings.cores or available_cpus(), devices=local_devices)
        self.cluster = _join_cluster(settings.ray) if settings.ray else None
        self.workers = StageWorkers(
            cluster=self.cluster,
            local_devices=local_devices,
            local_gpus=gpus,
            rpc_pools={rpc: servers} if rpc else None,
            plan=self.plan,
            build_timeout_s=settings.build_timeout_s,
            run_timeout_s=settings.run_timeout_s,
            build_workers=settings.build_workers,
            evaluator=settings.measure,
        )
        self.default_device = rpc.pool if rpc else GPU_POOL if gpus else LOCAL_POOL
        self._rpc, self._rpc_servers = rpc, servers
        self._lock = threading.Lock()
        self._waiting: set[str] = set()  # jobs paused until their RPC pool is back
        self._watch: threading.Thread | None = None
        self.library = _open_library(settings.library)
        # The running jobs' tasks' bests, offered to each other (``SearchConfig.siblings_from``).
        self.siblings = SiblingBoard()
        self._own_store = not isinstance(store, BaseStore)
        if store is None:
            store = ":memory:"
        self.store: BaseStore = open_store(str(store)) if self._own_store else store  # type: ignore[arg-type]
        self.sink = EventSink(self.store, hub=hub)
        self.scheduler = Scheduler(
            self.workers.resources,
            settings.policy,
            clock=WallClock(),
            sink=self.sink,
            job_factory=self._plan_job,
            lendable=self._lendable() if settings.lend_idle_devices else (),
            lend_wait_s=settings.lend_wait_s,
        )
        self._jobs: dict[str, _EngineJob] = {}
        self._past: dict[str, StoredJob] = {}  # jobs a previous process ended (or lost)
        self._preparing: dict[str, StoredJob] = {}  # unfinished ones being planned again
        self._planning: dict[str, JobSpec] = {}  # submitted, their models still importing
        self._journal_read = False
        self._prepared = threading.Condition()  # notified as jobs leave the two above
        self._submitting = threading.local()
        self._started = False
        self._setup_s = 0.0
        self._wall_s = 0.0
        self._closed = False

    # --- Control ------------------------------------------------------------------------------

    def submit(self, spec: JobSpec, *, db_dir: str | Path | None = None) -> str:
        """Plan and queue a job (a model is imported and its tasks extracted now, so a bad
        model fails here); returns its id. ``db_dir`` places its database elsewhere than
        ``RUNS_DIR/<job id>``."""
        if not isinstance(spec, JobSpec):
            raise TunerError(f"submit takes a JobSpec, got {type(spec).__name__}")
        # The scheduler calls the job factory on this thread, with the new job's id.
        self._submitting.db_dir = Path(db_dir) if db_dir is not None else None
        try:
            return self.scheduler.submit(spec)
        finally:
            self._submitting.db_dir = None

    def pause(self, job: str, reason: str | None = None) -> None:
        self._refuse_past(job)
        self.scheduler.pause(job, reason)

    def resume(self, job: str) -> None:
        self._refuse_past(job)
        self.scheduler.resume(job)

    def reprioritize(self, job: str, priority: int) -> None:
        self._refuse_past(job)
        self.scheduler.reprioritize(job, priority)

    def cancel(self, job: str) -> None:
        self._refuse_past(job)
        self.scheduler.cancel(job)

    def list(self) -> list[JobInfo]:
        """Every job: those of earlier runs on this store first (a job being planned again
        after a restart shows as preparing), then this run's."""
        live = self.scheduler.list()
        here = {info.id for info in live}
        preparing = [
            replace(job.info(), detail="preparing: planning it again after a restart")
            for job in list(self._preparing.values())
            if job.id not in here
        ]
        preparing += [
            _planning_info(job_id, spec)
            for job_id, spec in list(self._planning.items())
            if job_id not in here
        ]
        past = [job.info() for job in list(self._past.values())]
        return past + preparing + live

    def artifact(self, job: str) -> JobArtifact:
        """A finished job's database folder and, for a model job, its compiled model."""
        live = self._jobs.get(job)
        if live is not None:
            info = next((i for i in self.scheduler.list() if i.id == job), None)
            state = info.state if info is not None else JobState.QUEUED
            db_dir: Path | None = live.driver.db_dir
        elif job in self._past:
            state, db_dir = self._past[job].state, self._past[job].db_dir
            db_dir = db_dir or self.runs_dir / job
        else:
            known = ", ".join(i.id for i in self.list()[:10]) or "none"
            raise UnknownJob(f"unknown job {job!r} (jobs: {known})")
        if state != JobState.FINISHED:
            raise NoArtifactError(f"job {job} is {state}; only a finished job has an artifact")
        if db_dir is None or not db_dir.is_dir():
            raise NoArtifactError(f"job {job}'s database folder {db_dir} is gone")
        compiled = db_dir / "compiled"
        return JobArtifact(job, db_dir, compiled if compiled.is_dir() else None)

    def _refuse_past(self, job: str) -> None:
        """A control on a job of an earlier run is refused; one on a job still being
        prepared waits until it is planned (at most ``PREPARE_WAIT_S``)."""
        with self._prepared:
            ready = self._prepared.wait_for(
                lambda: job not in self._preparing and job not in self._planning,
                timeout=PREPARE_WAIT_S,
            )
        if not ready:
            raise TunerError(f"job {job} is still being prepared; try again shortly")
        past = self._past.get(job)
        if past is not None:
            raise TunerError(f"job {job} is {past.state}; it cannot change any more")

    # --- after a restart -------------------------------------------------------------------------

    def read_journal(self) -> None:
        """List the jobs of earlier runs on this store (fast: no job is planned yet); the
        unfinished ones show as preparing until ``recover`` takes them back."""
        if self._journal_read:
            return
        self._journal_read = True
        ours = f"-{self.scheduler.id_prefix}"  # submitted to this engine meanwhile
        for job in stored_jobs(self.store):
            if not job.id.endswith(ours):
                (self._past if job.finished else self._preparing)[job.id] = job

    def recover(self) -> list[str]:
        """Take back every job the store says a previous process left unfinished (see
        ``tuner.recovery``): running jobs resume from their databases, paused ones stay
        paused, queued ones wait; a job that cannot be planned again fails with the reason.
        Jobs that had ended are listed and their artifacts served. Returns a line per job
        taken back or failed."""
        self.read_journal()
        lines = []
        for job in list(self._preparing.values()):
            try:
                self._restore(job)
            except Exception as exc:  # the job fails with the reason; the others go on
                reason = job.spec_error or f"cannot resume after restart: {one_line(exc)}"
                if job.spec is None and job.spec_error is None:
                    reason = "its process stopped; it has no stored spec to resume from"
                job.state, job.detail = JobState.FAILED, reason
                self._past[job.id] = job
                self._prepared_one(self._preparing, job.id)
                self.sink.emit(
                    JobEvent, job=job.id, change="failed", priority=job.priority,
                    name=job.name, model=job.model, target=job.target, detail=reason,
                )  # fmt: skip
                lines.append(f"{job.id} failed: {reason}")
                continue
            lines.append(f"{job.id} ({job.name}) {job.state}: back from its database")
        return lines

    def _restore(self, job: StoredJob) -> None:
        if job.spec is None:
            raise TunerError(job.spec_error or "no spec stored")
        resume = ResumeState(
            stored_records=dict(job.stored_records),
            stopped=dict(job.stopped),
            started_at=job.started_at,
        )
        self._submitting.db_dir = job.db_dir
        self._submitting.resume = resume
        try:
            paused_for = _pause_reason(job.detail) if job.state == JobState.PAUSED else None
            self.scheduler.restore(
                job.id, job.spec, state=job.state, priority=job.priority, started=job.started,
                paused_for=paused_for,
            )  # fmt: skip
            self._prepared_one(self._preparing, job.id)
            if paused_for is not None and paused_for.startswith(WAITING_FOR_POOL):
                self._wait_for_pool(job.id)
        finally:
            self._submitting.db_dir = None
            self._submitting.resume = None

    def catalog(self) -> Catalog:
        """The zoo models and the device pools a ``JobSpec`` may name (default first)."""
        devices = [self.default_device] + [
            p for p in self.workers.device_pools() if p != self.default_device
        ]
        return Catalog(
            models=tuple(f"zoo:{name}" for name in ZOO),
            devices=tuple(p.removeprefix(DEVICE_PREFIX) for p in devices),
        )

    # --- running ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every worker process now (the first stages then pay no start-up)."""
        if not self._started:
            started = time.perf_counter()
            self.workers.start()
            self._setup_s = time.perf_counter() - started
            self._started = True
            if self.cluster is not None:
                for node, resources in self.cluster.nodes().items():
                    self._emit_presence(resources, "joined", node.describe())
                self.cluster.watch(self._node_joined, self._node_left)

    def run(self) -> EngineReport:
        """Run until every submitted job is finished, failed or cancelled; the report.

        SIGTERM (on the main thread) and Ctrl-C cancel the jobs still running, so the store
        says so, and re-raise ``KeyboardInterrupt``."""
        self.start()
        started = time.perf_counter()
        try:
            with _terminate_as_interrupt():
                self.scheduler.run()
        except KeyboardInterrupt:
            self._cancel_all()
            raise
        finally:
            self._wall_s += time.perf_counter() - started
        return self.report()

    def serve(self) -> None:
        """Start the workers and serve jobs on a background thread until ``close``."""
        self.start()
        self.scheduler.start_background()

    def close(self) -> None:
        """Stop the scheduler and every worker process; close a store the engine opened."""
        if self._closed:
            return
        self._closed = True
        self.scheduler.stop()
        self.workers.close()
        if self.cluster is not None:
            self.cluster.close()
        if self._own_store:
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def report(self) -> EngineReport:
        """Every job's outcome so far, with the resources' busy and idle time."""
        wall_s = self._wall_s
        busy = self.scheduler.busy_time()
        resources = {
            name: {
                "busy_s": round(busy[name], 4),
                "idle_s": round(max(0.0, wall_s - busy[name]), 4),
            }
            for name in busy  # every resource the run had, also those that left
        }
        stats = self.scheduler.stats
        return EngineReport(
            wall_s=wall_s,
            setup_s=self._setup_s,
            policy=self.settings.policy,
            cpus=self.plan.describe(),
            jobs=tuple(self._job_report(info) for info in self.scheduler.list()),
            resources=resources,
            scheduler={
                "dispatches": stats.dispatches,
                "per_dispatch_ms": round(stats.per_dispatch_s * 1e3, 4),
                "share_of_wall": stats.decision_s / wall_s if wall_s > 0 else 0.0,
                "quiet_profiles": stats.quiet_profiles,
                "quiet_demoted": stats.quiet_demoted,
                "retime": self.settings.retime,
            },
            library=str(self.library.folder) if self.library is not None else None,
        )

    # --- cluster nodes coming and going ---------------------------------------------------------

    def _node_joined(self, node: Any, resources: Sequence[str]) -> None:
        """A Ray node passed its check: its cores take stages from now on."""
        self.scheduler.add_resources(resources)
        self._emit_presence(resources, "joined", node.describe())

    def _node_left(self, node: Any, resources: Sequence[str], reason: str) -> None:
        """A Ray node left (or its builder died): its cores take no more stages (their
        timeline lanes end); a stage on it fails and its job retries it elsewhere."""
        self.scheduler.remove_resources(resources)
        self.workers.forget(tuple(resources))
        self._emit_presence(resources, "left", f"{node.describe()} left: {reason}")

    def _emit_presence(self, resources: Sequence[str], presence: str, detail: str) -> None:
        with contextlib.suppress(StoreWriteError):  # the scheduler reports a broken store
            for resource in resources:
                self.sink.emit(
                    ResourceEvent, job="", resource=resource, presence=presence, detail=detail
                )

    # --- planning a job -----------------------------------------------------------------------

    def _plan_job(self, job_id: str, spec: JobSpec) -> PlannedJob:
        """The scheduler's job factory: a ``JobSpec`` -> a MetaSchedule job (listed as
        preparing meanwhile: importing a model takes a while)."""
        self._planning[job_id] = spec
        try:
            return self._plan(job_id, spec)
        finally:
            self._prepared_one(self._planning, job_id)

    def _prepared_one(self, table: dict[str, Any], job_id: str) -> None:
        with self._prepared:
            del table[job_id]
            self._prepared.notify_all()

    def _plan(self, job_id: str, spec: JobSpec) -> PlannedJob:
        target = target_config(spec.target or self.settings.target, self.workers.device_cores)
        device_pool = self._device_pool(spec.device)
        _check_device(target, device_pool)
        model = None
        tasks: Sequence[Any] = spec.workloads
        if spec.model:
            load: dict[str, Any] = {}
            if spec.input_shapes:
                load["input_shapes"] = dict(spec.input_shapes)
            if spec.model_batch is not None:
                load["batch_size"] = spec.model_batch
            model, tasks = model_tasks(spec.model, target, **load)
        reuse = None
        if spec.warm_start:
            reuse = ReuseSettings(
                _reuse_library(spec.warm_start),
                only=spec.reuse_only,
                limit=spec.reuse_limit,
                sources=spec.reuse_sources,
            )
        search = self.settings.search
        if spec.population is not None:
            search = replace(search, population_size=spec.population)
        settings = DriverSettings(
            trials=spec.trials,
            trials_per_task=spec.trials_per_task,
            allocator=spec.allocator,
            time_budget_s=spec.time_budget,
            parallel_tasks=self._parallel_tasks(device_pool),
            batch_size=spec.batch,
            search=search,
            seed=spec.seed,
            target=target,
            device_pool=device_pool,
            profile_retries=self.settings.profile_retries,
            reuse=reuse,
            retime=self.settings.retime,
        )
        db_dir = getattr(self._submitting, "db_dir", None) or self.runs_dir / job_id
        driver = MetaScheduleDriver(
            job_id,
            tasks,
            settings,
            workers=self.workers,
            db_dir=db_dir,
            sink=self.sink,
            on_stall=self._stalled if self.settings.pause_on_stall else None,
            final=self._final_stage(job_id, model is not None),
            check=self._latency_check(spec, model, target, device_pool),
            resume=getattr(self._submitting, "resume", None),
            profiling=self._model_profiling(job_id, model, tasks, target, device_pool, db_dir),
            siblings=self.siblings if search.siblings_from == "all-jobs" else None,
        )
        self._jobs[job_id] = _EngineJob(spec, driver, model, target)
        return PlannedJob(
            driver=driver,
            name=spec.name or (model.name if model is not None else ",".join(spec.workloads)),
            device_pool=device_pool,
            tasks=driver.tasks,
            target=json.dumps(target, sort_keys=True),
            model=spec.model,
            detail=_asked(spec, driver),
        )

    def _lendable(self) -> list[str]:
        """The local device resources (an RPC server's cores are on another machine)."""
        return [r for r in self.workers.resources if resource_pool(r) == LOCAL_POOL]

    def _parallel_tasks(self, device_pool: str) -> int:
        """Tasks of one job that search at once: as many as it has resources to keep busy
        (the client resources, cluster nodes' cores, its pool's devices, and the devices lent
        to client work)."""
        pools = [resource_pool(r) for r in self.workers.resources]
        clients = pools.count(CLIENT_POOL) + pools.count(NODE_POOL)
        return clients + pools.count(device_pool) + len(self.scheduler.lendable)

    def _device_pool(self, device: str | None) -> str:
        if device is None:
            return self.default_device
        pool = DEVICE_PREFIX + device.removeprefix(DEVICE_PREFIX)
        pools = self.workers.device_pools()
        if pool not in pools:
            named = ", ".join(p.removeprefix(DEVICE_PREFIX) for p in pools)
            raise TunerError(f"no device {device!r} here (devices: {named})")
        return pool

    def _latency_check(
        self, spec: JobSpec, model: Any, target: dict[str, Any], device_pool: str
    ) -> LatencyCheck | None:
        """A model job's latency target as a ``LatencyCheck``: compile on a client core,
        time in a fresh process on the device's cores."""
        if spec.target_latency is None:
            return None
        if model is None:
            raise TunerError("a target latency needs a model job (workloads have no model)")
        if device_pool != LOCAL_POOL:
            raise TunerError("a target latency needs the local device (the model is timed here)")

        def compile_with(database: Path) -> Path:
            return compile_and_save(model, target, database / "compiled", database_dir=database)

        def measure(folder: Path, cores: Sequence[int]) -> float:
            return time_saved_model(folder, model, threads=len(cores), cores=cores) / 1e3

        return LatencyCheck(spec.target_latency / 1e3, compile_with, measure)

    def _model_profiling(
        self,
        job_id: str,
        model: Any,
        tasks: Sequence[Any],
        target: dict[str, Any],
        device_pool: str,
        db_dir: Path,
    ) -> ModelProfiling | None:
        """A model job's graph and profiles (``ModelProfiling``); what the store already
        holds for the job (a resumed job) is not made again. Profiles need the local device
        (the model is timed here); a model whose graph cannot be read gets none."""
        if model is None or not self.settings.profile_models:
            return None
        stored = {p.variant for p in self.store.profiles(job_id)}
        try:
            graph = model_graph(model, target, tasks=[(t.name, t.mod) for t in tasks])
        except TunerError as exc:
            log.warning("job %s: no model graph: %s", job_id, exc)
            graph = None
        kernel_tasks = {n.kernel: n.task for n in graph.nodes if n.task} if graph else {}
        kernel_tasks = kernel_tasks or {t.name: t.name for t in tasks}
        local = device_pool == LOCAL_POOL
        target_text = json.dumps(target, sort_keys=True)

        def compile_untuned() -> Path:
            return compile_and_save(model, target, db_dir / "profile-untuned", hookable=True)

        def tuned_folder() -> Path | None:
            job = self._jobs.get(job_id)
            compiled = job.compiled if job is not None else None
            return Path(compiled) if compiled and local and "tuned" not in stored else None

        def profile(folder: Path, variant: str, cores: Sequence[int]) -> dict[str, Any]:
            measured = profile_saved_model(
                folder, model, variant=variant, kernel_tasks=kernel_tasks,
                threads=len(cores), cores=cores, target=target_text,
            )  # fmt: skip
            return measured.event_fields()

        if self.store.graph(job_id) is not None:
            graph = None  # emitted before the restart
        return ModelProfiling(
            model=model.name,
            graph=graph.to_json() if graph is not None else None,
            compile_untuned=compile_untuned if local and "untuned" not in stored else None,
            tuned_folder=tuned_folder,
            profile=profile,
        )

    def _final_stage(self, job_id: str, is_model: bool) -> FinalStage | None:
        compiles = is_model and self.settings.compile_models
        if not compiles and self.library is None:
            return None
        task = COMPILE_TASK if compiles else LIBRARY_TASK
        return FinalStage(task, lambda: self._finish(job_id, compiles))

    def _finish(self, job_id: str, compiles: bool) -> str | None:
        """A finished job's last stage: compile the model, join the library."""
        job = self._jobs[job_id]
        notes = []
        if compiles:
            notes.append(self._compile(job))
        if self.library is not None and job.driver.trials()[0] > 0:
            notes.append(self._join_library(job_id, job))
        return "; ".join(notes) or None

    def _compile(self, job: _EngineJob) -> str:
        db_dir = job.driver.db_dir
        started = time.perf_counter()
        try:
            folder = compile_and_save(
                job.model, job.target, db_dir / "compiled", database_dir=db_dir,
                hookable=self.settings.profile_models,
            )  # fmt: skip
        except TunerError as exc:
            job.compile_error = str(exc)
            return f"not compiled: {exc}"
        job.compiled = str(folder)
        job.compile_s = round(time.perf_counter() - started, 3)
        return f"compiled model in {folder}"

    def _join_library(self, job_id: str, job: _EngineJob) -> str:
        assert self.library is not None
        source = job.model.source if job.model is not None else None
        try:
            added = self.library.add_database(
                job.driver.db_dir,
                model=str(source or job.spec.label),
                task_names=job.driver.task_names_by_hash(),
            )
        except (LibraryError, OSError) as exc:
            job.library = {"error": str(exc)}
            return f"not added to the library: {exc}"
        job.library = added.as_json()
        return f"{added.added} schedule(s) added to the library"

    def _stalled(self, job_id: str, reason: str) -> None:
        """A job's device pool stayed unreachable: the job waits for it, paused with the
        reason, and an RPC pool is watched so the job resumes once a server is back."""
        pool = self._jobs[job_id].driver.device_pool
        waiting = reason
        if self._rpc is not None and pool == self.default_device:
            listed = _servers_listed(self._rpc)
            waiting = (
                f"{WAITING_FOR_POOL} {pool.removeprefix(DEVICE_PREFIX)}: "
                f"{listed} of {self._rpc_servers} servers ({reason})"
            )
            self._wait_for_pool(job_id)
        self.scheduler.pause(job_id, reason=waiting)

    def _wait_for_pool(self, job_id: str) -> None:
        with self._lock:
            self._waiting.add(job_id)
            if self._watch is None:
                self._watch = threading.Thread(
                    target=self._watch_pool, name="tuneloom-pool-watch", daemon=True
                )
                self._watch.start()

    def _watch_pool(self) -> None:
        """Resume the jobs waiting for the RPC pool once its tracker lists a server again
        (checked every ``POOL_POLL_S``); a job paused or cancelled meanwhile stays so."""
        assert self._rpc is not None
        while not self._closed:
            time.sleep(POOL_POLL_S)
            with self._lock:
                if not self._waiting:
                    self._watch = None
                    return
            if _servers_listed(self._rpc) == 0:
                continue
            with self._lock:
                waiting, self._waiting = self._waiting, set()
            states = {info.id: info for info in self.scheduler.list()}
            for job_id in waiting:
                info = states.get(job_id)
                if (
                    info is not None
                    and info.state == JobState.PAUSED
                    and info.detail
                    and (info.detail.startswith("waiting for device pool"))
                ):
                    with contextlib.suppress(TunerError):
                        self.scheduler.resume(job_id)

    def _cancel_all(self) -> None:
        for info in self.scheduler.list():
            if info.state not in TERMINAL_STATES:
                with contextlib.suppress(TunerError):
                    self.scheduler.cancel(info.id)

    def _job_report(self, info: JobInfo) -> JobReport:
        job = self._jobs[info.id]
        driver = job.driver
        return JobReport(
            id=info.id,
            name=info.name,
            state=str(info.state),
            detail=info.detail,
            model=(job.model.source or job.model.name) if job.model is not None else None,
            tasks=tuple(
                TaskReport(
                    t.name,
                    t.trials,
                    t.best_latency_s,
                    t.weight,
                    t.error,
                    t.siblings,
                    t.best_from,
                )
                for t in driver.summary()
            ),
            db_dir=str(driver.db_dir),
            compiled=job.compiled,
            compile_s=job.compile_s,
            compile_error=job.compile_error,
            library=job.library,
            reuse=_reuse_report(driver) if driver.reuse is not None else None,
        )


def _pause_reason(detail: str | None) -> str | None:
    """Why a job was paused, from its latest job event's detail (a restart's ``still
    paused after restart: WHY`` keeps the first reason)."""
    if not detail:
        return None
    if detail.startswith(STILL_PAUSED):
        return detail.removeprefix(STILL_PAUSED).removeprefix(": ") or None
    return detail


def _servers_listed(rpc: Any) -> int:
    """Servers the tracker lists under the pool's key now (0 when it cannot be reached)."""
    try:
        return len(discover(rpc, timeout_s=2.0))
    except TunerError:
        return 0


def _planning_info(job_id: str, spec: JobSpec) -> JobInfo:
    what = "importing the model" if spec.model else "planning its tasks"
    return JobInfo(
        id=job_id,
        name=spec.label,
        state=JobState.QUEUED,
        priority=spec.priority,
        target="",
        tasks=(),
        trials_done=0,
        trials_total=spec.trials or 0,
        detail=f"preparing: {what}",
        model=spec.model,
    )


def _asked(spec: JobSpec, driver: MetaScheduleDriver) -> str:
    """What the job was asked, for its ``submitted`` event: budget, allocator, stop rules."""
    parts = [f"budget {driver.total_budget} trials"]
    if spec.trials_per_task is not None:
        parts[0] += f" (at most {spec.trials_per_task} per task)"
    if len(driver.tasks) > 1:
        parts.append(f"spread by {driver.allocator}")
    if spec.time_budget is not None:
        parts.append(f"time budget {duration_text(spec.time_budget)}")
    if spec.target_latency is not None:
        parts.append(f"target latency {spec.target_latency:g} ms")
    return "; ".join(parts)


def _reuse_report(driver: MetaScheduleDriver) -> dict[str, Any]:
    """Which library models a job drew from and, per task, what came of it."""
    reuse = driver.reuse
    assert reuse is not None
    choice = driver.reuse_sources
    report: dict[str, Any] = {"library": str(reuse.library.folder), "tasks": {}}
    if choice is not None:
        report["sources"] = [s.model for s in choice.chosen]
        report["source_scores"] = {s.model: round(s.score, 4) for s in choice.ranked}
        report["covered"] = round(choice.covered, 4)
    else:
        report["sources"] = list(reuse.sources or ())
    for task in driver.reuse_tasks():
        report["tasks"][task.name] = task.as_json()
    return report


def _local_gpus(target: str | Mapping[str, Any]) -> int:
    """The GPUs a cuda target's profiles use (every one this host has); 0 for llvm."""
    if not is_gpu(target_config(target, 1)):
        return 0
    count = cuda_devices()
    if not count:
        raise TunerError("a cuda target needs an NVIDIA GPU here, and TVM sees none")
    return count


def _check_device(target: Mapping[str, Any], device_pool: str) -> None:
    """A job's kernels must run where it is profiled: cuda on ``device:cuda``, llvm on a CPU."""
    if is_gpu(target) and device_pool != GPU_POOL:
        raise TunerError(
            f"a cuda target is profiled on this host's GPUs, not on {device_pool} "
            "(give the engine a cuda target: tune --target cuda, server --target cuda)"
        )
    if not is_gpu(target) and device_pool == GPU_POOL:
        raise TunerError(f"a {target.get('kind')} target's kernels cannot be timed on a GPU")


def _join_cluster(address: str) -> Any:
    """The Ray cluster at ``address``, joined, with the nodes that may take builds."""
    from tuner.cluster.ray_nodes import RayCluster

    cluster = RayCluster(address)
    cluster.connect()
    return cluster


def _open_library(folder: str | Path | None) -> ScheduleLibrary | None:
    if folder is None:
        return None
    try:
        return ScheduleLibrary(folder, create=True)
    except (LibraryError, OSError) as exc:
        raise TunerError(f"schedule library {folder}: {exc}") from None


def _reuse_library(folder: str) -> ScheduleLibrary:
    """The library a job starts from; a damaged index fails the submit here."""
    library = ScheduleLibrary(folder)
    library.entries()
    return library


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run like Ctrl-C: jobs marked cancelled, worker processes stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
